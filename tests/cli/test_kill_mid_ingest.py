"""A process killed in the middle of writing a snapshot leaves the previous inventory intact (both backends).

The CLI runs a collect in a subprocess with the ingest test hook ``ASSET_LEDGER_TEST_INGEST_PAUSE``: after
writing the new assets and source records (inside the snapshot's transaction) it creates the marker file
and sleeps. The test kills it with SIGKILL there, checks nothing of that snapshot is visible, and that the
next run is not blocked by the dead one.
"""

from __future__ import annotations

import os
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

pytestmark = pytest.mark.slow


def _inventory(ledger: Ledger) -> dict[str, tuple[str, str]]:
    return {a.external_id: (a.status, a.last_seen_run_id) for a in ledger.list_assets(limit=1000).items}


def test_sigkill_mid_ingest_leaves_the_previous_snapshot(fake_source: FakeSource, tmp_path: Path) -> None:
    ledger = fake_source.ledger
    assert fake_source.collect(snapshot(range(1, 6))).status == "succeeded"
    before = _inventory(ledger)
    blobs_before = ledger.raw_store_bytes()

    fake_source.respond(snapshot(range(3, 9)))  # 2 guests gone, 3 new: a real change to half-write
    marker = tmp_path / "paused"
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "ASSET_LEDGER_DATA_DIR": str(ledger.settings.data_dir),
        "ASSET_LEDGER_DATABASE_URL": ledger.engine.url.render_as_string(hide_password=False),
        TEST_PAUSE_ENV: str(marker),
    }
    process = subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, "run", "lab", "--quiet"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the ingest never reached the pause point"
            time.sleep(0.05)
        [killed_run] = [r for r in ledger.list_runs().items if r.status == "running"]
        with ledger.engine.connect() as conn:  # the half-written snapshot is not visible meanwhile
            written = conn.execute(
                sa.text("SELECT count(*) FROM source_record WHERE run_id = :r"), {"r": killed_run.id}
            ).scalar()
        assert written == 0
    finally:
        process.send_signal(signal.SIGKILL)
        process.communicate()
    assert process.returncode == -signal.SIGKILL

    assert _inventory(ledger) == before
    assert ledger.raw_store_bytes() == blobs_before
    with ledger.engine.connect() as conn:
        records = conn.execute(
            sa.text("SELECT count(*) FROM source_record WHERE run_id = :r"), {"r": killed_run.id}
        ).scalar()
    assert records == 0

    # The dead run does not block the source: the next run marks it abandoned and applies the snapshot.
    after = fake_source.run("collect")
    assert after.status == "succeeded", after.errors
    assert ledger.get_run(killed_run.id).errors[0]["code"] == "RUN_ABANDONED"
    statuses = {k: v[0] for k, v in _inventory(ledger).items()}
    assert statuses == {
        "node1": "present",
        **{f"qemu/{i}": "missing" for i in (1, 2)},
        **{f"qemu/{i}": "present" for i in range(3, 9)},
    }
