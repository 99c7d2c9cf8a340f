"""A collect killed (SIGKILL) at random moments, many times over, on both backends: at random times
(process start, collector, validation, the snapshot's transaction, the commit) and at the ingest hook
(mid-transaction, after assets and records were written).

After every kill the snapshot is all-or-nothing: either the ledger is exactly what it was, or the killed
run had committed and its whole snapshot is there (one source record per asset, the asset set equal to
the snapshot's). Raw store integrity holds (see ``helpers.orphans``: no record or asset pointing at a
missing blob, no blob referenced by nothing). The dead run never blocks the next one, and a last run
succeeds."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from asset_ledger.core import Ledger
from asset_ledger.core.ingest import TEST_PAUSE_ENV
from tests.cli.conftest import LAUNCHER, REPO
from tests.conftest import FakeSource
from tests.core.fake_collector import snapshot
from tests.reliability.helpers import ledger_state, orphans

pytestmark = pytest.mark.slow

CLEAN = {"records_without_blob": 0, "assets_without_blob": 0, "unreferenced_blobs": 0}
#: Two estates that differ in 200 guests each way (below the mass-disappearance guard), so every snapshot
#: really changes the ledger.
ESTATES = [range(1, 1500), range(200, 1700)]


def _present(ledger: Ledger) -> set[str]:
    return {a.external_id for a in ledger.list_assets(status="present", limit=5000).items}


def _records(ledger: Ledger, run_id: str) -> int:
    with ledger.engine.connect() as conn:
        return int(
            conn.execute(
                sa.text("SELECT count(*) FROM source_record WHERE run_id = :r"), {"r": run_id}
            ).scalar()
            or 0
        )


def test_kill_at_random_points_many_times(fake_source: FakeSource, tmp_path: Path) -> None:
    ledger = fake_source.ledger
    assert fake_source.collect(snapshot(ESTATES[0])).status == "succeeded"
    rng = random.Random(int(os.environ.get("RELIABILITY_SEED", "7")))
    postgres = ledger.engine.dialect.name == "postgresql"
    rounds = int(os.environ.get("RELIABILITY_KILL_ROUNDS", "4" if postgres else "7"))
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "ASSET_LEDGER_DATA_DIR": str(ledger.settings.data_dir),
        "ASSET_LEDGER_DATABASE_URL": ledger.engine.url.render_as_string(hide_password=False),
    }
    outcomes: list[str] = []
    for index in range(rounds):
        estate = ESTATES[(index + 1) % 2]
        fake_source.respond(snapshot(estate))
        before = ledger_state(ledger)
        runs_before = {r.id for r in ledger.list_runs(limit=1000).items}
        at_hook = index % 3 == 2
        marker = tmp_path / f"paused-{index}"
        process = subprocess.Popen(
            [sys.executable, "-c", LAUNCHER, "run", "lab", "--quiet"],
            env={**env, TEST_PAUSE_ENV: str(marker)} if at_hook else env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        if at_hook:
            deadline = time.monotonic() + 60
            while not marker.exists():
                assert process.poll() is None, process.communicate()
                assert time.monotonic() < deadline
                time.sleep(0.02)
        else:
            time.sleep(rng.uniform(0.6, 3.0))
        process.send_signal(signal.SIGKILL)
        process.communicate()

        new = [r for r in ledger.list_runs(limit=1000).items if r.id not in runs_before]
        assert orphans(ledger) == CLEAN
        if not new:
            outcomes.append("before the run existed")
            assert ledger_state(ledger) == before
            continue
        [killed] = new
        if killed.status == "succeeded":
            outcomes.append("after the commit")
            assert _records(ledger, killed.id) == len(estate) + 1
            assert _present(ledger) == {"node1", *(f"qemu/{i}" for i in estate)}
        else:
            outcomes.append(f"run {killed.status}")
            assert killed.status in ("queued", "running", "failed")
            assert _records(ledger, killed.id) == 0
            assert ledger_state(ledger) == before

    final = fake_source.collect(snapshot(ESTATES[0]))
    assert final.status == "succeeded", final.errors
    assert _present(ledger) == {"node1", *(f"qemu/{i}" for i in ESTATES[0])}
    assert orphans(ledger) == CLEAN
    leftover = [r for r in ledger.list_runs(limit=1000).items if r.status in ("queued", "running")]
    assert leftover == []
    # The hook rounds always kill mid-transaction; the random ones must have hit more than one phase.
    assert outcomes.count("run running") >= rounds // 3, outcomes
    summary = {o: outcomes.count(o) for o in sorted(set(outcomes))}
    print(f"kill outcomes on {ledger.engine.dialect.name}: {summary}")


def test_a_process_killed_between_queueing_and_executing_does_not_block_the_source(
    fake_source: FakeSource,
) -> None:
    ledger = fake_source.ledger
    fake_source.respond(snapshot(range(1, 4)))
    code = (
        LAUNCHER.split("from asset_ledger.cli.main")[0]
        + "import os, signal; from asset_ledger.core import Ledger; "
        "Ledger.execute_run = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL); "
        "Ledger.from_env().run_now('lab', 'collect')"
    )
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "ASSET_LEDGER_DATA_DIR": str(ledger.settings.data_dir),
        "ASSET_LEDGER_DATABASE_URL": ledger.engine.url.render_as_string(hide_password=False),
    }
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, timeout=60, check=False
    )
    assert result.returncode == -signal.SIGKILL, result.stderr
    [queued] = ledger.list_runs().items
    assert queued.status == "queued"
    after = fake_source.run()  # not RUN_ALREADY_ACTIVE for the next five minutes
    assert after.status == "succeeded", after.errors
    assert ledger.get_run(queued.id).status == "failed"
    assert ledger.get_run(queued.id).errors[0]["code"] == "RUN_ABANDONED"
