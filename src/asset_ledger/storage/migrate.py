"""Schema migrations (Alembic), run from code: ``asset-ledger init`` creates or upgrades the schema.

The migration scripts live in ``migrations/`` inside the package, so an installed ledger can upgrade itself.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine

from asset_ledger.storage.db import write_tx

MIGRATIONS = Path(__file__).parent / "migrations"


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(_config()).get_current_head()
    if head is None:
        raise RuntimeError("no migrations found")
    return head


def current_revision(conn: Connection) -> str | None:
    """The schema revision the database is at (``None`` for an empty database)."""
    return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine) -> str:
    """Bring the schema to the newest revision in one transaction; returns it."""
    with write_tx(engine) as conn:
        cfg = _config()
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
        revision = current_revision(conn)
    assert revision is not None
    return revision
