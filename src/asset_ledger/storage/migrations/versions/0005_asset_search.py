"""Asset search at 100,000 assets: the guest type as a column, tags in a table of their own, indexes for
pages ordered by name, and a substring index for the text search. Existing rows are filled here, so an
upgraded ledger answers every filter as before.

Revision ID: 0005_asset_search
Revises: 0004_raw_delta
Create Date: 2026-11-26
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from alembic import op

from asset_ledger.storage.text_search import create_text_index

revision = "0005_asset_search"
down_revision = "0004_raw_delta"
branch_labels = None
depends_on = None

log = logging.getLogger("asset_ledger.storage.migrate")


def upgrade() -> None:
    conn = op.get_bind()
    # Names are indexed from here on: cut to what one index entry holds (tables.INDEXED_TEXT_CHARS; fixed
    # at 256 here, as a migration must not change with the code).
    op.execute(
        "UPDATE asset SET display_name = substr(display_name, 1, 256) WHERE length(display_name) > 256"
    )
    op.add_column("asset", sa.Column("guest_type", sa.String(8), nullable=True))
    op.drop_index("ix_asset_kind_status", table_name="asset")
    op.create_index("ix_asset_kind_status_name", "asset", ["external_kind", "status", "display_name", "id"])
    op.create_index("ix_asset_name", "asset", ["display_name", "id"])
    op.create_index(
        "ix_asset_kind_guest_type_status_name",
        "asset",
        ["external_kind", "guest_type", "status", "display_name", "id"],
    )
    if conn.dialect.name == "postgresql":
        op.execute(
            "CREATE INDEX ix_asset_id_filters ON asset (id) "
            "INCLUDE (external_kind, status, power_state, guest_type, source_id)"
        )
    op.create_table(
        "asset_tag",
        sa.Column("asset_id", sa.String(36), nullable=False),
        sa.Column("tag", sa.String(1024), nullable=False),
        sa.ForeignKeyConstraint(["asset_id"], ["asset.id"], name="fk_asset_tag_asset_id_asset"),
        sa.PrimaryKeyConstraint("asset_id", "tag", name="pk_asset_tag"),
    )
    op.create_index("ix_asset_tag_tag", "asset_tag", ["tag", "asset_id"])

    # Backfill from each asset's stored normalized record (what the ingest would have written).
    if conn.dialect.name == "postgresql":
        op.execute(
            "UPDATE asset SET guest_type = normalized -> 'virtualization' ->> 'type' "
            "WHERE normalized -> 'virtualization' ->> 'type' IS NOT NULL"
        )
        op.execute(
            "INSERT INTO asset_tag (asset_id, tag) "
            "SELECT DISTINCT asset.id, substr(t.tag, 1, 256) FROM asset, jsonb_array_elements_text("
            "CASE WHEN jsonb_typeof(normalized -> 'virtualization' -> 'tags') = 'array' "
            "THEN normalized -> 'virtualization' -> 'tags' ELSE '[]'::jsonb END) AS t(tag)"
        )
    else:
        op.execute(
            "UPDATE asset SET guest_type = json_extract(normalized, '$.virtualization.type') "
            "WHERE json_extract(normalized, '$.virtualization.type') IS NOT NULL"
        )
        op.execute(
            "INSERT INTO asset_tag (asset_id, tag) "
            "SELECT DISTINCT asset.id, substr(t.value, 1, 256) "
            "FROM asset, json_each(asset.normalized, '$.virtualization.tags') AS t "
            "WHERE json_type(asset.normalized, '$.virtualization.tags') = 'array' AND t.type = 'text'"
        )
    state = create_text_index(conn)
    if conn.dialect.name == "postgresql":
        # Fresh statistics for the new column, table and indexes (the planner picks the index walks from
        # them). SQLite is left without statistics on purpose: see core.asset_search.
        op.execute("ANALYZE asset")
        op.execute("ANALYZE asset_tag")
    if state == "none":
        log.warning(
            "no substring index for the asset search on this %s database (%s); searches by name read every "
            "asset",
            conn.dialect.name,
            "pg_trgm cannot be created by this user" if conn.dialect.name == "postgresql" else "no FTS5",
        )


def downgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name == "sqlite":
        op.execute("DROP TABLE IF EXISTS asset_text")
    else:
        op.execute("DROP INDEX IF EXISTS ix_asset_external_id_trgm")
        op.execute("DROP INDEX IF EXISTS ix_asset_name_trgm")
    op.drop_index("ix_asset_tag_tag", table_name="asset_tag")
    op.drop_table("asset_tag")
    if conn.dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_asset_id_filters")
    op.drop_index("ix_asset_kind_guest_type_status_name", table_name="asset")
    op.drop_index("ix_asset_name", table_name="asset")
    op.drop_index("ix_asset_kind_status_name", table_name="asset")
    op.create_index("ix_asset_kind_status", "asset", ["external_kind", "status"])
    # Plain ALTER TABLE on both (SQLite >= 3.35): a batch copy of ``asset`` would trip its foreign keys.
    op.execute("ALTER TABLE asset DROP COLUMN guest_type")
