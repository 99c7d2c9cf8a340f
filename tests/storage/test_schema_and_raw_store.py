"""Storage: the migrations build exactly the declared tables, SQLite runs as configured, and the raw store
keeps exact bytes, content-addressed and insert-only (both backends)."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from asset_ledger import storage
from asset_ledger.core import Ledger
from asset_ledger.storage import current_revision, head_revision, make_engine, raw, upgrade, write_tx
from asset_ledger.storage.tables import metadata, raw_blob
from asset_ledger.storage.text_search import compared_with_metadata


def _all_tables() -> sa.MetaData:
    for module in pkgutil.iter_modules(storage.__path__):
        if module.name.endswith("tables"):
            importlib.import_module(f"asset_ledger.storage.{module.name}")
    return metadata


def test_migrations_create_exactly_the_declared_schema(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        if db_url.startswith("sqlite"):
            Path(str(engine.url.database)).parent.mkdir(parents=True, exist_ok=True)
        assert upgrade(engine) == head_revision()
        assert upgrade(engine) == head_revision()  # idempotent: init on an existing ledger is an upgrade
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "include_name": compared_with_metadata}
            )
            assert compare_metadata(context, _all_tables()) == []
            assert current_revision(conn) == head_revision()
    finally:
        engine.dispose()


def test_sqlite_runs_in_wal_mode_with_foreign_keys(sqlite_ledger: Ledger) -> None:
    with sqlite_ledger.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
    assert (sqlite_ledger.settings.data_dir / "ledger.db").exists()


def test_raw_store_keeps_exact_bytes_once(ledger: Ledger) -> None:
    payload = {"name": "zürich", "b": [1, 2.5, None], "a": {"y": True, "x": "\u2603"}}
    data = raw.canonical_json(payload)
    assert data == '{"a":{"x":"☃","y":true},"b":[1,2.5,null],"name":"zürich"}'.encode()
    key = raw.sha256_hex(data)
    with write_tx(ledger.engine) as conn:
        first = raw.put_many(conn, {key: data})
        second = raw.put_many(conn, {key: data})
    assert (first.blobs_added, second.blobs_added, second.bytes_added) == (1, 0, 0)
    with ledger.engine.connect() as conn:
        assert raw.get(conn, key) == data
        row = conn.execute(sa.select(raw_blob).where(raw_blob.c.sha256 == key)).one()
    assert row.codec == "zstd"
    assert row.size_raw == len(data)
    assert bytes(row.data) != data  # stored compressed


def test_raw_store_compresses_repetitive_payloads(ledger: Ledger) -> None:
    payload = {"config": "scsi0: local-lvm:vm-100-disk-0,size=32G\n" * 50}
    data = raw.canonical_json(payload)
    with write_tx(ledger.engine) as conn:
        written = raw.put_many(conn, {raw.sha256_hex(data): data})
    assert written.bytes_added < len(data) / 10


def test_the_database_refuses_a_second_asset_with_the_same_key(ledger: Ledger) -> None:
    with ledger.engine.connect() as conn:
        indexes = {tuple(c["column_names"]) for c in sa.inspect(conn).get_unique_constraints("asset")} | {
            tuple(i["column_names"]) for i in sa.inspect(conn).get_indexes("asset") if i.get("unique")
        }
    assert ("source_id", "external_kind", "external_id") in indexes
