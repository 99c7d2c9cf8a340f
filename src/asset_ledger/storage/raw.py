"""The raw store: every raw payload a collector returned, kept forever as exact bytes.

A payload is serialised canonically once (sorted keys, compact separators, UTF-8); those bytes are hashed
(SHA-256, the key) and compressed. Rows are insert-only: the same payload seen again costs nothing but its
64-character key in the record that points at it. Nothing here ever updates or deletes a blob.

Two codecs, both rebuilding the exact bytes the key names:

* ``zstd``: one zstd frame of the bytes (a *full* blob).
* ``zstd-delta``: one zstd frame compressed with a full blob's exact bytes as a raw-content dictionary
  (``base_sha256`` names that blob). A real cluster answers every poll with the same inventory and moved
  counters; against the asset's previous payload only the moved bytes cost space.

The layout is a star, never a chain: a delta's base is always a full blob, so a read is at most two
decompressions and no blob depends on more than one other. When a delta would be larger than
``DELTA_MAX_SHARE`` of its base's full frame (the asset really changed), the payload is stored full and
becomes the base of the asset's next versions. Deduplication, audit and replay work on the key alone and
do not see the codec. A delta whose base is missing, or any blob whose bytes do not hash to its key, raises
``RAW_BLOB_CORRUPT`` (``verify`` walks the whole store).
"""

from __future__ import annotations

import functools
import hashlib
import json
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence, Set
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
import zstandard
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection

from asset_ledger.contract import LedgerError
from asset_ledger.storage.db import chunks, insert_ignore
from asset_ledger.storage.tables import raw_blob

CODEC = "zstd"
DELTA_CODEC = "zstd-delta"
ZSTD_LEVEL = 3
#: Level of delta frames, with parameters sized to the payload (a 1 KB payload needs a 4 KB window, not the
#: level's default 2 MB: the compressor is set up per base, so small tables also make it cheaper). Measured on
#: the 15,576 new versions of an XL collect: level 3 stores 1,045,643 bytes in 0.25 s, level 7 1,007,265
#: bytes in the same time; levels 11-13 store 8-10 % less but take 2-3.5 times as long.
DELTA_LEVEL = 7
#: A delta is kept when it is at most this share of its base's full frame; otherwise the payload is stored
#: full (and becomes the base of the next versions). Chosen by measurement on XL snapshots: a guest whose
#: counters moved deltas to 10-19 % of its frame, one whose inventory changed (memory, cores, name) to
#: 15-27 %. Re-basing at share s pays back after (1 - s) / (s - 0.13) polls (1.4 at 0.5); a lower bound would
#: store full frames on every poll for payloads whose moving part is simply large (docs/performance.md, 4.).
DELTA_MAX_SHARE = 0.5
#: New blobs handled per base lookup: bounds the decompressed bases held at once (memory) while keeping the
#: number of queries small.
DELTA_BATCH = 2_000


