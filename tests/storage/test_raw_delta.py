"""The raw store's delta codec, on a real SQLite file and a real PostgreSQL database: a new version of a
payload is stored against the full base of its previous version and rebuilt to the exact bytes; a version too
different is stored full; a missing or broken base is a registered error; a ledger at 0002 upgrades."""

from __future__ import annotations

import json
import random
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import zstandard
from alembic import command

from asset_ledger.contract import LedgerError
from asset_ledger.core import Ledger
from asset_ledger.storage import head_revision, make_engine, raw, upgrade, write_tx
from asset_ledger.storage.migrate import _config
from asset_ledger.storage.tables import raw_blob

GUESTS = 40


def guest_payload(vmid: int, rng: random.Random, counters: dict[str, int] | None = None) -> dict[str, Any]:
    """A PVE-like raw payload: a config that does not move, and counters that move on every poll."""
    moving = counters or {
        "netin": rng.randrange(10**9, 10**11),
        "netout": rng.randrange(10**9, 10**11),
        "diskread": rng.randrange(10**9, 10**11),
        "diskwrite": rng.randrange(10**9, 10**11),
        "uptime": rng.randrange(10**5, 10**7),
    }
    entry = {"vmid": vmid, "name": f"web-{vmid}", "node": "node1", "status": "running", **moving}
    return {
        "cluster_resources": {**entry, "maxmem": 4 << 30, "maxdisk": 64 << 30, "type": "qemu"},
        "qemu_list": {**entry, "qmpstatus": "running", "running-qemu": "8.1.5"},
        "config": {
            "boot": "order=scsi0;net0",
            "cores": 4,
            "memory": "4096",
            "name": f"web-{vmid}",
            "net0": f"virtio=BC:24:11:{vmid % 256:02X}:DB:1F,bridge=vmbr0,firewall=1",
            "scsi0": f"local-lvm:vm-{vmid}-disk-0,size=64G",
            "smbios1": f"uuid=446056bf-b6aa-4ae5-91f1-{vmid:012d}",
            "description": f"guest {vmid} of the web tier, managed by the platform team",
        },
    }


