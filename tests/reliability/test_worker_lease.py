"""Workers as real processes (``asset-ledger worker``) against pvesim: a worker that stops (SIGSTOP: alive,
but no heartbeat) loses its run after the lease; the source is runnable again at once; and when the stalled
worker wakes up, its late snapshot is discarded instead of overwriting the newer one. A worker killed
outright (SIGKILL) mid-collect leaves a failed run and a free source."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from asset_ledger.core import Ledger, Settings
from asset_ledger.core.queue import Worker
from tests.cli.conftest import REPO
from tests.reliability.helpers import add_pve_source, codes, ledger_state, orphans, small_topology

LEASE_S = 2.0
CLEAN = {"records_without_blob": 0, "assets_without_blob": 0, "unreferenced_blobs": 0}


def _worker(ledger: Ledger, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "ASSET_LEDGER_DATA_DIR": str(ledger.settings.data_dir),
        "ASSET_LEDGER_DATABASE_URL": ledger.engine.url.render_as_string(hide_password=False),
        "ASSET_LEDGER_RUN_LEASE_S": str(LEASE_S),
        "ASSET_LEDGER_WORKER_POLL_S": "0.2",
    }
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "asset_ledger.cli", "--log-level", "info", "worker", "--no-schedules"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _wait(predicate: Any, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.fixture
def lab(db_url: str, tmp_path: Path, pvesim_server: Any) -> Any:
    server = pvesim_server(profile="8.4", topology=small_topology(), time_scale=0.01)
    settings = Settings(data_dir=tmp_path / "data", database_url=db_url, run_lease_s=LEASE_S)
    with Ledger(settings) as ledger:
        ledger.init()
        add_pve_source(ledger, server, timeout_ms=30000)
        assert ledger.run_now("pve", "collect").status == "succeeded"
        yield ledger, server


def test_a_stalled_worker_loses_its_run_after_the_lease_and_its_late_snapshot_is_discarded(
    lab: Any, tmp_path: Path
) -> None:
    ledger, server = lab
    server.add_fault(path="/cluster/resources", kind="slow", delay=1.5, count=1)
    queued = ledger.create_run("pve", "collect")
    log = tmp_path / "worker.log"
    worker = _worker(ledger, log)
    try:
        _wait(lambda: ledger.get_run(queued.id).status == "running", "the run to be running")
        time.sleep(0.3)  # inside the collect (the inventory call answers after 1.5 s)
        worker.send_signal(signal.SIGSTOP)
        stopped_at = time.monotonic()
        # Alive but silent: not abandoned before the lease, abandoned after it.
        Worker(ledger, schedules=False).run_once()
        assert ledger.get_run(queued.id).status == "running"
        time.sleep(max(0.0, LEASE_S + 1.0 - (time.monotonic() - stopped_at)))
        Worker(ledger, schedules=False).run_once()
        abandoned = ledger.get_run(queued.id)
        assert abandoned.status == "failed"
        assert codes(abandoned.errors) == ["RUN_ABANDONED"]
        assert "heartbeat" in abandoned.errors[0]["message"]

        # The source is runnable again: a new collect sees a changed estate and lands.
        server.topology.remove_guest(next(iter(server.topology.guests)))
        newer = ledger.run_now("pve", "collect")
        assert newer.status == "succeeded", newer.errors
        assert newer.summary is not None
        assert newer.summary["went_missing"] == 1
        settled = ledger_state(ledger)

        # The stalled worker wakes up and finishes its (older) collect: nothing of it may land.
        worker.send_signal(signal.SIGCONT)
        _wait(
            lambda: queued.id in log.read_text() and "worker.ran" in log.read_text(), "the worker to finish"
        )
        late = ledger.get_run(queued.id)
        assert late.status == "failed", late
        assert codes(late.errors) == ["RUN_ABANDONED"]
        assert ledger_state(ledger) == settled
        assert orphans(ledger) == CLEAN
        assert ledger.get_source("pve").id  # still there
        with ledger.engine.connect() as conn:
            last = conn.exec_driver_sql("SELECT last_snapshot_run_id FROM source").scalar()
        assert last == newer.id
    finally:
        worker.send_signal(signal.SIGCONT)
        worker.terminate()
        worker.wait(timeout=30)


def test_a_worker_killed_mid_collect_leaves_a_failed_run_and_a_free_source(lab: Any, tmp_path: Path) -> None:
    ledger, server = lab
    server.add_fault(path="/cluster/resources", kind="slow", delay=2.0, count=1)
    before = ledger_state(ledger)
    queued = ledger.create_run("pve", "collect")
    worker = _worker(ledger, tmp_path / "worker.log")
    try:
        _wait(lambda: ledger.get_run(queued.id).status == "running", "the run to be running")
        time.sleep(0.5)
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
    Worker(ledger, schedules=False).run_once()
    ended = ledger.get_run(queued.id)
    assert ended.status == "failed"
    assert codes(ended.errors) == ["RUN_ABANDONED"]
    assert ledger_state(ledger) == before
    assert ledger.run_now("pve", "collect").status == "succeeded"
