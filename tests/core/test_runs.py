"""Run lifecycle on both backends: one active run per source, dead runs expire, modes, crashes, progress."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from asset_ledger.contract import LedgerError
from asset_ledger.core import Ledger
from asset_ledger.core.ledger import HOST
from asset_ledger.storage.tables import run as run_table
from tests.conftest import FakeSource, add_fake_source
from tests.core.fake_collector import snapshot


def test_a_run_records_its_lifecycle(fake_source: FakeSource) -> None:
    ended = fake_source.collect(snapshot(range(1, 3)))
    assert ended.status == "succeeded"
    assert ended.trigger == "manual"
    assert ended.collector_version == "fake-1.0"
    assert ended.detect is not None
    assert ended.detect["driver"] == "fake-v1"
    assert ended.stats is not None
    assert ended.stats["counts"] == {"host": 1, "vm": 2}
    assert ended.started_at is not None
    assert ended.finished_at is not None
    assert ended.created_at <= ended.started_at <= ended.finished_at
    assert ended.progress is not None
    assert ended.progress["done"] == 3


def test_only_one_run_per_source_is_active(fake_source: FakeSource) -> None:
    ledger = fake_source.ledger
    queued = ledger.create_run("lab", "collect")
    with pytest.raises(LedgerError) as info:
        ledger.create_run("lab", "detect")
    assert info.value.code == "RUN_ALREADY_ACTIVE"
    assert queued.id in info.value.message
    fake_source.respond(snapshot([1]))
    assert ledger.execute_run(queued.id).status == "succeeded"
    assert ledger.create_run("lab", "detect").status == "queued"


def test_the_database_itself_refuses_a_second_active_run(fake_source: FakeSource) -> None:
    ledger = fake_source.ledger
    ledger.create_run("lab", "collect")
    now = ledger.get_run(ledger.list_runs().items[0].id).created_at
    with pytest.raises(sa.exc.IntegrityError), ledger.engine.begin() as conn:
        conn.execute(
            run_table.insert().values(
                id="second",
                source_id=fake_source.source.id,
                mode="collect",
                status="running",
                trigger="api",
                created_at=now,
                heartbeat_at=now,
                errors=[],
                warnings=[],
            )
        )


def _set_run(ledger: Ledger, run_id: str, **values: Any) -> None:
    with ledger.engine.begin() as conn:
        conn.execute(run_table.update().where(run_table.c.id == run_id).values(**values))


def test_a_run_whose_process_died_does_not_block_the_source(fake_source: FakeSource) -> None:
    ledger = fake_source.ledger
    stuck = ledger.create_run("lab", "collect")
    _set_run(ledger, stuck.id, status="running", owner=f"{HOST}:{2**22 + 12345}")  # no such pid
    fresh = ledger.create_run("lab", "collect")
    assert fresh.status == "queued"
    dead = ledger.get_run(stuck.id)
    assert dead.status == "failed"
    assert [e["code"] for e in dead.errors] == ["RUN_ABANDONED"]


def test_a_run_with_an_expired_lease_does_not_block_the_source(fake_source: FakeSource) -> None:
    ledger = fake_source.ledger
    stuck = ledger.create_run("lab", "collect")
    long_ago = stuck.created_at.replace(year=stuck.created_at.year - 1)
    _set_run(ledger, stuck.id, status="running", owner=f"elsewhere:{os.getpid()}", heartbeat_at=long_ago)
    assert ledger.create_run("lab", "collect").status == "queued"
    assert ledger.get_run(stuck.id).errors[0]["code"] == "RUN_ABANDONED"


def test_a_live_run_keeps_blocking(fake_source: FakeSource) -> None:
    ledger = fake_source.ledger
    live = ledger.create_run("lab", "collect")
    _set_run(ledger, live.id, status="running", owner=f"{HOST}:{os.getpid()}")
    with pytest.raises(LedgerError) as info:
        ledger.create_run("lab", "collect")
    assert info.value.code == "RUN_ALREADY_ACTIVE"


def test_only_a_queued_run_executes(fake_source: FakeSource) -> None:
    ended = fake_source.collect(snapshot([1]))
    with pytest.raises(LedgerError) as info:
        fake_source.ledger.execute_run(ended.id)
    assert info.value.code == "RUN_NOT_QUEUED"


@pytest.mark.parametrize("mode", ["healthcheck", "detect"])
def test_healthcheck_and_detect_store_their_result_and_never_touch_assets(
    fake_source: FakeSource, mode: str
) -> None:
    ledger = fake_source.ledger
    fake_source.collect(snapshot(range(1, 4)))
    before = {a.id: (a.status, a.last_seen_run_id) for a in ledger.list_assets().items}
    fake_source.respond(snapshot([]))  # an empty inventory, were it a collect
    ended = fake_source.run(mode)
    assert ended.status == "succeeded", ended.errors
    assert ended.mode == mode
    assert (ended.detect is not None) == (mode == "detect")
    after = {a.id: (a.status, a.last_seen_run_id) for a in ledger.list_assets().items}
    assert after == before


def test_a_crashing_collector_fails_the_run_with_the_exception_type_only(fake_source: FakeSource) -> None:
    fake_source.respond({"__raise__": "RuntimeError"})
    ended = fake_source.run("collect")
    assert ended.status == "failed"
    [error] = ended.errors
    assert error["code"] == "COLLECTOR_CRASHED"
    assert "RuntimeError" in error["message"]
    assert "fake-token-value" not in str(ended.to_dict())


def test_a_disabled_source_does_not_run(fake_source: FakeSource) -> None:
    fake_source.ledger.update_source("lab", enabled=False)
    with pytest.raises(LedgerError) as info:
        fake_source.run("healthcheck")
    assert info.value.code == "SOURCE_DISABLED"


def test_a_source_without_credential_does_not_run(
    ledger: Ledger, tmp_path: Path, fake_collector: None
) -> None:
    ledger.add_source(
        "bare", "fake", {"endpoint": "https://bare.example", "response_file": str(tmp_path / "x")}
    )
    with pytest.raises(LedgerError) as info:
        ledger.run_now("bare", "healthcheck")
    assert info.value.code == "CREDENTIAL_MISSING"


def test_progress_events_reach_the_caller(fake_source: FakeSource) -> None:
    fake_source.respond(snapshot(range(1, 6)))
    events: list[dict[str, Any]] = []
    fake_source.ledger.run_now("lab", "collect", progress=events.append)
    assert [(e["phase"], e["done"], e["total"]) for e in events] == [("inventory", 0, 6), ("inventory", 6, 6)]


def test_runs_are_listed_newest_first_and_filtered(
    ledger: Ledger, tmp_path: Path, fake_collector: None
) -> None:
    lab = add_fake_source(ledger, tmp_path, "lab")
    other = add_fake_source(ledger, tmp_path, "other")
    lab.collect(snapshot([1]))
    broken = snapshot([1])
    broken["stats"]["inventory_complete"] = False
    failed = lab.collect(broken)
    other.collect(snapshot([2]))
    assert ledger.list_runs().total == 3
    assert [r.id for r in ledger.list_runs(source="lab", status="failed").items] == [failed.id]
    page = ledger.list_runs(source="lab", limit=1)
    assert page.total == 2
    assert page.items[0].id == failed.id
    assert ledger.get_run(failed.id[:8]).id == failed.id


def test_unknown_run_and_asset_ids_have_their_codes(ledger: Ledger) -> None:
    with pytest.raises(LedgerError) as run_info:
        ledger.get_run("00000000-0000-0000-0000-000000000000")
    with pytest.raises(LedgerError) as asset_info:
        ledger.get_asset("nope")
    assert (run_info.value.code, asset_info.value.code) == ("RUN_NOT_FOUND", "ASSET_NOT_FOUND")
