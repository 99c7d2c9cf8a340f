"""Engines and transactions for the two supported databases: a SQLite file (default) and PostgreSQL.

SQLite runs in WAL mode with foreign keys on and a busy timeout; write transactions start with
``BEGIN IMMEDIATE`` so two writers queue on the lock instead of failing halfway through. PostgreSQL is
reached through psycopg 3 (``postgresql+psycopg://``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

T = TypeVar("T")

SQLITE_BUSY_TIMEOUT_MS = 30_000
#: Values per ``IN (...)`` list (well under SQLite's 32,766 and PostgreSQL's 65,535 parameter limits).
CHUNK = 5000


def sqlite_url(data_dir: Path) -> str:
    """The default database: ``<data dir>/ledger.db``."""
    return f"sqlite:///{(data_dir / 'ledger.db').resolve()}"


def make_engine(url: str) -> Engine:
    """An engine for ``url`` with the ledger's connection settings applied."""
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    if url.startswith("sqlite"):
        engine = sa.create_engine(
            url,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "isolation_level": None},
        )
        sa.event.listen(engine, "connect", _sqlite_on_connect)
        sa.event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    return sa.create_engine(url, pool_pre_ping=True)


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _sqlite_on_begin(conn: Connection) -> None:
    # The driver's own transaction handling is off (isolation_level=None); start transactions here so
    # that writers take the lock up front.
    if conn.get_execution_options().get("ledger_write"):
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        conn.exec_driver_sql("BEGIN")


@contextmanager
def write_tx(engine: Engine) -> Iterator[Connection]:
    """One write transaction: committed when the block ends, rolled back when it raises."""
    with engine.connect() as conn:
        conn.execution_options(ledger_write=True)
        with conn.begin():
            yield conn


@contextmanager
def read_tx(engine: Engine) -> Iterator[Connection]:
    """One consistent read."""
    with engine.connect() as conn, conn.begin():
        yield conn


def _copy_rows(conn: Connection, table_name: str, table: sa.Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """``COPY table_name FROM STDIN`` on the transaction's own psycopg connection (PostgreSQL's bulk path)."""
    columns = list(rows[0])
    as_json = {name for name in columns if isinstance(table.c[name].type, sa.JSON)}
    quoted = ", ".join(f'"{name}"' for name in columns)
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        with cursor.copy(f'COPY "{table_name}" ({quoted}) FROM STDIN') as copy:
            for row in rows:
                copy.write_row(
                    [
                        json.dumps(row[name], ensure_ascii=False)
                        if name in as_json and row[name] is not None
                        else row[name]
                        for name in columns
                    ]
                )
    finally:
        cursor.close()


_NOTHING = object()


def _sqlite_executemany(
    conn: Connection, table: sa.Table, rows: Sequence[Mapping[str, Any]], suffix: str = ""
) -> None:
    """``INSERT INTO table (...) VALUES (?, ...) <suffix>`` for many rows on SQLite, straight to the driver.

    Each column's own bind processor (UTC timestamps, JSON) converts the values exactly as
    ``conn.execute(table.insert(), rows)`` would; what is skipped is SQLAlchemy's per-row parameter
    bookkeeping, which cost more than SQLite's own work for an XL snapshot.
    """
    columns = list(rows[0])
    processors = [table.c[name].type.bind_processor(conn.dialect) for name in columns]
    quoted = ", ".join(f'"{name}"' for name in columns)
    marks = ", ".join("?" for _ in columns)
    converted: list[list[Any]] = []
    for name, proc in zip(columns, processors, strict=True):
        values = [row[name] for row in rows]
        if proc is not None:
            # Rows of one snapshot share their timestamps: convert each distinct object once.
            last: Any = _NOTHING
            out: Any = None
            for i, value in enumerate(values):
                if value is not last:
                    last, out = value, proc(value)
                values[i] = out
        converted.append(values)
    params = list(zip(*converted, strict=True))
    conn.exec_driver_sql(f'INSERT INTO "{table.name}" ({quoted}) VALUES ({marks}){suffix}', params)  # noqa: S608 -- names come from our own table definitions


def bulk_insert(conn: Connection, table: sa.Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert many rows in the current transaction: ``COPY`` on PostgreSQL, executemany on SQLite (which is
    in-process and already fast). Every row sets the same columns."""
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        _copy_rows(conn, table.name, table, rows)
    elif conn.dialect.name == "sqlite":
        _sqlite_executemany(conn, table, rows)
    else:
        conn.execute(table.insert(), list(rows))


def insert_ignore(
    conn: Connection, table: sa.Table, rows: Sequence[Mapping[str, Any]], key: Sequence[str]
) -> None:
    """``INSERT ... ON CONFLICT (key) DO NOTHING`` for many rows, on either backend (on PostgreSQL through
    ``COPY`` into a temporary table)."""
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        staging = f"staging_{table.name}"
        conn.exec_driver_sql(
            f'CREATE TEMPORARY TABLE IF NOT EXISTS "{staging}" (LIKE "{table.name}") ON COMMIT DELETE ROWS'
        )
        conn.exec_driver_sql(f'TRUNCATE "{staging}"')
        _copy_rows(conn, staging, table, rows)
        keys = ", ".join(f'"{k}"' for k in key)
        conn.exec_driver_sql(
            f'INSERT INTO "{table.name}" SELECT * FROM "{staging}" ON CONFLICT ({keys}) DO NOTHING'  # noqa: S608 -- names come from our own table definitions
        )
        conn.exec_driver_sql(f'TRUNCATE "{staging}"')
    else:
        keys = ", ".join(f'"{k}"' for k in key)
        _sqlite_executemany(conn, table, rows, f" ON CONFLICT ({keys}) DO NOTHING")


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterable[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


#: A write adding more than this share of a table's rows (as last estimated) refreshes its statistics.
GROWTH_FOR_STATISTICS = 0.2
MIN_ROWS_FOR_STATISTICS = 1000


def refresh_statistics_if_grown(
    conn: Connection, tables: Mapping[str, Sequence[str]], grown_by: int, measured_on: str
) -> bool:
    """PostgreSQL: ``ANALYZE`` each table (only the columns named; all when none are) in the current
    transaction when ``grown_by`` rows were just added to ``measured_on`` and that is more than a fifth of
    what its statistics last counted, or it has none. Autovacuum gets there too, but up to a minute or
    more later; until then the planner sees an empty table and walks whole indexes. A no-op on SQLite."""
    if conn.dialect.name != "postgresql" or grown_by < MIN_ROWS_FOR_STATISTICS:
        return False
    estimate = conn.execute(
        sa.text("SELECT reltuples FROM pg_class WHERE oid = to_regclass(:name)"), {"name": measured_on}
    ).scalar()
    if estimate is not None and estimate > 0 and grown_by <= GROWTH_FOR_STATISTICS * estimate:
        return False
    for name, columns in tables.items():
        listed = f" ({', '.join(columns)})" if columns else ""
        conn.exec_driver_sql(f'ANALYZE "{name}"{listed}')
    return True
