"""The substring index behind the asset search's ``q``: how each database finds "part of the name or
external id" without reading every asset.

* PostgreSQL: GIN trigram indexes (extension ``pg_trgm``) on ``lower(display_name)`` and
  ``lower(external_id)``. The search keeps its plain ``lower(...) LIKE '%...%'``; the planner uses the
  indexes when they exist. Nothing to keep in step: they are indexes.
* SQLite: an FTS5 table with the trigram tokenizer, ``asset_text (asset_id UNINDEXED, display_name,
  external_id)``, filled by migration 0005 and kept in step by the ingest (new assets, changed names). A
  phrase query of three or more characters is a case-insensitive substring match on either column.

Either is created only where the database offers it (``pg_trgm`` may not be installable by the ledger's
user; an SQLite library may be built without FTS5). Without it the search reads every row and gives the
same answers, only slower; ``text_index_state`` says which one a ledger has.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from asset_ledger.storage.db import chunks
from asset_ledger.storage.tables import FILTER_COVERING_INDEX, TEXT_SEARCH_INDEXES, TEXT_SEARCH_TABLE

#: The trigram tokenizer matches nothing for shorter queries.
MIN_INDEXED_QUERY = 3

SQLITE_CREATE = (
    f"CREATE VIRTUAL TABLE {TEXT_SEARCH_TABLE} USING fts5("
    "asset_id UNINDEXED, display_name, external_id, tokenize = 'trigram case_sensitive 0')"
)
PG_CREATE = (
    "CREATE INDEX ix_asset_name_trgm ON asset USING gin (lower(display_name) gin_trgm_ops)",
    "CREATE INDEX ix_asset_external_id_trgm ON asset USING gin (lower(external_id) gin_trgm_ops)",
)


def text_index_state(conn: Connection) -> str:
    """``"fts5"`` (SQLite), ``"pg_trgm"`` (PostgreSQL) or ``"none"`` (every row is read)."""
    if conn.dialect.name == "sqlite":
        found = conn.exec_driver_sql(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (TEXT_SEARCH_TABLE,)
        ).first()
        return "fts5" if found else "none"
    if conn.dialect.name == "postgresql":
        count = conn.execute(
            sa.text(
                "SELECT count(*) FROM pg_indexes WHERE schemaname = current_schema() AND tablename = 'asset' "
                "AND indexname = ANY(:names)"
            ),
            {"names": list(TEXT_SEARCH_INDEXES)},
        ).scalar()
        return "pg_trgm" if count == len(TEXT_SEARCH_INDEXES) else "none"
    return "none"


def create_text_index(conn: Connection) -> str:
    """Create the database's substring index if it can have one (in a savepoint: a refusal leaves the
    caller's transaction usable); returns ``text_index_state`` afterwards. Used by migration 0005."""
    if text_index_state(conn) != "none":
        return text_index_state(conn)
    try:
        with conn.begin_nested():
            if conn.dialect.name == "sqlite":
                conn.exec_driver_sql(SQLITE_CREATE)
                conn.exec_driver_sql(
                    f"INSERT INTO {TEXT_SEARCH_TABLE} (asset_id, display_name, external_id) "  # noqa: S608 -- a constant name
                    "SELECT id, display_name, external_id FROM asset"
                )
            elif conn.dialect.name == "postgresql":
                conn.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm")
                for statement in PG_CREATE:
                    conn.exec_driver_sql(statement)
    except sa.exc.DBAPIError:
        return "none"
    return text_index_state(conn)


def sqlite_phrase(text: str) -> str:
    """An FTS5 query matching ``text`` as one phrase (a substring, with the trigram tokenizer)."""
    return '"' + text.replace('"', '""') + '"'


def sqlite_put(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Index assets (``id``, ``display_name``, ``external_id``) in ``asset_text``."""
    if rows:
        conn.exec_driver_sql(
            f"INSERT INTO {TEXT_SEARCH_TABLE} (asset_id, display_name, external_id) VALUES (?, ?, ?)",  # noqa: S608 -- a constant name
            [(r["id"], r["display_name"], r["external_id"]) for r in rows],
        )


def sqlite_drop(conn: Connection, asset_ids: Iterable[str]) -> None:
    """Remove assets from ``asset_text`` (before indexing their new names)."""
    ids = list(asset_ids)
    for part in chunks(ids):
        marks = ", ".join("?" for _ in part)
        conn.exec_driver_sql(
            f"DELETE FROM {TEXT_SEARCH_TABLE} WHERE asset_id IN ({marks})",  # noqa: S608 -- a constant name
            tuple(part),
        )


def compared_with_metadata(name: str | None, type_: Any, parent_names: Any) -> bool:
    """Alembic ``include_name``: the substring index (and FTS5's shadow tables) and the PostgreSQL-only
    covering index are not in ``metadata``."""
    if (
        type_ == "table"
        and name is not None
        and (name == TEXT_SEARCH_TABLE or name.startswith(TEXT_SEARCH_TABLE + "_"))
    ):
        return False
    return not (type_ == "index" and name in (*TEXT_SEARCH_INDEXES, FILTER_COVERING_INDEX))
