"""Ingest on both backends: a collect where only uptime and counters moved stores each new payload and
record as a small delta, counts its assets as refreshed (not changed) while their rows still get the fresh
values, and every reader returns the exact bytes of every version."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from asset_ledger.contract import LedgerError
from asset_ledger.core.ingest import without_volatile
from asset_ledger.storage import raw, write_tx
from asset_ledger.storage.tables import raw_blob
from tests.conftest import FakeSource
from tests.core.fake_collector import snapshot

GUESTS = 30


def counters(rng: random.Random) -> dict[str, int]:
    return {k: rng.randrange(10**9, 10**11) for k in ("netin", "netout", "diskread", "diskwrite")}


def poll(uptime: int, rng: random.Random, *, bigger: frozenset[int] = frozenset()) -> dict[str, Any]:
    """One collect answer: running guests with moving counters and uptime; ``bigger`` got more memory."""
    answer = snapshot(range(1, GUESTS + 1))
    for item in answer["assets"]:
        if item["external_kind"] != "vm":
            continue
        vmid = item["raw_payload"]["vmid"]
        item["raw_payload"].update(counters(rng), uptime=uptime + vmid, cpu=round(rng.uniform(0, 1), 4))
        item["normalized"]["runtime"]["uptime_seconds"] = uptime + vmid
        if vmid in bigger:
            item["normalized"]["hardware"]["memory_bytes"] = 4 << 30
            item["raw_payload"]["maxmem"] = 4 << 30
    return answer


def test_moved_counters_are_refreshed_not_changed_and_cost_little(fake_source: FakeSource) -> None:
    ledger = fake_source.ledger
    rng = random.Random(6)
    first_answer = poll(1000, rng)
    first = fake_source.collect(first_answer)
    assert first.status == "succeeded", first.errors
    assert first.summary is not None

    second_answer = poll(4600, rng)
    second = fake_source.collect(second_answer)
    assert second.summary is not None
    assert second.summary["changed"] == 0
    assert second.summary["refreshed"] == GUESTS
    assert second.summary["unchanged"] == 1  # the host
    # Each guest's new payload and record went in as a delta against the previous version.
    assert second.summary["raw_blobs_added"] == 2 * GUESTS
    assert second.summary["raw_deltas_added"] == 2 * GUESTS
    assert second.summary["raw_bytes_added"] < 0.3 * first.summary["raw_bytes_added"], (
        first.summary,
        second.summary,
    )

    # The rows carry the fresh values.
    vm1 = next(a for a in ledger.list_assets(kind="vm").items if a.external_id == "qemu/1")
    assert vm1.normalized["runtime"]["uptime_seconds"] == 4601

    third = fake_source.collect(poll(8200, rng, bigger=frozenset({3, 4})))
    assert third.summary is not None
    assert (third.summary["changed"], third.summary["refreshed"]) == (2, GUESTS - 2)

    # Readers: the raw history of an asset holds the exact bytes of every version, newest first.
    detail = ledger.get_asset(vm1.id)
    payloads = [json.loads(v.data) for v in detail.raw_history]
    originals = [
        next(a["raw_payload"] for a in answer["assets"] if a["external_id"] == "qemu/1")
        for answer in (second_answer, first_answer)
    ]
    assert payloads[1:] == originals
    for version in detail.raw_history:
        assert raw.sha256_hex(version.data) == version.sha256
        assert ledger.raw_payload(version.sha256) == version.data
        assert version.size_raw == len(version.data)
    assert ledger.verify_raw_store().problems == []


def test_a_reader_of_a_delta_whose_base_is_broken_gets_a_registered_error(fake_source: FakeSource) -> None:
    ledger = fake_source.ledger
    rng = random.Random(7)
    fake_source.collect(poll(1000, rng))
    fake_source.collect(poll(4600, rng))
    vm1 = next(a for a in ledger.list_assets(kind="vm").items if a.external_id == "qemu/1")
    with ledger.engine.connect() as conn:
        base = conn.scalar(
            raw_blob.select()
            .with_only_columns(raw_blob.c.base_sha256)
            .where(raw_blob.c.sha256 == vm1.raw_sha256)
        )
    assert base is not None
    with write_tx(ledger.engine) as conn:
        conn.execute(raw_blob.update().where(raw_blob.c.sha256 == base).values(data=b"not a zstd frame"))
    with pytest.raises(LedgerError) as caught:
        ledger.get_asset(vm1.id)
    assert caught.value.code == "RAW_BLOB_CORRUPT"
    # The next collect still lands: a base that does not rebuild is never used, the payload goes in full.
    third = fake_source.collect(poll(8200, rng))
    assert third.status == "succeeded", third.errors


def test_without_volatile_drops_only_the_marked_fields() -> None:
    record = {
        "kind": "vm",
        "runtime": {"power_state": "running", "uptime_seconds": 5},
        "hardware": {"cpu_count": 2},
    }
    assert without_volatile(record) == {
        "kind": "vm",
        "runtime": {"power_state": "running"},
        "hardware": {"cpu_count": 2},
    }
    assert record["runtime"]["uptime_seconds"] == 5  # the record itself is untouched
    assert without_volatile({"kind": "host"}) == {"kind": "host"}
