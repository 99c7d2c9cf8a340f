"""The raw store: every raw payload a collector returned, kept forever as exact bytes.

A payload is serialised canonically once (sorted keys, compact separators, UTF-8); those bytes are hashed
(SHA-256, the key) and compressed (zstd). Rows are insert-only: the same payload seen again costs nothing
but its 64-character key in the record that points at it. Nothing here ever updates or deletes a blob.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
import zstandard
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection

from asset_ledger.storage.db import chunks, insert_ignore
from asset_ledger.storage.tables import raw_blob

CODEC = "zstd"
ZSTD_LEVEL = 3


def canonical_json(value: Any) -> bytes:
    """The exact bytes a JSON value is stored, hashed and replayed as."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True, slots=True)
class PutResult:
    """What a write added: new blobs and their stored (compressed) bytes."""

    blobs_added: int
    bytes_added: int


def existing_keys(conn: Connection, keys: Iterable[str]) -> set[str]:
    """Which of ``keys`` are already stored."""
    wanted = sorted(set(keys))
    found: set[str] = set()
    if conn.dialect.name == "postgresql":
        # One array parameter instead of an IN list of thousands of parameters: 20,000 keys (an XL
        # snapshot's first ingest) are looked up several times faster.
        for part in chunks(wanted, 50_000):
            keys_param = sa.literal(list(part), ARRAY(sa.String()))
            found.update(
                conn.scalars(sa.select(raw_blob.c.sha256).where(raw_blob.c.sha256 == sa.any_(keys_param)))
            )
        return found
    for part in chunks(wanted):
        found.update(conn.scalars(sa.select(raw_blob.c.sha256).where(raw_blob.c.sha256.in_(part))))
    return found


def put_many(conn: Connection, payloads: Mapping[str, bytes], *, known: Set[str] = frozenset()) -> PutResult:
    """Store ``{sha256: exact bytes}``; blobs already present are skipped (insert-only, idempotent).
    ``known`` names keys the caller knows are stored (they are not even looked up)."""
    present = existing_keys(conn, (key for key in payloads if key not in known)) | (payloads.keys() & known)
    compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
    now = datetime.now(UTC)
    rows = []
    stored = 0
    for key, data in payloads.items():
        if key in present:
            continue
        packed = compressor.compress(data)
        stored += len(packed)
        rows.append(
            {
                "sha256": key,
                "codec": CODEC,
                "size_raw": len(data),
                "size_stored": len(packed),
                "data": packed,
                "created_at": now,
            }
        )
    insert_ignore(conn, raw_blob, rows, ["sha256"])
    return PutResult(blobs_added=len(rows), bytes_added=stored)


def put_json(conn: Connection, value: Any) -> str:
    """Store one JSON value canonically; returns its key."""
    data = canonical_json(value)
    key = sha256_hex(data)
    put_many(conn, {key: data})
    return key


def get(conn: Connection, key: str) -> bytes | None:
    """The exact bytes stored under ``key``, or ``None``."""
    row = conn.execute(sa.select(raw_blob.c.codec, raw_blob.c.data).where(raw_blob.c.sha256 == key)).first()
    if row is None:
        return None
    return decode(row.codec, row.data)


def decode(codec: str, data: bytes) -> bytes:
    if codec != CODEC:
        raise ValueError(f"unknown raw codec {codec!r}")
    return zstandard.ZstdDecompressor().decompress(data)


def stored_bytes(conn: Connection) -> int:
    """Total compressed bytes in the raw store (what an operator pays for)."""
    return int(conn.scalar(sa.select(sa.func.coalesce(sa.func.sum(raw_blob.c.size_stored), 0))) or 0)
