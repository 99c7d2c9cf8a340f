"""Ledgers for the benchmarks: throw-away SQLite files and PostgreSQL databases, canned snapshots.

A "canned" collector is the real PVE collector class with ``run`` answering a prepared collector response,
so ``Ledger.run_now`` goes through every step of a real run (run record, validation, the ingest rules,
apply in one transaction, run summary) without the network part. It replaces the ``pve`` entry of the
collector registry in this process only.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import sqlalchemy as sa

#: A database on the PostgreSQL server to create and drop the benchmark's own databases from.
PG_ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL") or (
    os.environ.get("ASSET_LEDGER_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test").rsplit(
        "/", 1
    )[0]
    + "/postgres"
)

#: The response the canned collector answers next (set by ``ingest_canned``).
_NEXT: list[dict[str, Any]] = []


def _canned_factory() -> Any:
    from asset_ledger.collectors.pve import PveCollector

    class CannedCollector(PveCollector):
        async def run(self, request: Mapping[str, Any], progress: Any = None) -> dict[str, Any]:
            return _NEXT.pop()

    return CannedCollector()


#: Responses of the recording collector, with the seconds its ``run`` took.
RECORDED: list[tuple[dict[str, Any], float]] = []


def _recording_factory() -> Any:
    """The PVE collector, keeping each response it returns (``RECORDED``)."""
    from asset_ledger.collectors.pve import PveCollector

    class RecordingCollector(PveCollector):
        async def run(self, request: Mapping[str, Any], progress: Any = None) -> dict[str, Any]:
            started = time.perf_counter()
            response = await super().run(request, progress)
            RECORDED.append((response, time.perf_counter() - started))
            return response

    return RecordingCollector()


def use_canned_collector() -> None:
    from asset_ledger import collectors

    collectors.COLLECTORS["pve"] = "benchmarks.ledger_tools:_canned_factory"


def pg_available() -> str | None:
    """``None`` when the PostgreSQL server answers, else why not."""
    try:
        engine = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        engine.dispose()
    except Exception as exc:
        return f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
    return None


@contextlib.contextmanager
def database(backend: str) -> Iterator[tuple[str, Path]]:
    """A fresh, empty database URL and a data directory (key file); removed afterwards."""
    data_dir = Path(tempfile.mkdtemp(prefix="al-bench-"))
    name = None
    admin = None
    try:
        if backend == "sqlite":
            yield f"sqlite:///{data_dir / 'ledger.db'}", data_dir
        else:
            name = f"al_bench_{secrets.token_hex(4)}"
            admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
            base = PG_ADMIN_URL.rsplit("/", 1)[0]
            yield f"{base}/{name}", data_dir
    finally:
        if admin is not None and name is not None:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
        shutil.rmtree(data_dir, ignore_errors=True)


def open_ledger(url: str, data_dir: Path) -> Any:
    from asset_ledger.core.ledger import Ledger
    from asset_ledger.core.settings import Settings

    ledger = Ledger(Settings(data_dir=data_dir, database_url=url))
    ledger.init()
    return ledger


def ensure_source(ledger: Any, name: str, config: Mapping[str, Any], credential: Mapping[str, Any]) -> None:
    from asset_ledger.contract import LedgerError

    try:
        ledger.get_source(name)
    except LedgerError:
        ledger.add_source(name, "pve", dict(config))
        ledger.set_credential(name, dict(credential))


CANNED_CONFIG = {"endpoint": "https://127.0.0.1:8006", "tls_verify": True}
CANNED_CREDENTIAL = {"api_token_id": "reader@pve!ro", "api_token_secret": "0" * 8 + "-bench"}


def ingest_canned(ledger: Any, source_name: str, response: dict[str, Any]) -> Any:
    """Run ``source_name`` with the canned collector answering ``response``; returns the ended run."""
    use_canned_collector()
    ensure_source(ledger, source_name, CANNED_CONFIG, CANNED_CREDENTIAL)
    _NEXT.append(response)
    run = ledger.run_now(source_name, "collect")
    if run.status != "succeeded":
        raise RuntimeError(f"ingest run {run.status}: {run.errors[:2]}")
    return run


def raw_totals(ledger: Any) -> dict[str, int]:
    from asset_ledger.storage.tables import raw_blob

    with ledger.engine.connect() as conn:
        row = conn.execute(
            sa.select(
                sa.func.count(),
                sa.func.coalesce(sa.func.sum(raw_blob.c.size_raw), 0),
                sa.func.coalesce(sa.func.sum(raw_blob.c.size_stored), 0),
            )
        ).one()
    return {"blobs": int(row[0]), "raw_bytes": int(row[1]), "stored_bytes": int(row[2])}


def load(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text("utf-8")))
