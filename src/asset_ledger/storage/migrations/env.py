"""Alembic environment: runs on the connection the ledger hands over (``config.attributes['connection']``)."""

from __future__ import annotations

from alembic import context

from asset_ledger.storage.tables import metadata
from asset_ledger.storage.text_search import compared_with_metadata

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through asset_ledger.storage.migrate (asset-ledger init)")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
    include_name=compared_with_metadata,
)
with context.begin_transaction():
    context.run_migrations()
