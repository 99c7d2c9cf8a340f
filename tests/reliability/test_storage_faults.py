"""Storage faults while a snapshot lands: the disk fills (SQLite ``max_page_count``), the PostgreSQL
connection is killed mid-transaction (``pg_terminate_backend`` from another connection), the database is
unreachable, or the SQLite file/directory turns read-only under a running process (an unprivileged
``asset-ledger run``). Every time: the run fails with a registered, retryable code (or, when even that
cannot be written, the run is ended as abandoned by the next one), nothing of the snapshot is visible, no
record points at a missing raw blob and no blob is left unreferenced, and the next run succeeds."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from asset_ledger.contract import LedgerError
from asset_ledger.core import Ledger, Settings, ingest
from tests.cli.conftest import LAUNCHER, REPO
from tests.conftest import add_fake_source
from tests.core.fake_collector import snapshot
from tests.reliability.helpers import ledger_state, orphans

CLEAN = {"records_without_blob": 0, "assets_without_blob": 0, "unreferenced_blobs": 0}


def test_disk_full_fails_the_run_retryable_and_keeps_the_previous_snapshot(
    sqlite_ledger: Ledger, tmp_path: Path, fake_collector: None
) -> None:
    lab = add_fake_source(sqlite_ledger, tmp_path)
    assert lab.collect(snapshot(range(1, 20))).status == "succeeded"
    before = ledger_state(sqlite_ledger)
    with sqlite_ledger.engine.connect() as conn:
        pages = int(conn.exec_driver_sql("PRAGMA page_count").scalar() or 0)

    def limit(dbapi_connection: Any, _record: Any) -> None:
        # Room for the run record, not for 3,000 new guests: the database is "full" mid-snapshot.
        dbapi_connection.execute(f"PRAGMA max_page_count={pages + 8}")

    sa.event.listen(sqlite_ledger.engine, "connect", limit)
    sqlite_ledger.engine.dispose()
    ran = lab.collect(snapshot(range(1, 3000)))
    assert ran.status == "failed"
    assert [e["code"] for e in ran.errors] in (["RAW_PERSIST_FAILED"], ["STORAGE_UNAVAILABLE"]), ran.errors
    assert ran.errors[0]["retryable"] is True
    assert "full" in ran.errors[0]["message"].lower()
    assert ledger_state(sqlite_ledger) == before
    assert orphans(sqlite_ledger) == CLEAN

    sa.event.remove(sqlite_ledger.engine, "connect", limit)
    sqlite_ledger.engine.dispose()
    again = lab.run()
    assert again.status == "succeeded", again.errors
    assert len(sqlite_ledger.list_assets(limit=5000).items) == 3000
    assert orphans(sqlite_ledger) == CLEAN


@pytest.mark.postgres
def test_postgresql_connection_killed_mid_snapshot(
    pg_url: str, pg_admin: sa.Engine, tmp_path: Path, fake_collector: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Ledger(Settings(data_dir=tmp_path / "data", database_url=pg_url)) as ledger:
        ledger.init()
        lab = add_fake_source(ledger, tmp_path)
        assert lab.collect(snapshot(range(1, 6))).status == "succeeded"
        before = ledger_state(ledger)
        database = ledger.engine.url.database
        killed: list[int] = []

        def kill_the_snapshot_connection() -> None:
            # Called inside the snapshot's transaction, after assets and records were written.
            with pg_admin.connect() as conn:
                killed.extend(
                    conn.execute(
                        sa.text(
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE datname = :db AND state LIKE 'idle in transaction%'"
                        ),
                        {"db": database},
                    ).scalars()
                )

        monkeypatch.setattr(ingest, "_pause_for_tests", kill_the_snapshot_connection)
        ran = lab.collect(snapshot(range(3, 40)))
        assert killed == [True]
        assert ran.status == "failed"
        assert [e["code"] for e in ran.errors] == ["STORAGE_UNAVAILABLE"], ran.errors
        assert ran.errors[0]["retryable"] is True
        assert ledger_state(ledger) == before
        assert orphans(ledger) == CLEAN

        monkeypatch.setattr(ingest, "_pause_for_tests", lambda: None)
        again = lab.run()
        assert again.status == "succeeded", again.errors
        assert len(ledger.list_assets(limit=100).items) == 40  # 39 guests + node1 (1, 2 missing)
        assert orphans(ledger) == CLEAN


def test_an_unreachable_database_is_storage_unavailable_without_a_traceback(tmp_path: Path) -> None:
    url = "postgresql+psycopg://ledger:hunter2-db-password@127.0.0.1:9/ledger?connect_timeout=2"
    with (
        Ledger(Settings(data_dir=tmp_path / "data", database_url=url)) as ledger,
        pytest.raises(LedgerError) as caught,
    ):
        ledger.list_sources()
    assert caught.value.code == "STORAGE_UNAVAILABLE"
    assert "hunter2" not in str(caught.value.as_error())


# -- read-only database under a running, unprivileged process ---------------------------------------------

#: Root ignores permission bits; without these capabilities it honours them like any other user.
UNPRIVILEGED = ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner", "--inh-caps=-all"]


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root and setpriv to drop privileges"
)
@pytest.mark.parametrize("what", ["file", "directory"])
def test_a_read_only_sqlite_ledger_refuses_runs_cleanly(
    tmp_path: Path, fake_collector: None, what: str
) -> None:
    """The database file, or the directory SQLite needs for its write-ahead log, is read-only for the
    ledger process."""
    world_dir = tmp_path
    data = world_dir / "data"
    with Ledger(Settings(data_dir=data)) as ledger:
        ledger.init()
        lab = add_fake_source(ledger, world_dir)
        assert lab.collect(snapshot(range(1, 6))).status == "succeeded"
        before = ledger_state(ledger)
        lab.respond(snapshot(range(3, 9)))
    target = data / "ledger.db" if what == "file" else data
    mode = target.stat().st_mode
    target.chmod(stat.S_IMODE(mode) & ~0o222)
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "ASSET_LEDGER_DATA_DIR": str(data),
        "ASSET_LEDGER_DATABASE_URL": "",
    }
    try:
        result = subprocess.run(
            [*UNPRIVILEGED, sys.executable, "-c", LAUNCHER, "run", "lab", "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        target.chmod(stat.S_IMODE(mode))
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "STORAGE_UNAVAILABLE" in output, output
    assert "Traceback" not in output
    with Ledger(Settings(data_dir=data)) as ledger:
        assert ledger_state(ledger) == before
        assert orphans(ledger) == CLEAN
        assert [r.status for r in ledger.list_runs().items] == ["succeeded"]
    # Writable again: the next run (still unprivileged) succeeds.
    again = subprocess.run(
        [*UNPRIVILEGED, sys.executable, "-c", LAUNCHER, "run", "lab", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert again.returncode == 0, again.stdout + again.stderr
