"""Two collects of one source at once: one runs, the other is refused (``RUN_ALREADY_ACTIVE``) — as
concurrent ``create_run`` calls on both backends, and as two real ``asset-ledger run`` processes against
pvesim. A snapshot is never interleaved: every record of the source belongs to exactly one run."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from asset_ledger.contract import LedgerError
from asset_ledger.core import Ledger, Settings
from tests.cli.conftest import REPO
from tests.conftest import FakeSource
from tests.reliability.helpers import add_pve_source, orphans, small_topology


def test_racing_create_run_calls_let_exactly_one_through(fake_source: FakeSource) -> None:
    ledger = fake_source.ledger
    barrier = threading.Barrier(8)
    outcomes: list[str] = []
    lock = threading.Lock()

    def race() -> None:
        with Ledger(ledger.settings) as own:  # a connection pool of its own, as another process has
            barrier.wait()
            try:
                own.create_run("lab", "collect")
                outcome = "queued"
            except LedgerError as exc:
                outcome = exc.code
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=race) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(outcomes) == ["RUN_ALREADY_ACTIVE"] * 7 + ["queued"]
    assert [r.status for r in ledger.list_runs().items] == ["queued"]


def test_two_cli_collects_of_one_source_never_interleave(
    db_url: str, tmp_path: Path, pvesim_server: Any
) -> None:
    server = pvesim_server(profile="8.4", topology=small_topology(), time_scale=0.01)
    server.add_fault(path="/cluster/resources", kind="slow", delay=1.0, count=1)
    settings = Settings(data_dir=tmp_path / "data", database_url=db_url)
    with Ledger(settings) as ledger:
        ledger.init()
        add_pve_source(ledger, server)
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "ASSET_LEDGER_DATA_DIR": str(settings.data_dir),
            "ASSET_LEDGER_DATABASE_URL": ledger.engine.url.render_as_string(hide_password=False),
        }
        args = [sys.executable, "-m", "asset_ledger.cli", "run", "pve", "--quiet"]
        processes = [
            subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)
        ]
        results = [p.communicate(timeout=120) for p in processes]
        codes = sorted(p.returncode for p in processes)
        output = "".join(out + err for out, err in results)
        runs = ledger.list_runs().items
        assert len(runs) == 1, output
        assert runs[0].status == "succeeded"
        assert codes[0] == 0
        assert codes[1] != 0
        assert "RUN_ALREADY_ACTIVE" in output
        with ledger.engine.connect() as conn:
            per_run = conn.execute(
                sa.text("SELECT run_id, count(*) FROM source_record GROUP BY run_id")
            ).all()
        assert [r[0] for r in per_run] == [runs[0].id]
        assert orphans(ledger)["records_without_blob"] == 0
