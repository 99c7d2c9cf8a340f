"""Storage: tables, migrations, engines and the raw store. It knows SQL, not the ledger's rules."""

from asset_ledger.storage.db import make_engine, read_tx, sqlite_url, write_tx
from asset_ledger.storage.migrate import current_revision, head_revision, upgrade

__all__ = [
    "current_revision",
    "head_revision",
    "make_engine",
    "read_tx",
    "sqlite_url",
    "upgrade",
    "write_tx",
]
