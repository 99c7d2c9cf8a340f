"""The first ledger schema: sources, credentials, runs, the raw store, assets, relations and their records.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from asset_ledger.storage.tables import UtcDateTime, json_type

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ACTIVE = "status IN ('queued', 'running')"


def upgrade() -> None:
    op.create_table(
        "source",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("source_type", sa.String(50), nullable=False),
        sa.Column("config", json_type(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("schedule_interval_s", sa.Integer(), nullable=True),
        sa.Column("missing_guard_share", sa.Float(), nullable=True),
        sa.Column("last_snapshot_run_id", sa.String(36), nullable=True),
        sa.Column("last_snapshot_at", UtcDateTime(), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_source"),
        sa.UniqueConstraint("name", name="uq_source_name"),
    )
    op.create_table(
        "credential",
        sa.Column("source_id", sa.String(36), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["source_id"], ["source.id"], name="fk_credential_source_id_source"),
        sa.PrimaryKeyConstraint("source_id", name="pk_credential"),
    )
    op.create_table(
        "raw_blob",
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("codec", sa.String(16), nullable=False),
        sa.Column("size_raw", sa.Integer(), nullable=False),
        sa.Column("size_stored", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("sha256", name="pk_raw_blob"),
    )
    op.create_table(
        "run",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("source_id", sa.String(36), nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("started_at", UtcDateTime(), nullable=True),
        sa.Column("finished_at", UtcDateTime(), nullable=True),
        sa.Column("heartbeat_at", UtcDateTime(), nullable=False),
        sa.Column("owner", sa.String(300), nullable=True),
        sa.Column("collector_version", sa.String(100), nullable=True),
        sa.Column("detect", json_type(), nullable=True),
        sa.Column("stats", json_type(), nullable=True),
        sa.Column("errors", json_type(), nullable=False),
        sa.Column("warnings", json_type(), nullable=False),
        sa.Column("progress", json_type(), nullable=True),
        sa.Column("summary", json_type(), nullable=True),
        sa.Column("held_response_sha256", sa.String(64), nullable=True),
        sa.Column("confirmed_by", sa.String(200), nullable=True),
        sa.Column("confirmed_at", UtcDateTime(), nullable=True),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'succeeded', 'failed', 'held')", name="ck_run_status"
        ),
        sa.CheckConstraint("mode IN ('healthcheck', 'detect', 'collect')", name="ck_run_mode"),
        sa.CheckConstraint("trigger IN ('manual', 'schedule', 'api')", name="ck_run_trigger"),
        sa.ForeignKeyConstraint(["source_id"], ["source.id"], name="fk_run_source_id_source"),
        sa.ForeignKeyConstraint(
            ["held_response_sha256"], ["raw_blob.sha256"], name="fk_run_held_response_sha256_raw_blob"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_run"),
    )
    op.create_index("ix_run_source_created", "run", ["source_id", "created_at"])
    op.create_index("ix_run_status", "run", ["status"])
    op.create_index(
        "uq_run_one_active_per_source",
        "run",
        ["source_id"],
        unique=True,
        sqlite_where=sa.text(ACTIVE),
        postgresql_where=sa.text(ACTIVE),
    )
    op.create_table(
        "asset",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("source_id", sa.String(36), nullable=False),
        sa.Column("external_kind", sa.String(16), nullable=False),
        sa.Column("external_id", sa.String(512), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("display_name", sa.String(1024), nullable=False),
        sa.Column("power_state", sa.String(16), nullable=True),
        sa.Column("first_seen_at", UtcDateTime(), nullable=False),
        sa.Column("last_seen_at", UtcDateTime(), nullable=False),
        sa.Column("missing_since", UtcDateTime(), nullable=True),
        sa.Column("first_seen_run_id", sa.String(36), nullable=False),
        sa.Column("last_seen_run_id", sa.String(36), nullable=False),
        sa.Column("normalized", json_type(), nullable=False),
        sa.Column("normalized_sha256", sa.String(64), nullable=False),
        sa.Column("raw_sha256", sa.String(64), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.CheckConstraint("status IN ('present', 'missing')", name="ck_asset_status"),
        sa.ForeignKeyConstraint(["source_id"], ["source.id"], name="fk_asset_source_id_source"),
        sa.ForeignKeyConstraint(["raw_sha256"], ["raw_blob.sha256"], name="fk_asset_raw_sha256_raw_blob"),
        sa.PrimaryKeyConstraint("id", name="pk_asset"),
        sa.UniqueConstraint(
            "source_id",
            "external_kind",
            "external_id",
            name="uq_asset_source_id_external_kind_external_id",
        ),
    )
    op.create_index("ix_asset_source_kind_status", "asset", ["source_id", "external_kind", "status"])
    op.create_index("ix_asset_kind_status", "asset", ["external_kind", "status"])
    op.create_table(
        "source_record",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(36), nullable=False),
        sa.Column("asset_id", sa.String(36), nullable=False),
        sa.Column("raw_sha256", sa.String(64), nullable=False),
        sa.Column("normalized_sha256", sa.String(64), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["run.id"], name="fk_source_record_run_id_run"),
        sa.ForeignKeyConstraint(["asset_id"], ["asset.id"], name="fk_source_record_asset_id_asset"),
        sa.ForeignKeyConstraint(
            ["raw_sha256"], ["raw_blob.sha256"], name="fk_source_record_raw_sha256_raw_blob"
        ),
        sa.ForeignKeyConstraint(
            ["normalized_sha256"], ["raw_blob.sha256"], name="fk_source_record_normalized_sha256_raw_blob"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_source_record"),
        sa.UniqueConstraint("run_id", "asset_id", name="uq_source_record_run_id_asset_id"),
    )
    op.create_index("ix_source_record_asset", "source_record", ["asset_id", "id"])
    op.create_table(
        "relation",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("source_id", sa.String(36), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("from_asset_id", sa.String(36), nullable=False),
        sa.Column("to_asset_id", sa.String(36), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("first_seen_at", UtcDateTime(), nullable=False),
        sa.Column("last_seen_at", UtcDateTime(), nullable=False),
        sa.Column("missing_since", UtcDateTime(), nullable=True),
        sa.Column("first_seen_run_id", sa.String(36), nullable=False),
        sa.Column("last_seen_run_id", sa.String(36), nullable=False),
        sa.Column("raw_sha256", sa.String(64), nullable=True),
        sa.CheckConstraint("status IN ('present', 'missing')", name="ck_relation_status"),
        sa.ForeignKeyConstraint(["source_id"], ["source.id"], name="fk_relation_source_id_source"),
        sa.ForeignKeyConstraint(["from_asset_id"], ["asset.id"], name="fk_relation_from_asset_id_asset"),
        sa.ForeignKeyConstraint(["to_asset_id"], ["asset.id"], name="fk_relation_to_asset_id_asset"),
        sa.ForeignKeyConstraint(["raw_sha256"], ["raw_blob.sha256"], name="fk_relation_raw_sha256_raw_blob"),
        sa.PrimaryKeyConstraint("id", name="pk_relation"),
        sa.UniqueConstraint(
            "source_id",
            "type",
            "from_asset_id",
            "to_asset_id",
            name="uq_relation_source_id_type_from_asset_id_to_asset_id",
        ),
    )
    op.create_index("ix_relation_from", "relation", ["from_asset_id"])
    op.create_index("ix_relation_to", "relation", ["to_asset_id"])
    op.create_table(
        "relation_record",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(36), nullable=False),
        sa.Column("relation_id", sa.String(36), nullable=False),
        sa.Column("raw_sha256", sa.String(64), nullable=True),
        sa.ForeignKeyConstraint(["run_id"], ["run.id"], name="fk_relation_record_run_id_run"),
        sa.ForeignKeyConstraint(
            ["relation_id"], ["relation.id"], name="fk_relation_record_relation_id_relation"
        ),
        sa.ForeignKeyConstraint(
            ["raw_sha256"], ["raw_blob.sha256"], name="fk_relation_record_raw_sha256_raw_blob"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_relation_record"),
        sa.UniqueConstraint("run_id", "relation_id", name="uq_relation_record_run_id_relation_id"),
    )
    op.create_index("ix_relation_record_relation", "relation_record", ["relation_id"])


def downgrade() -> None:
    for table in ("relation_record", "relation", "source_record", "asset", "run", "raw_blob", "credential"):
        op.drop_table(table)
    op.drop_table("source")
