"""The run queue: runs queued through the API are executed by workers; several workers never run the same
run; a killed worker's run ends failed; schedules queue collects. On SQLite and PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from asset_ledger.api.app import ServiceOptions
from asset_ledger.core import Ledger, Settings
from asset_ledger.core.ingest import TEST_PAUSE_ENV
from asset_ledger.core.queue import Worker, claim_next, expire_abandoned, next_scheduled, queue_due
from asset_ledger.storage import write_tx
from asset_ledger.storage.tables import run as run_table
from tests.api.conftest import make_service
from tests.conftest import add_fake_source, make_settings
from tests.core.fake_collector import snapshot

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.usefixtures("fake_collector")
def test_a_run_queued_through_the_api_is_executed_by_the_worker(ledger: Ledger, tmp_path: Path) -> None:
    service = make_service(ledger)
    lab = add_fake_source(ledger, tmp_path)
    lab.respond(snapshot(range(1, 4)))
    api = service.client(service.admin_token)
    queued = api.post("/api/v1/sources/lab/runs", json={"mode": "collect"})
    assert queued.status_code == 202
    assert (queued.json()["status"], queued.json()["trigger"]) == ("queued", "api")
    again = api.post("/api/v1/sources/lab/runs", json={"mode": "detect"})
    assert (again.status_code, again.json()["error"]["code"]) == (409, "RUN_ALREADY_ACTIVE")
    assert Worker(ledger).run_once() == queued.json()["id"]
    ended = api.get(f"/api/v1/runs/{queued.json()['id']}").json()
    assert ended["status"] == "succeeded"
    assert api.get("/api/v1/assets?kind=vm").json()["total"] == 3
    assert Worker(ledger).run_once() is None


@pytest.mark.usefixtures("fake_collector")
def test_the_embedded_worker_of_the_app_executes_queued_runs(sqlite_ledger: Ledger, tmp_path: Path) -> None:
    service = make_service(sqlite_ledger, options=ServiceOptions(embedded_worker=True, worker_poll_s=0.05))
    lab = add_fake_source(sqlite_ledger, tmp_path)
    lab.respond(snapshot([1]))
    with service.client(service.admin_token) as api:
        run_id = api.post("/api/v1/sources/lab/runs", json={"mode": "healthcheck"}).json()["id"]
        deadline = time.monotonic() + 20
        while api.get(f"/api/v1/runs/{run_id}").json()["status"] in ("queued", "running"):
            assert time.monotonic() < deadline, "the embedded worker never ran the run"
            time.sleep(0.05)
        assert api.get(f"/api/v1/runs/{run_id}").json()["status"] == "succeeded"


@pytest.mark.postgres
@pytest.mark.usefixtures("fake_collector")
def test_two_workers_on_postgresql_never_run_the_same_run(pg_url: str, tmp_path: Path) -> None:
    """Two workers, each with its own connections, race for 12 queued runs of 12 sources."""
    setup = Ledger(make_settings(tmp_path, pg_url))
    setup.init()
    run_ids = set()
    for i in range(12):
        source = add_fake_source(setup, tmp_path, name=f"src{i}")
        source.respond(snapshot([i + 1]))
        run_ids.add(setup.create_run(source.source.id, "collect").id)
    executed: dict[str, list[str]] = {"a": [], "b": []}
    start = threading.Barrier(2)

    def work(name: str) -> None:
        with Ledger(make_settings(tmp_path, pg_url)) as ledger:
            worker = Worker(ledger, schedules=False, owner=f"worker-{name}:{os.getpid()}")
            start.wait()
            while (ran := worker.run_once()) is not None:
                executed[name].append(ran)

    threads = [threading.Thread(target=work, args=(n,)) for n in executed]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not set(executed["a"]) & set(executed["b"])
    assert len(executed["a"]) + len(executed["b"]) == 12
    assert set(executed["a"]) | set(executed["b"]) == run_ids
    assert {setup.get_run(r).status for r in run_ids} == {"succeeded"}
    setup.close()


@pytest.mark.postgres
def test_claims_skip_locked_rows_instead_of_waiting(
    pg_url: str, tmp_path: Path, fake_collector: None
) -> None:
    """While one worker holds its claim transaction open, another claims the next run at once."""
    ledger = Ledger(make_settings(tmp_path, pg_url))
    ledger.init()
    first = ledger.create_run(add_fake_source(ledger, tmp_path, name="one").source.id, "healthcheck")
    second = ledger.create_run(add_fake_source(ledger, tmp_path, name="two").source.id, "healthcheck")
    with ledger.engine.connect() as holder, holder.begin():
        locked = holder.scalar(sa.select(run_table.c.id).where(run_table.c.id == first.id).with_for_update())
        assert locked == first.id
        started = time.monotonic()
        assert claim_next(ledger.engine, "other:1") == second.id
        assert time.monotonic() - started < 5
    ledger.close()


def _spawn_worker(settings: Settings, marker: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "ASSET_LEDGER_DATA_DIR": str(settings.data_dir),
        "ASSET_LEDGER_DATABASE_URL": settings.resolved_database_url,
        TEST_PAUSE_ENV: str(marker),
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
    }
    code = (
        "from asset_ledger.collectors import COLLECTORS\n"
        "from tests.core.fake_collector import TARGET\n"
        "COLLECTORS['fake'] = TARGET\n"
        "from asset_ledger.core import Ledger, Settings\n"
        "from asset_ledger.core.queue import Worker\n"
        "Worker(Ledger(Settings.from_env()), schedules=False).run_once()\n"
    )
    return subprocess.Popen([sys.executable, "-c", code], env=env, cwd=ROOT)


@pytest.mark.usefixtures("fake_collector")
def test_a_killed_worker_leaves_its_run_failed_not_stuck(ledger: Ledger, tmp_path: Path) -> None:
    lab = add_fake_source(ledger, tmp_path)
    lab.collect(snapshot(range(1, 4)))
    before = {a.external_id: a.status for a in ledger.list_assets().items}
    lab.respond(snapshot(range(1, 6)))
    queued = ledger.create_run("lab", "collect")
    marker = tmp_path / "paused"
    child = _spawn_worker(ledger.settings, marker)
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert child.poll() is None, "the worker exited before reaching the ingest"
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert ledger.get_run(queued.id).status == "running"
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    # The next worker round marks it failed; nothing of the snapshot landed.
    deadline = time.monotonic() + 30
    while ledger.get_run(queued.id).status == "running":
        Worker(ledger, schedules=False).run_once()
        assert time.monotonic() < deadline
        time.sleep(0.1)
    ended = ledger.get_run(queued.id)
    assert ended.status == "failed"
    assert [e["code"] for e in ended.errors] == ["RUN_ABANDONED"]
    assert {a.external_id: a.status for a in ledger.list_assets().items} == before
    # The source is free again.
    assert ledger.run_now("lab", "collect").status == "succeeded"


@pytest.mark.usefixtures("fake_collector")
def test_a_run_whose_lease_expired_is_failed_by_any_worker(ledger: Ledger, tmp_path: Path) -> None:
    """A worker on another machine stopped heart-beating: after the lease, its run is failed."""
    lab = add_fake_source(ledger, tmp_path)
    queued = ledger.create_run("lab", "collect")
    claimed = claim_next(ledger.engine, "elsewhere.example:4242")
    assert claimed == queued.id
    with write_tx(ledger.engine) as conn:
        conn.execute(
            run_table.update()
            .where(run_table.c.id == queued.id)
            .values(status="running", heartbeat_at=datetime.now(UTC) - timedelta(seconds=20))
        )
    assert expire_abandoned(ledger.engine, lease_s=60) == []
    assert ledger.get_run(queued.id).status == "running"
    assert expire_abandoned(ledger.engine, lease_s=10) == [queued.id]
    ended = ledger.get_run(queued.id)
    assert ended.status == "failed"
    assert "heartbeat" in ended.errors[0]["message"]
    assert lab.source.id == ended.source_id


@pytest.mark.usefixtures("fake_collector")
def test_schedules_queue_a_collect_when_the_interval_has_passed(ledger: Ledger, tmp_path: Path) -> None:
    lab = add_fake_source(ledger, tmp_path, schedule_interval_s=3600)
    add_fake_source(ledger, tmp_path, name="manual")
    lab.respond(snapshot([1]))
    (queued,) = queue_due(ledger)
    run = ledger.get_run(queued)
    assert (run.mode, run.trigger, run.source_name) == ("collect", "schedule", "lab")
    assert queue_due(ledger) == []  # one active run per source
    ledger.execute_run(queued)
    assert queue_due(ledger) == []  # not due again for an hour
    due = next_scheduled(ledger.engine)[lab.source.id]
    assert timedelta(minutes=59) < due - run.created_at <= timedelta(hours=1)
    assert set(next_scheduled(ledger.engine)) == {lab.source.id}
