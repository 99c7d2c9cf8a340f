"""The ingest rules: what a collector response must satisfy, and how a complete snapshot lands.

Checks (each failing a run with a registered code, never touching assets):
  - the response matches collector-response-v1, every normalized record normalized-v1
    (``SCHEMA_VALIDATION_FAILED`` with the JSON pointer), and says the mode and source type asked for;
  - ``stats.inventory_complete`` is true (``INVENTORY_INCOMPLETE``);
  - ``(external_kind, external_id)`` is unique within the snapshot (``INVENTORY_DUPLICATE_ASSET``);
  - VMs come with relations (``INVENTORY_RELATIONS_EMPTY``);
  - every relation endpoint is an asset of the same snapshot (``INVENTORY_RELATION_DANGLING``).

Applying a snapshot happens inside the caller's single transaction: raw payloads (a failed write raises
``RAW_PERSIST_FAILED``; a new version of an asset's payload or record is stored as a delta against its
previous version's full base), new/changed/reappeared assets, assets gone ``missing``, one ``source_record``
per asset, relations the same way.

The summary counts an asset as ``changed`` only when its normalized record differs in more than the fields
normalized-v1 marks volatile (``runtime.uptime_seconds``); an asset whose record moved only there, or whose
raw payload alone moved (counters), is ``refreshed``: its row gets the fresh values all the same. An asset
whose payload and record are byte-identical is ``unchanged``.

Work is set-based: one query loads the source's assets, the diff is computed here, and rows are written with
executemany, so 10,000 guests take well under the benchmark's 3 seconds.

Test hook: when ``ASSET_LEDGER_TEST_INGEST_PAUSE`` names a file, ``apply_snapshot`` creates that file after
writing the assets and source records (mid-transaction) and sleeps, so a test can kill the process there
and prove nothing of the snapshot was committed. It is never set outside tests.
"""

from __future__ import annotations

import functools
import gc
import os
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import jsonschema_rs
import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from asset_ledger.contract import (
    SCHEMA_NAMES,
    LedgerError,
    error_entry,
    load_schema,
    validate,
    volatile_paths,
)
from asset_ledger.storage import raw, text_search
from asset_ledger.storage.db import bulk_insert, chunks, refresh_statistics_if_grown
from asset_ledger.storage.tables import (
    INDEXED_TEXT_CHARS,
    asset,
    asset_tag,
    relation,
    relation_record,
    source,
    source_record,
)

TEST_PAUSE_ENV = "ASSET_LEDGER_TEST_INGEST_PAUSE"
#: How many schema problems a message names (the error's context lists up to 50 pointers).
MESSAGE_ISSUES = 3

Key = tuple[str, str]


def db_reason(exc: BaseException) -> str:
    """A short, secret-free reason for a database error: the driver's exception type and first line."""
    orig = getattr(exc, "orig", None) or exc
    first = str(orig).strip().splitlines()[0] if str(orig).strip() else ""
    return f"{type(orig).__name__}: {first[:200]}" if first else type(orig).__name__


@functools.cache
def _fast_validator() -> jsonschema_rs.Validator:
    """The same schema files compiled by jsonschema-rs: 10,000 assets validate in milliseconds."""
    registry = jsonschema_rs.Registry([(load_schema(n)["$id"], load_schema(n)) for n in SCHEMA_NAMES])
    return jsonschema_rs.Draft202012Validator(
        load_schema("collector-response-v1"), registry=registry, validate_formats=True
    )


def validate_response(response: Any, *, mode: str, source_type: str) -> list[dict[str, Any]]:
    """Schema problems of a collector response as ``errors[]`` entries (empty when it is valid).

    The fast validator answers yes or no; only a "no" pays for the reference validator, whose messages and
    JSON pointers are the ones the contract package reports everywhere else.
    """
    issues = (
        [] if _fast_validator().is_valid(response) else validate("collector-response-v1", response, limit=50)
    )
    problems = [(i.pointer, i.message) for i in issues]
    if not issues and isinstance(response, dict):
        if response["mode"] != mode:
            problems.append(("/mode", f"{response['mode']!r} was returned for a {mode} request"))
        if response["source_type"] != source_type:
            problems.append(("/source_type", f"{response['source_type']!r} is not {source_type!r}"))
        for index, item in enumerate(response.get("assets", [])):
            if item["normalized"]["kind"] != item["external_kind"]:
                problems.append(
                    (
                        f"/assets/{index}/normalized/kind",
                        f"{item['normalized']['kind']!r} is not external_kind {item['external_kind']!r}",
                    )
                )
    if not problems:
        return []
    named = "; ".join(f"{pointer or '/'}: {message}" for pointer, message in problems[:MESSAGE_ISSUES])
    more = f" (and {len(problems) - MESSAGE_ISSUES} more)" if len(problems) > MESSAGE_ISSUES else ""
    return [
        error_entry(
            "SCHEMA_VALIDATION_FAILED",
            f"the collector's response does not match collector-response-v1: {named}{more}",
            context={"pointers": [pointer for pointer, _ in problems]},
        )
    ]