def moved(payload: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """The same guest one poll later: every counter grew."""
    entry = payload["cluster_resources"]
    counters = {
        k: entry[k] + rng.randrange(10**5, 10**9) for k in ("netin", "netout", "diskread", "diskwrite")
    }
    counters["uptime"] = entry["uptime"] + 3600
    return guest_payload(entry["vmid"], rng, counters)


def encoded(values: list[dict[str, Any]]) -> dict[str, bytes]:
    return {raw.sha256_hex(d): d for d in (raw.canonical_json(v) for v in values)}


def rows(ledger: Ledger, keys: list[str]) -> dict[str, Any]:
    with ledger.engine.connect() as conn:
        return {
            r.sha256: r
            for r in conn.execute(
                sa.select(raw_blob.c.sha256, raw_blob.c.codec, raw_blob.c.base_sha256).where(
                    raw_blob.c.sha256.in_(keys)
                )
            )
        }


def test_moved_counters_are_stored_as_small_deltas_that_rebuild_the_exact_bytes(ledger: Ledger) -> None:
    rng = random.Random(1)
    first = [guest_payload(vmid, rng) for vmid in range(100, 100 + GUESTS)]
    second = [moved(p, rng) for p in first]
    old, new = encoded(first), encoded(second)
    previous = dict(zip(new, old, strict=True))
    with write_tx(ledger.engine) as conn:
        written_first = raw.put_many(conn, old)
        written_second = raw.put_many(conn, new, previous=previous)
    assert (written_first.blobs_added, written_first.deltas_added) == (GUESTS, 0)
    assert (written_second.blobs_added, written_second.deltas_added) == (GUESTS, GUESTS)
    # What a user notices: a poll with moved counters costs a fraction of the first collect.
    assert written_second.bytes_added < 0.3 * written_first.bytes_added, (written_first, written_second)

    stored = rows(ledger, list(new))
    assert {r.codec for r in stored.values()} == {"zstd-delta"}
    assert {key: r.base_sha256 for key, r in stored.items()} == previous
    with ledger.engine.connect() as conn:
        assert raw.get_many(conn, list(new) + list(old)) == new | old
        key = next(iter(new))
        assert raw.get(conn, key) == new[key]
        assert raw.get(conn, "0" * 64) is None
        report = raw.verify(conn, batch=7)  # pages smaller than the store: every page is walked
    assert (report.blobs, report.deltas, report.problems) == (2 * GUESTS, GUESTS, [])


def test_the_base_is_always_a_full_blob_never_a_chain(ledger: Ledger) -> None:
    rng = random.Random(2)
    v1 = guest_payload(7, rng)
    v2 = moved(v1, rng)
    v3 = moved(v2, rng)
    (k1, d1), (k2, d2), (k3, d3) = (next(iter(encoded([v]).items())) for v in (v1, v2, v3))
    with write_tx(ledger.engine) as conn:
        raw.put_many(conn, {k1: d1})
        raw.put_many(conn, {k2: d2}, previous={k2: k1})
        raw.put_many(conn, {k3: d3}, previous={k3: k2})  # previous is a delta: its base is used
    stored = rows(ledger, [k1, k2, k3])
    assert (stored[k1].codec, stored[k1].base_sha256) == ("zstd", None)
    assert (stored[k2].codec, stored[k2].base_sha256) == ("zstd-delta", k1)
    assert (stored[k3].codec, stored[k3].base_sha256) == ("zstd-delta", k1)
    with ledger.engine.connect() as conn:
        assert raw.get(conn, k3) == d3


def test_a_version_too_different_from_its_base_is_stored_full_and_becomes_the_base(ledger: Ledger) -> None:
    rng = random.Random(3)
    v1 = guest_payload(8, rng)
    # The guest was rebuilt: nothing of the old payload is left.
    v2 = {"config": {f"key{i}": rng.randbytes(24).hex() for i in range(30)}, "vmid": 8}
    v3 = {**v2, "vmid": 9}
    (k1, d1), (k2, d2), (k3, d3) = (next(iter(encoded([v]).items())) for v in (v1, v2, v3))
    with write_tx(ledger.engine) as conn:
        raw.put_many(conn, {k1: d1})
        second = raw.put_many(conn, {k2: d2}, previous={k2: k1})
        third = raw.put_many(conn, {k3: d3}, previous={k3: k2})
    assert (second.deltas_added, third.deltas_added) == (0, 1)
    stored = rows(ledger, [k2, k3])
    assert (stored[k2].codec, stored[k2].base_sha256) == ("zstd", None)
    assert (stored[k3].codec, stored[k3].base_sha256) == ("zstd-delta", k2)
    with ledger.engine.connect() as conn:
        assert raw.get_many(conn, [k2, k3]) == {k2: d2, k3: d3}


def _delta_and_base(ledger: Ledger) -> tuple[str, str, bytes]:
    rng = random.Random(4)
    v1 = guest_payload(9, rng)
    (k1, d1), (k2, d2) = (next(iter(encoded([v]).items())) for v in (v1, moved(v1, rng)))
    with write_tx(ledger.engine) as conn:
        raw.put_many(conn, {k1: d1})
        assert raw.put_many(conn, {k2: d2}, previous={k2: k1}).deltas_added == 1
    return k1, k2, d2


def _delete_blob(ledger: Ledger, key: str) -> None:
    """Remove a blob behind the database's back (a damaged or half-restored store)."""
    if ledger.engine.dialect.name == "sqlite":
        ledger.engine.dispose()
        with sqlite3.connect(str(ledger.engine.url.database)) as db:  # foreign keys off: a raw file edit
            db.execute("DELETE FROM raw_blob WHERE sha256 = ?", (key,))
        return
    with write_tx(ledger.engine) as conn:
        conn.exec_driver_sql("SET LOCAL session_replication_role = replica")  # no FK triggers
        conn.execute(raw_blob.delete().where(raw_blob.c.sha256 == key))


def test_a_missing_base_is_a_registered_error_and_verify_names_the_blob(ledger: Ledger) -> None:
    base, delta, _ = _delta_and_base(ledger)
    _delete_blob(ledger, base)
    with ledger.engine.connect() as conn, pytest.raises(LedgerError) as caught:
        raw.get(conn, delta)
    assert caught.value.code == "RAW_BLOB_CORRUPT"
    assert delta in caught.value.message
    assert "missing" in caught.value.message
    with pytest.raises(LedgerError) as through_ledger:
        ledger.raw_payload(delta)
    assert through_ledger.value.code == "RAW_BLOB_CORRUPT"
    report = ledger.verify_raw_store()
    assert [p.sha256 for p in report.problems] == [delta]


def test_a_broken_base_is_a_registered_error_never_wrong_bytes(ledger: Ledger) -> None:
    base, delta, _ = _delta_and_base(ledger)
    other = raw.canonical_json({"something": "else entirely", "n": list(range(50))})
    with write_tx(ledger.engine) as conn:
        conn.execute(
            raw_blob.update()
            .where(raw_blob.c.sha256 == base)
            .values(data=zstandard.ZstdCompressor().compress(other))
        )
    with ledger.engine.connect() as conn:
        for key in (base, delta):
            with pytest.raises(LedgerError) as caught:
                raw.get(conn, key)
            assert caught.value.code == "RAW_BLOB_CORRUPT"
        problems = raw.verify(conn).problems
    assert sorted(p.sha256 for p in problems) == sorted([base, delta])
    # A new version is never stored against a base that does not rebuild: it is stored full instead.
    fresh = raw.canonical_json({"vmid": 9, "fresh": True})
    with write_tx(ledger.engine) as conn:
        written = raw.put_many(conn, {raw.sha256_hex(fresh): fresh}, previous={raw.sha256_hex(fresh): delta})
    assert (written.blobs_added, written.deltas_added) == (1, 0)


def test_a_ledger_at_0002_with_blobs_upgrades_and_its_blobs_become_bases(db_url: str) -> None:
    engine = make_engine(db_url)
    if db_url.startswith("sqlite"):
        Path(str(engine.url.database)).parent.mkdir(parents=True, exist_ok=True)
    rng = random.Random(5)
    old = encoded([guest_payload(vmid, rng) for vmid in range(1, 6)])
    try:
        with write_tx(engine) as conn:
            cfg = _config()
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "0002_accounts")
            blob_0002 = sa.table(
                "raw_blob",
                *(sa.column(n) for n in ("sha256", "codec", "size_raw", "size_stored", "data")),
                sa.column("created_at", raw_blob.c.created_at.type),
            )
            conn.execute(
                blob_0002.insert(),
                [
                    {
                        "sha256": key,
                        "codec": "zstd",
                        "size_raw": len(data),
                        "size_stored": len(packed),
                        "data": packed,
                        "created_at": datetime.now(UTC),
                    }
                    for key, data in old.items()
                    for packed in [zstandard.ZstdCompressor(level=3).compress(data)]
                ],
            )
        assert upgrade(engine) == head_revision()
        with engine.connect() as conn:
            assert raw.get_many(conn, list(old)) == old
        later = {key: raw.canonical_json(moved(json.loads(data), rng)) for key, data in old.items()}
        new = {raw.sha256_hex(d): d for d in later.values()}
        previous = {raw.sha256_hex(d): key for key, d in later.items()}
        with write_tx(engine) as conn:
            assert raw.put_many(conn, new, previous=previous).deltas_added == len(new)
        with engine.connect() as conn:
            assert raw.get_many(conn, list(new)) == new
            assert raw.verify(conn).problems == []
    finally:
        engine.dispose()


def test_downgrading_below_the_delta_codec_stores_every_delta_full_again(ledger: Ledger) -> None:
    base, delta, data = _delta_and_base(ledger)
    with write_tx(ledger.engine) as conn:
        cfg = _config()
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0003_login_throttle")
    with ledger.engine.connect() as conn:
        columns = {c["name"] for c in sa.inspect(conn).get_columns("raw_blob")}
        row = conn.execute(
            sa.text("SELECT codec, data, size_stored FROM raw_blob WHERE sha256 = :k"), {"k": delta}
        ).one()
    assert "base_sha256" not in columns
    assert row.codec == "zstd"
    assert row.size_stored == len(row.data)
    assert zstandard.ZstdDecompressor().decompress(bytes(row.data)) == data
    assert upgrade(ledger.engine) == head_revision()  # and back up again
    with ledger.engine.connect() as conn:
        assert raw.get_many(conn, [base, delta])[delta] == data
