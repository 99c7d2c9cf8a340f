"""Engines and transactions for the two supported databases: a SQLite file (default) and PostgreSQL.

SQLite runs in WAL mode with foreign keys on and a busy timeout; write transactions start with
``BEGIN IMMEDIATE`` so two writers queue on the lock instead of failing halfway through. PostgreSQL is
reached through psycopg 3 (``postgresql+psycopg://``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

T = TypeVar("T")

SQLITE_BUSY_TIMEOUT_MS = 30_000
#: Rows per statement for ``IN (...)`` lists (well under SQLite's and PostgreSQL's parameter limits).
CHUNK = 500


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


def insert_ignore(
    conn: Connection, table: sa.Table, rows: Sequence[Mapping[str, Any]], key: Sequence[str]
) -> None:
    """``INSERT ... ON CONFLICT (key) DO NOTHING`` for many rows, on either backend."""
    if not rows:
        return
    stmt: Any
    if conn.dialect.name == "postgresql":
        stmt = postgresql.insert(table).on_conflict_do_nothing(index_elements=list(key))
    else:
        stmt = sqlite.insert(table).on_conflict_do_nothing(index_elements=list(key))
    conn.execute(stmt, list(rows))


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterable[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