REDACTED = "***"


def redact(value: Any, secrets: Sequence[str]) -> Any:
    """``value`` with every occurrence of each secret replaced by ``***``."""
    if not secrets:
        return value
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, REDACTED)
        return value
    if isinstance(value, dict):
        return {redact(k, secrets): redact(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, secrets) for v in value]
    return value


def _leaks(data: bytes, secrets: Sequence[str]) -> bool:
    return any(secret.encode("utf-8") in data for secret in secrets)


def scrub(value: Any, secrets: Sequence[str]) -> Any:
    """``value`` unchanged unless its canonical bytes quote a secret; then redacted (a secret is the one
    thing the raw store must not keep exactly)."""
    if secrets and _leaks(raw.canonical_json(value), secrets):
        return redact(value, secrets)
    return value


def _key(ref: Mapping[str, Any]) -> Key:
    return (ref["external_kind"], ref["external_id"])


def check_snapshot(response: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The inventory rules a valid collect response must also satisfy before it may touch the ledger."""
    errors: list[dict[str, Any]] = []
    if not response["stats"]["inventory_complete"]:
        errors.append(
            error_entry(
                "INVENTORY_INCOMPLETE",
                "the collector reported stats.inventory_complete=false: this is not a complete snapshot",
            )
        )
    assets: list[dict[str, Any]] = response["assets"]
    relations: list[dict[str, Any]] = response["relations"]
    seen: dict[Key, int] = {}
    duplicates: list[str] = []
    for index, item in enumerate(assets):
        key = _key(item)
        if key in seen:
            duplicates.append(f"{key[0]} {key[1]!r} at /assets/{seen[key]} and /assets/{index}")
        else:
            seen[key] = index
    if duplicates:
        errors.append(
            error_entry(
                "INVENTORY_DUPLICATE_ASSET",
                f"{len(duplicates)} duplicate asset(s) in the snapshot: {'; '.join(duplicates[:3])}",
            )
        )
    vms = sum(1 for key in seen if key[0] == "vm")
    if vms and not relations:
        errors.append(
            error_entry(
                "INVENTORY_RELATIONS_EMPTY",
                f"the snapshot has {vms} VM(s) but no relations, so VM -> Host cannot be built",
            )
        )
    dangling: list[str] = []
    for index, rel in enumerate(relations):
        for end in ("from", "to"):
            if _key(rel[end]) not in seen:
                dangling.append(
                    f"/relations/{index}/{end} ({rel[end]['external_kind']} {rel[end]['external_id']!r})"
                )
    if dangling:
        errors.append(
            error_entry(
                "INVENTORY_RELATION_DANGLING",
                f"{len(dangling)} relation end(s) name assets missing from the snapshot: "
                f"{'; '.join(dangling[:3])}",
                context={"pointers": [d.split(" ", 1)[0] for d in dangling[:50]]},
            )
        )
    return errors


@dataclass(frozen=True, slots=True)
class Guard:
    """The mass-disappearance guard: hold a snapshot marking more than ``share`` of known assets missing."""

    share: float
    min_known: int


@dataclass(frozen=True, slots=True)
class Held:
    known: int
    disappearing: int


def display_name(normalized: Mapping[str, Any], external_id: str) -> str:
    identity = normalized.get("identity") or {}
    name = identity.get("hostname") or identity.get("caption") or external_id
    return str(name)


#: The columns the asset search plans with (the JSON record and the trigram expressions are left out: they
#: made an ANALYZE of 100,000 assets take 0.8 s instead of 0.12 s).
SEARCH_STATISTICS: dict[str, tuple[str, ...]] = {
    "asset": ("id", "source_id", "external_kind", "status", "power_state", "guest_type", "display_name"),
    "asset_tag": (),
}


def guest_type(normalized: Mapping[str, Any]) -> str | None:
    """``virtualization.type`` (qemu / lxc), kept in the ``asset.guest_type`` column."""
    value = (normalized.get("virtualization") or {}).get("type")
    return value if isinstance(value, str) else None


def tags(normalized: Mapping[str, Any]) -> set[str]:
    """``virtualization.tags``, kept in the ``asset_tag`` table (each cut to ``INDEXED_TEXT_CHARS``)."""
    value = (normalized.get("virtualization") or {}).get("tags")
    return {t[:INDEXED_TEXT_CHARS] for t in value if isinstance(t, str)} if isinstance(value, list) else set()


def _pause_for_tests() -> None:
    marker = os.environ.get(TEST_PAUSE_ENV)
    if marker:
        Path(marker).write_text(str(os.getpid()), encoding="utf-8")
        time.sleep(120)


def _update_many(conn: Connection, table: sa.Table, rows: Sequence[dict[str, Any]]) -> None:
    """Executemany ``UPDATE table SET ... WHERE id = :b_id``; every row sets the same columns."""
    if not rows:
        return
    columns = [name for name in rows[0] if name != "b_id"]
    stmt = (
        table.update()
        .where(table.c.id == sa.bindparam("b_id"))
        .values({name: sa.bindparam(f"b_{name}") for name in columns})
    )
    conn.execute(stmt, [{"b_id": r["b_id"], **{f"b_{n}": r[n] for n in columns}} for r in rows])


def _mark_missing(
    conn: Connection,
    table: sa.Table,
    ids: Sequence[str],
    now: datetime,
    previous: tuple[str, datetime] | None,
) -> None:
    """Mark rows missing; they were last seen in the source's previous snapshot."""
    values: dict[str, Any] = {"status": "missing", "missing_since": now}
    if table is asset:
        values["updated_at"] = now
    if previous is not None:
        values["last_seen_run_id"], values["last_seen_at"] = previous
    for part in chunks(ids):
        conn.execute(table.update().where(table.c.id.in_(part)).values(**values))


def _new_ids(count: int) -> Iterator[str]:
    """Random (version 4) UUIDs as ``uuid.uuid4`` makes them, from one ``os.urandom`` call instead of one
    each (10,000 system calls were a tenth of an XL ingest)."""
    pool = os.urandom(16 * count)
    for start in range(0, len(pool), 16):
        yield str(uuid.UUID(bytes=pool[start : start + 16], version=4))
    while True:
        yield str(uuid.uuid4())


def _encode(value: Any, secrets: Sequence[str]) -> tuple[str, bytes]:
    """Canonical bytes of a payload and their key; a payload quoting a secret is stored redacted."""
    data = raw.canonical_json(value)
    if secrets and _leaks(data, secrets):
        data = raw.canonical_json(redact(value, secrets))
    return raw.sha256_hex(data), data


def without_volatile(normalized: Mapping[str, Any]) -> dict[str, Any]:
    """``normalized`` without the fields normalized-v1 marks ``x-volatile`` (uptime): what the inventory
    is. Copies only the objects on the way to a volatile field."""

    def drop(node: Mapping[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
        out = dict(node)
        head, rest = path[0], path[1:]
        if head in out:
            if not rest:
                del out[head]
            elif isinstance(out[head], Mapping):
                out[head] = drop(out[head], rest)
        return out

    out = dict(normalized)
    for path in volatile_paths("normalized-v1"):
        out = drop(out, path)
    return out


def _inventory_changed(conn: Connection, candidates: Mapping[str, Mapping[str, Any]]) -> set[str]:
    """Which of ``{asset id: new normalized record}`` differ from the asset's stored record in more than
    volatile fields. Only assets whose normalized record has a new digest are asked about, and their stored
    records are loaded in bulk."""
    changed: set[str] = set()
    for condition in raw.key_filter(conn, asset.c.id, sorted(candidates)):
        for row in conn.execute(sa.select(asset.c.id, asset.c.normalized).where(condition)):
            if without_volatile(row.normalized) != without_volatile(candidates[row.id]):
                changed.add(row.id)
    return changed


_gc_lock = threading.Lock()
#: How many snapshots are landing now.
_gc_pause = {"count": 0}


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Everything alive when a snapshot starts landing is left out of the cyclic garbage collector's walks
    until it has landed (``gc.freeze``): an XL snapshot is millions of small, acyclic objects (reference
    counting frees them), and each full collection walked all of them, 0.2-0.3 s of an XL ingest. New cyclic
    garbage is still collected. Concurrent ingests share one freeze; it ends with the last of them."""
    with _gc_lock:
        if _gc_pause["count"] == 0:
            gc.freeze()
        _gc_pause["count"] += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pause["count"] -= 1
            if _gc_pause["count"] == 0:
                gc.unfreeze()


@_gc_paused()
def apply_snapshot(
    conn: Connection,
    *,
    source_id: str,
    run_id: str,
    response: Mapping[str, Any],
    now: datetime,
    guard: Guard | None,
    secrets: Sequence[str] = (),
) -> dict[str, int] | Held:
    """Land one checked, complete snapshot; returns what changed, or ``Held`` when the guard stops it."""
    snapshot: list[dict[str, Any]] = response["assets"]
    existing = {
        (row.external_kind, row.external_id): row
        for row in conn.execute(
            sa.select(
                asset.c.id,
                asset.c.external_kind,
                asset.c.external_id,
                asset.c.status,
                asset.c.display_name,
                asset.c.normalized_sha256,
                asset.c.raw_sha256,
            ).where(asset.c.source_id == source_id)
        )
    }
    in_snapshot = {_key(item) for item in snapshot}
    known = sum(1 for row in existing.values() if row.status == "present")
    going = [row.id for key, row in existing.items() if row.status == "present" and key not in in_snapshot]
    if guard is not None and known >= guard.min_known and len(going) > guard.share * known:
        return Held(known=known, disappearing=len(going))
    last = conn.execute(
        sa.select(source.c.last_snapshot_run_id, source.c.last_snapshot_at).where(source.c.id == source_id)
    ).one()
    previous = (last.last_snapshot_run_id, last.last_snapshot_at) if last.last_snapshot_run_id else None

    # Blobs first: every record points at its raw payload and normalized record, and a failed write must
    # fail the whole snapshot. Digests the source's current rows already carry are known to be stored.
    blobs: dict[str, bytes] = {}
    stored: set[str] = set()
    for current in existing.values():
        stored.add(current.raw_sha256)
        stored.add(current.normalized_sha256)
    # Each asset's previous payload and record: a new version is stored as a delta against it (its base).
    previous_versions: dict[str, str] = {}
    encoded: list[tuple[str, str, dict[str, Any]]] = []
    for item in snapshot:
        raw_key, raw_data = _encode(item["raw_payload"], secrets)
        # scrub() then _encode(), serialising the record once: redacted only when its bytes quote a secret.
        normalized = item["normalized"]
        normalized_data = raw.canonical_json(normalized)
        if secrets and _leaks(normalized_data, secrets):
            normalized = redact(normalized, secrets)
            normalized_data = raw.canonical_json(normalized)
        normalized_key = raw.sha256_hex(normalized_data)
        blobs[raw_key] = raw_data
        blobs[normalized_key] = normalized_data
        encoded.append((raw_key, normalized_key, normalized))
        before = existing.get(_key(item))
        if before is not None:
            if before.raw_sha256 != raw_key:
                previous_versions.setdefault(raw_key, before.raw_sha256)
            if before.normalized_sha256 != normalized_key:
                previous_versions.setdefault(normalized_key, before.normalized_sha256)
    relation_raw: list[str | None] = []
    for rel in response["relations"]:
        if "raw_payload" in rel:
            raw_key, raw_data = _encode(rel["raw_payload"], secrets)
            blobs[raw_key] = raw_data
            relation_raw.append(raw_key)
        else:
            relation_raw.append(None)
    try:
        written = raw.put_many(conn, blobs, known=stored, previous=previous_versions)
    except SQLAlchemyError as exc:
        raise LedgerError(
            "RAW_PERSIST_FAILED",
            f"writing {len(blobs)} raw payload(s) failed ({db_reason(exc)}); the snapshot was rolled back",
        ) from exc

    moved = {
        existing[_key(item)].id: normalized
        for item, (_, normalized_key, normalized) in zip(snapshot, encoded, strict=True)
        if _key(item) in existing
        and existing[_key(item)].status == "present"
        and existing[_key(item)].normalized_sha256 != normalized_key
    }
    inventory_changed = _inventory_changed(conn, moved)

    new_ids = _new_ids(len(snapshot))
    added: list[dict[str, Any]] = []
    changed: list[dict[str, Any]] = []
    records: list[dict[str, Any]] = []
    ids: dict[Key, str] = {}
    # Search columns and tables follow the stored record: tags and names of new and changed assets.
    new_tags: dict[str, set[str]] = {}
    renamed: list[dict[str, Any]] = []
    reappeared = refreshed = 0
    for item, (raw_key, normalized_key, normalized) in zip(snapshot, encoded, strict=True):
        key = _key(item)
        name = display_name(normalized, key[1])[:INDEXED_TEXT_CHARS]
        power = (normalized.get("runtime") or {}).get("power_state")
        row = existing.get(key)
        if row is None:
            asset_id = next(new_ids)
            added.append(
                {
                    "id": asset_id,
                    "source_id": source_id,
                    "external_kind": key[0],
                    "external_id": key[1],
                    "status": "present",
                    "display_name": name,
                    "power_state": power,
                    "guest_type": guest_type(normalized),
                    "first_seen_at": now,
                    "last_seen_at": now,
                    "missing_since": None,
                    "first_seen_run_id": run_id,
                    "last_seen_run_id": run_id,
                    "normalized": normalized,
                    "normalized_sha256": normalized_key,
                    "raw_sha256": raw_key,
                    "updated_at": now,
                }
            )
        else:
            asset_id = row.id
            if (
                row.status != "present"
                or row.normalized_sha256 != normalized_key
                or row.raw_sha256 != raw_key
            ):
                reappeared += row.status != "present"
                refreshed += row.status == "present" and asset_id not in inventory_changed
                changed.append(
                    {
                        "b_id": asset_id,
                        "status": "present",
                        "missing_since": None,
                        "last_seen_at": now,
                        "last_seen_run_id": run_id,
                        "display_name": name,
                        "power_state": power,
                        "guest_type": guest_type(normalized),
                        "normalized": normalized,
                        "normalized_sha256": normalized_key,
                        "raw_sha256": raw_key,
                        "updated_at": now,
                    }
                )
                if row.normalized_sha256 != normalized_key:
                    new_tags[asset_id] = tags(normalized)
                if row.display_name != name:
                    renamed.append({"id": asset_id, "display_name": name, "external_id": key[1]})
        ids[key] = asset_id
        records.append(
            {
                "run_id": run_id,
                "asset_id": asset_id,
                "raw_sha256": raw_key,
                "normalized_sha256": normalized_key,
            }
        )
    bulk_insert(conn, asset, added)
    _update_many(conn, asset, changed)
    _mark_missing(conn, asset, going, now, previous)
    bulk_insert(conn, source_record, records)
    _apply_search(conn, added, new_tags, renamed)
    # The first snapshots of a ledger multiply its size: the planner needs to know (PostgreSQL).
    refresh_statistics_if_grown(conn, SEARCH_STATISTICS, len(added), measured_on="asset")
    _pause_for_tests()

    relations_summary = _apply_relations(
        conn,
        source_id=source_id,
        run_id=run_id,
        response=response,
        relation_raw=relation_raw,
        ids=ids,
        now=now,
        previous=previous,
    )
    conn.execute(
        source.update()
        .where(source.c.id == source_id)
        .values(last_snapshot_run_id=run_id, last_snapshot_at=now)
    )
    return {
        "assets": len(snapshot),
        "added": len(added),
        "changed": len(changed) - reappeared - refreshed,
        "refreshed": refreshed,
        "reappeared": reappeared,
        "unchanged": len(snapshot) - len(added) - len(changed),
        "went_missing": len(going),
        **relations_summary,
        "raw_blobs_added": written.blobs_added,
        "raw_bytes_added": written.bytes_added,
        "raw_deltas_added": written.deltas_added,
    }


def _apply_search(
    conn: Connection,
    added: Sequence[Mapping[str, Any]],
    changed_tags: Mapping[str, set[str]],
    renamed: Sequence[Mapping[str, Any]],
) -> None:
    """Keep ``asset_tag`` and the SQLite text index in step with the assets just written: tags of new
    assets, tag differences of assets whose record changed, names of new and renamed assets. An asset
    going missing keeps its tags and name (its stored record is unchanged)."""
    tag_rows = [{"asset_id": a["id"], "tag": t} for a in added for t in sorted(tags(a["normalized"]))]
    gone: list[tuple[str, str]] = []
    if changed_tags:
        before: dict[str, set[str]] = {}
        for part in chunks(list(changed_tags)):
            for asset_id, tag in conn.execute(
                sa.select(asset_tag.c.asset_id, asset_tag.c.tag).where(asset_tag.c.asset_id.in_(part))
            ):
                before.setdefault(asset_id, set()).add(tag)
        for asset_id, now_tags in changed_tags.items():
            old = before.get(asset_id, set())
            tag_rows += [{"asset_id": asset_id, "tag": t} for t in sorted(now_tags - old)]
            gone += [(asset_id, t) for t in sorted(old - now_tags)]
    if gone:
        conn.execute(
            asset_tag.delete().where(
                asset_tag.c.asset_id == sa.bindparam("b_asset_id"), asset_tag.c.tag == sa.bindparam("b_tag")
            ),
            [{"b_asset_id": asset_id, "b_tag": tag} for asset_id, tag in gone],
        )
    bulk_insert(conn, asset_tag, tag_rows)
    if conn.dialect.name == "sqlite" and (added or renamed) and text_search.text_index_state(conn) == "fts5":
        text_search.sqlite_drop(conn, [r["id"] for r in renamed])
        text_search.sqlite_put(conn, [*added, *renamed])


def _apply_relations(
    conn: Connection,
    *,
    source_id: str,
    run_id: str,
    response: Mapping[str, Any],
    relation_raw: Sequence[str | None],
    ids: Mapping[Key, str],
    now: datetime,
    previous: tuple[str, datetime] | None,
) -> dict[str, int]:
    existing = {
        (row.type, row.from_asset_id, row.to_asset_id): row
        for row in conn.execute(
            sa.select(
                relation.c.id,
                relation.c.type,
                relation.c.from_asset_id,
                relation.c.to_asset_id,
                relation.c.status,
                relation.c.raw_sha256,
            ).where(relation.c.source_id == source_id)
        )
    }
    seen: set[tuple[str, str, str]] = set()
    new_ids = _new_ids(len(response["relations"]))
    added: list[dict[str, Any]] = []
    changed: list[dict[str, Any]] = []
    records: list[dict[str, Any]] = []
    for rel, digest in zip(response["relations"], relation_raw, strict=True):
        key = (rel["type"], ids[_key(rel["from"])], ids[_key(rel["to"])])
        if key in seen:
            continue
        seen.add(key)
        row = existing.get(key)
        if row is None:
            relation_id = next(new_ids)
            added.append(
                {
                    "id": relation_id,
                    "source_id": source_id,
                    "type": key[0],
                    "from_asset_id": key[1],
                    "to_asset_id": key[2],
                    "status": "present",
                    "first_seen_at": now,
                    "last_seen_at": now,
                    "missing_since": None,
                    "first_seen_run_id": run_id,
                    "last_seen_run_id": run_id,
                    "raw_sha256": digest,
                }
            )
        else:
            relation_id = row.id
            if row.status != "present" or row.raw_sha256 != digest:
                changed.append(
                    {
                        "b_id": relation_id,
                        "status": "present",
                        "missing_since": None,
                        "last_seen_at": now,
                        "last_seen_run_id": run_id,
                        "raw_sha256": digest,
                    }
                )
        records.append({"run_id": run_id, "relation_id": relation_id, "raw_sha256": digest})
    going = [row.id for key, row in existing.items() if row.status == "present" and key not in seen]
    bulk_insert(conn, relation, added)
    _update_many(conn, relation, changed)
    _mark_missing(conn, relation, going, now, previous)
    bulk_insert(conn, relation_record, records)
    return {"relations": len(seen), "relations_added": len(added), "relations_went_missing": len(going)}