def canonical_json(value: Any) -> bytes:
    """The exact bytes a JSON value is stored, hashed and replayed as."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True, slots=True)
class PutResult:
    """What a write added: new blobs, their stored (compressed) bytes, and how many of them are deltas."""

    blobs_added: int
    bytes_added: int
    deltas_added: int = 0


def key_filter(conn: Connection, column: Any, keys: Sequence[str]) -> Iterator[Any]:
    """Conditions ``column`` in ``keys`` (a string column), one per chunk of keys."""
    if conn.dialect.name == "postgresql":
        # One array parameter instead of an IN list of thousands of parameters: 20,000 keys (an XL
        # snapshot's first ingest) are looked up several times faster.
        for part in chunks(keys, 50_000):
            yield column == sa.any_(sa.literal(list(part), ARRAY(sa.String())))
        return
    for part in chunks(keys):
        yield column.in_(part)


def existing_keys(conn: Connection, keys: Iterable[str]) -> set[str]:
    """Which of ``keys`` are already stored."""
    found: set[str] = set()
    for condition in key_filter(conn, raw_blob.c.sha256, sorted(set(keys))):
        found.update(conn.scalars(sa.select(raw_blob.c.sha256).where(condition)))
    return found


def _corrupt(key: str, why: str) -> LedgerError:
    return LedgerError(
        "RAW_BLOB_CORRUPT", f"raw blob {key} cannot be rebuilt: {why}", context={"sha256": key}
    )


def _raw_dict(base: bytes) -> zstandard.ZstdCompressionDict:
    return zstandard.ZstdCompressionDict(base, dict_type=zstandard.DICT_TYPE_RAWCONTENT)


@functools.cache
def _delta_params(size_bits: int) -> zstandard.ZstdCompressionParameters:
    """Delta frame parameters for a base and payload of up to ``2 ** size_bits`` bytes each."""
    size = 1 << size_bits
    return zstandard.ZstdCompressionParameters.from_level(DELTA_LEVEL, source_size=size, dict_size=size)


def _delta_compressor(base: bytes, size: int) -> zstandard.ZstdCompressor:
    params = _delta_params(max(len(base), size, 1).bit_length())
    return zstandard.ZstdCompressor(compression_params=params, dict_data=_raw_dict(base))


#: One decompressor for full frames per thread (setting one up per blob cost more than decompressing; a
#: decompressor must not be shared between threads).
_local = threading.local()


def _full_decompressor() -> zstandard.ZstdDecompressor:
    found: zstandard.ZstdDecompressor | None = getattr(_local, "decompressor", None)
    if found is None:
        found = _local.decompressor = zstandard.ZstdDecompressor()
    return found


def _rebuild(key: str, codec: str, data: bytes, base: bytes | None) -> bytes:
    """The exact bytes of one blob (``base``: the exact bytes of a delta's base), checked against its key."""
    try:
        if codec == CODEC:
            out = _full_decompressor().decompress(data)
        elif codec == DELTA_CODEC:
            if base is None:
                raise _corrupt(key, "its delta base is missing")
            out = zstandard.ZstdDecompressor(dict_data=_raw_dict(base)).decompress(data)
        else:
            raise _corrupt(key, f"unknown codec {codec!r}")
    except zstandard.ZstdError as exc:
        raise _corrupt(key, f"its {codec} frame does not decompress ({exc})") from None
    if sha256_hex(out) != key:
        raise _corrupt(key, f"its {codec} frame does not rebuild the bytes its SHA-256 key names")
    return out


def _load_bases(conn: Connection, previous_keys: Iterable[str]) -> dict[str, tuple[str, bytes, int]]:
    """For each stored previous version: the key of the full blob a new delta may use as its base, that
    blob's exact bytes and its stored size. A full previous version is its own base; a delta's base is its
    base (the star). Blobs that cannot be rebuilt are left out: the new payload is then stored full.

    Two primary-key lookups (the previous versions, then the bases of those that are deltas) rather than one
    self-join, which PostgreSQL planned as a scan of the whole store."""
    columns = (
        raw_blob.c.sha256,
        raw_blob.c.codec,
        raw_blob.c.base_sha256,
        raw_blob.c.data,
        raw_blob.c.size_stored,
    )
    found: dict[str, Any] = {}
    for condition in key_filter(conn, raw_blob.c.sha256, sorted(set(previous_keys))):
        found.update((row.sha256, row) for row in conn.execute(sa.select(*columns).where(condition)))
    base_of = {key: row.base_sha256 if row.codec == DELTA_CODEC else key for key, row in found.items()}
    missing = sorted({b for b in base_of.values() if b is not None and b not in found})
    for condition in key_filter(conn, raw_blob.c.sha256, missing):
        found.update((row.sha256, row) for row in conn.execute(sa.select(*columns).where(condition)))
    out: dict[str, tuple[str, bytes, int]] = {}
    rebuilt: dict[str, bytes | None] = {}
    for key, base_key in base_of.items():
        base = found.get(base_key) if base_key is not None else None
        if base is None or base.codec != CODEC:
            continue  # a delta whose base is gone, or not full: not used, the new payload is stored full
        if base_key not in rebuilt:
            try:
                rebuilt[base_key] = _rebuild(base_key, CODEC, base.data, None)
            except LedgerError:
                rebuilt[base_key] = None
        data = rebuilt[base_key]
        if data is not None:
            out[key] = (base_key, data, int(base.size_stored))
    return out


def put_many(
    conn: Connection,
    payloads: Mapping[str, bytes],
    *,
    known: Set[str] = frozenset(),
    previous: Mapping[str, str] | None = None,
) -> PutResult:
    """Store ``{sha256: exact bytes}``; blobs already present are skipped (insert-only, idempotent).
    ``known`` names keys the caller knows are stored (they are not even looked up). ``previous`` maps a
    payload's key to the key of the same thing's previous stored version (an asset's last raw payload):
    such a payload is stored as a delta against that version's full base when the delta is small."""
    present = existing_keys(conn, (key for key in payloads if key not in known)) | (payloads.keys() & known)
    new = [key for key in payloads if key not in present]
    previous = previous or {}
    compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
    now = datetime.now(UTC)
    rows: list[dict[str, Any]] = []
    stored = deltas = 0
    for part in chunks(new, DELTA_BATCH):
        bases = _load_bases(conn, (previous[key] for key in part if key in previous))
        for key in part:
            data = payloads[key]
            codec, base_key, packed = CODEC, None, None
            found = bases.get(previous.get(key, ""))
            if found is not None:
                base_key, base_data, base_stored = found
                delta = _delta_compressor(base_data, len(data)).compress(data)
                if len(delta) <= DELTA_MAX_SHARE * base_stored:
                    codec, packed = DELTA_CODEC, delta
                    deltas += 1
                else:
                    base_key = None
            if packed is None:
                packed = compressor.compress(data)
            stored += len(packed)
            rows.append(
                {
                    "sha256": key,
                    "codec": codec,
                    "size_raw": len(data),
                    "size_stored": len(packed),
                    "data": packed,
                    "created_at": now,
                    "base_sha256": base_key,
                }
            )
    insert_ignore(conn, raw_blob, rows, ["sha256"])
    return PutResult(blobs_added=len(rows), bytes_added=stored, deltas_added=deltas)


def put_json(conn: Connection, value: Any) -> str:
    """Store one JSON value canonically; returns its key."""
    data = canonical_json(value)
    key = sha256_hex(data)
    put_many(conn, {key: data})
    return key


def get_many(conn: Connection, keys: Iterable[str]) -> dict[str, bytes]:
    """The exact bytes stored under each of ``keys`` that is stored (deltas rebuilt against their base);
    ``RAW_BLOB_CORRUPT`` when one cannot be rebuilt exactly."""
    wanted = sorted(set(keys))
    rows: dict[str, Any] = {}
    for condition in key_filter(conn, raw_blob.c.sha256, wanted):
        for row in conn.execute(
            sa.select(raw_blob.c.sha256, raw_blob.c.codec, raw_blob.c.data, raw_blob.c.base_sha256).where(
                condition
            )
        ):
            rows[row.sha256] = row
    base_keys = sorted({r.base_sha256 for r in rows.values() if r.base_sha256 is not None} - rows.keys())
    for condition in key_filter(conn, raw_blob.c.sha256, base_keys):
        for row in conn.execute(
            sa.select(raw_blob.c.sha256, raw_blob.c.codec, raw_blob.c.data, raw_blob.c.base_sha256).where(
                condition
            )
        ):
            rows[row.sha256] = row
    full: dict[str, bytes] = {}

    def rebuild(key: str) -> bytes:
        if key not in full:
            row = rows[key]
            base = None
            if row.codec == DELTA_CODEC:
                if row.base_sha256 is None or row.base_sha256 not in rows:
                    raise _corrupt(key, f"its delta base {row.base_sha256} is missing")
                if rows[row.base_sha256].codec != CODEC:
                    raise _corrupt(key, f"its delta base {row.base_sha256} is not a full blob")
                base = rebuild(row.base_sha256)
            full[key] = _rebuild(key, row.codec, bytes(row.data), base)
        return full[key]

    return {key: rebuild(key) for key in wanted if key in rows}


def get(conn: Connection, key: str) -> bytes | None:
    """The exact bytes stored under ``key``, or ``None``; ``RAW_BLOB_CORRUPT`` when they cannot be rebuilt."""
    return get_many(conn, [key]).get(key)


@dataclass(frozen=True, slots=True)
class Problem:
    """A blob that does not rebuild its exact bytes, and why."""

    sha256: str
    reason: str


@dataclass(frozen=True, slots=True)
class VerifyReport:
    blobs: int
    deltas: int
    problems: list[Problem]


def verify(conn: Connection, *, batch: int = 2_000) -> VerifyReport:
    """Rebuild every blob (a delta against its base) and check that its SHA-256 is its key."""
    blobs = deltas = 0
    problems: list[Problem] = []
    after = ""
    while True:
        page = conn.execute(
            sa.select(raw_blob.c.sha256, raw_blob.c.codec)
            .where(raw_blob.c.sha256 > after)
            .order_by(raw_blob.c.sha256)
            .limit(batch)
        ).all()
        if not page:
            return VerifyReport(blobs, deltas, problems)
        after = page[-1].sha256
        blobs += len(page)
        deltas += sum(1 for row in page if row.codec == DELTA_CODEC)
        try:
            get_many(conn, [row.sha256 for row in page])
        except LedgerError:
            # Somewhere in this page: find each broken blob on its own.
            for row in page:
                try:
                    get_many(conn, [row.sha256])
                except LedgerError as exc:
                    problems.append(Problem(row.sha256, exc.message))


def stored_bytes(conn: Connection) -> int:
    """Total compressed bytes in the raw store (what an operator pays for)."""
    return int(conn.scalar(sa.select(sa.func.coalesce(sa.func.sum(raw_blob.c.size_stored), 0))) or 0)
