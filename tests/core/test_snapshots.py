"""Snapshot semantics on both backends: present/missing, history, the mass-disappearance guard, the raw store
and all-or-nothing writes."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from asset_ledger.contract import LedgerError
from asset_ledger.core import Ledger
from tests.conftest import FakeSource
from tests.core.fake_collector import runs_on, snapshot, vm


def by_external_id(ledger: Ledger) -> dict[str, str]:
    return {a.external_id: a.status for a in ledger.list_assets(limit=1000).items}


def test_absent_assets_go_missing_and_come_back_with_history(fake_source: FakeSource) -> None:
    ledger = fake_source.ledger
    first = fake_source.collect(snapshot(range(1, 11)))
    second = fake_source.collect(snapshot(range(1, 10)))  # qemu/10 is gone
    assert second.status == "succeeded", second.errors
    assert second.summary is not None
    assert second.summary["went_missing"] == 1
    gone = ledger.list_assets(status="missing").items
    assert [a.external_id for a in gone] == ["qemu/10"]
    assert gone[0].missing_since is not None
    assert gone[0].last_seen_run_id == first.id

    third = fake_source.collect(snapshot(range(1, 11)))
    assert third.summary is not None
    assert third.summary["reappeared"] == 1
    back = ledger.get_asset(gone[0].id)
    assert back.asset.status == "present"
    assert back.asset.missing_since is None
    assert back.asset.first_seen_run_id == first.id  # the same asset, its history kept
    assert back.asset.last_seen_run_id == third.id
    assert back.raw_history[0].runs == 2  # seen by the first and third run, same payload


def test_a_failed_run_never_changes_asset_state(fake_source: FakeSource) -> None:
    ledger = fake_source.ledger
    fake_source.collect(snapshot(range(1, 6)))
    before = {a.id: (a.status, a.last_seen_run_id) for a in ledger.list_assets().items}
    broken = snapshot([1])
    broken["stats"]["inventory_complete"] = False
    assert fake_source.collect(broken).status == "failed"
    after = {a.id: (a.status, a.last_seen_run_id) for a in ledger.list_assets().items}
    assert after == before


def test_a_vm_that_moves_keeps_its_identity_and_its_old_relation_goes_missing(
    fake_source: FakeSource,
) -> None:
    ledger = fake_source.ledger
    fake_source.collect(snapshot([1], nodes=("node1", "node2")))
    moved = snapshot([], nodes=("node1", "node2"))
    moved["assets"].append(vm(1, "node2"))
    moved["relations"] = [runs_on(1, "node2")]
    assert fake_source.collect(moved).status == "succeeded"
    [guest] = ledger.list_assets(kind="vm").items
    relations = {(r.other_external_id, r.status) for r in ledger.get_asset(guest.id).relations}
    assert relations == {("node1", "missing"), ("node2", "present")}


def test_mass_disappearance_is_held_until_an_admin_confirms(fake_source: FakeSource) -> None:
    ledger = fake_source.ledger
    fake_source.collect(snapshot(range(1, 10)))  # 1 host + 9 VMs known
    held = fake_source.collect(snapshot([1]))  # 8 of 10 would go missing
    assert held.status == "held"
    assert [e["code"] for e in held.errors] == ["INVENTORY_MASS_DISAPPEARANCE"]
    assert "8 of 10" in held.errors[0]["message"]
    assert ledger.list_assets(status="missing").total == 0  # nothing applied yet

    confirmed = ledger.confirm_run(held.id, confirmed_by="admin")
    assert confirmed.status == "succeeded"
    assert confirmed.confirmed_by == "admin"
    assert ledger.list_assets(status="missing").total == 8

    with pytest.raises(LedgerError) as info:
        ledger.confirm_run(held.id, confirmed_by="admin")
    assert info.value.code == "RUN_NOT_HELD"


def test_a_small_disappearance_is_applied_without_confirmation(fake_source: FakeSource) -> None:
    fake_source.collect(snapshot(range(1, 10)))
    ended = fake_source.collect(snapshot(range(1, 6)))  # 4 of 10 go missing: under half
    assert ended.status == "succeeded"
    assert fake_source.ledger.list_assets(status="missing").total == 4


def test_the_guard_share_is_a_per_source_setting(fake_source: FakeSource) -> None:
    ledger = fake_source.ledger
    ledger.update_source(fake_source.source.name, missing_guard_share=0.2)
    fake_source.collect(snapshot(range(1, 10)))
    assert fake_source.collect(snapshot(range(1, 6))).status == "held"


def test_the_guard_ignores_ledgers_with_fewer_than_five_known_assets(fake_source: FakeSource) -> None:
    fake_source.collect(snapshot(range(1, 4)))  # 4 known
    assert fake_source.collect(snapshot([])).status == "succeeded"


def test_a_newer_snapshot_supersedes_a_held_one(fake_source: FakeSource) -> None:
    fake_source.collect(snapshot(range(1, 10)))
    held = fake_source.collect(snapshot([1]))
    assert fake_source.collect(snapshot(range(1, 10))).status == "succeeded"
    with pytest.raises(LedgerError) as info:
        fake_source.ledger.confirm_run(held.id, confirmed_by="admin")
    assert info.value.code == "RUN_NOT_HELD"


def test_confirming_a_run_that_was_not_held_is_refused(fake_source: FakeSource) -> None:
    ended = fake_source.collect(snapshot([1]))
    with pytest.raises(LedgerError) as info:
        fake_source.ledger.confirm_run(ended.id, confirmed_by="admin")
    assert info.value.code == "RUN_NOT_HELD"


def test_an_unchanged_recollect_adds_almost_no_raw_bytes(fake_source: FakeSource) -> None:
    ledger = fake_source.ledger
    answer = snapshot(range(1, 201), nodes=("node1", "node2", "node3"))
    first = fake_source.collect(answer)
    after_first = ledger.raw_store_bytes()
    second = fake_source.collect(answer)
    assert second.status == "succeeded"
    assert first.summary is not None
    assert first.summary["raw_blobs_added"] > 200
    assert second.summary is not None
    assert second.summary["raw_blobs_added"] == 0
    assert ledger.raw_store_bytes() - after_first == 0
    # One changed guest adds one payload, not a new copy of the inventory.
    answer["assets"][5]["raw_payload"]["status"] = "stopped"
    third = fake_source.collect(answer)
    assert third.summary is not None
    assert third.summary["raw_blobs_added"] == 1
    assert ledger.raw_store_bytes() - after_first < 1000


def test_raw_payload_history_returns_the_exact_bytes(fake_source: FakeSource) -> None:
    ledger = fake_source.ledger
    answer = snapshot([7])
    answer["assets"][1]["raw_payload"]["name"] = "zürich-db-01"
    answer["assets"][1]["raw_payload"]["ratio"] = 0.1
    fake_source.collect(answer)
    answer["assets"][1]["raw_payload"]["status"] = "stopped"
    fake_source.collect(answer)
    [guest] = ledger.list_assets(kind="vm").items
    history = ledger.get_asset(guest.id).raw_history
    assert len(history) == 2
    assert (
        history[0].data
        == (
            '{"description":"guest 7 with a description long enough to look like a real config",'
            '"maxmem":2147483648,"name":"zürich-db-01","node":"node1","ratio":0.1,"status":"stopped","vmid":7}'
        ).encode()
    )
    assert ledger.raw_payload(history[1].sha256) == history[1].data


def refuse_raw_writes(ledger: Ledger) -> None:
    """Make the database refuse new raw blobs, as a full disk or a broken volume would."""
    with ledger.engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql(
                "CREATE TRIGGER refuse_raw BEFORE INSERT ON raw_blob"
                " BEGIN SELECT RAISE(ABORT, 'disk full'); END"
            )
        else:
            conn.exec_driver_sql(
                "CREATE FUNCTION refuse_raw() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'disk full'; END $$"
                " LANGUAGE plpgsql"
            )
            conn.exec_driver_sql(
                "CREATE TRIGGER refuse_raw BEFORE INSERT ON raw_blob"
                " FOR EACH ROW EXECUTE FUNCTION refuse_raw()"
            )


def test_a_failed_raw_write_fails_the_run_and_rolls_everything_back(fake_source: FakeSource) -> None:
    ledger = fake_source.ledger
    fake_source.collect(snapshot(range(1, 6)))
    before = by_external_id(ledger)
    blobs_before = ledger.raw_store_bytes()
    refuse_raw_writes(ledger)
    changed = snapshot(range(3, 9))  # new guests, changed set: new raw payloads to write
    ended = fake_source.collect(changed)
    assert ended.status == "failed"
    assert [e["code"] for e in ended.errors] == ["RAW_PERSIST_FAILED"]
    assert "disk full" in ended.errors[0]["message"]
    assert by_external_id(ledger) == before
    assert ledger.raw_store_bytes() == blobs_before
    with ledger.engine.connect() as conn:
        records = conn.execute(
            sa.text("SELECT count(*) FROM source_record WHERE run_id = :r"), {"r": ended.id}
        )
        assert records.scalar() == 0
