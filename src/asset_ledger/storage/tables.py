"""The ledger's tables (SQLAlchemy Core), shared by the migrations' drift test and every query.

Tables, not ORM classes: ingest works on thousands of rows at once with executemany and set-based
statements, never per-row flushes. The first migration creates exactly these tables; a test compares them.
This module must never hold rules about what the rows mean — that is the core's job.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect

#: Run states in which a run holds its source: at most one such run per source (a partial unique index).
ACTIVE_RUN_STATUSES = ("queued", "running")
RUN_STATUSES = ("queued", "running", "succeeded", "failed", "held")
RUN_MODES = ("healthcheck", "detect", "collect")
RUN_TRIGGERS = ("manual", "schedule", "api")
ASSET_STATUSES = ("present", "missing")


class UtcDateTime(sa.TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend (SQLite stores it naive, as UTC)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def json_type() -> sa.types.TypeEngine[Any]:
    """JSON everywhere, JSONB on PostgreSQL."""
    return sa.JSON().with_variant(JSONB(), "postgresql")


def _in(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{v}'" for v in values)


ID = sa.String(36)
SHA = sa.String(64)

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

source = sa.Table(
    "source",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("source_type", sa.String(50), nullable=False),
    sa.Column("config", json_type(), nullable=False),
    sa.Column("enabled", sa.Boolean(), nullable=False),
    sa.Column("schedule_interval_s", sa.Integer(), nullable=True),
    sa.Column("missing_guard_share", sa.Float(), nullable=True),
    # The last applied snapshot: every asset and relation that is ``present`` was seen in it, so their own
    # last_seen columns are only written when they change or go missing (no 10,000-row update per run).
    sa.Column("last_snapshot_run_id", ID, nullable=True),
    sa.Column("last_snapshot_at", UtcDateTime(), nullable=True),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
)

credential = sa.Table(
    "credential",
    metadata,
    sa.Column("source_id", ID, sa.ForeignKey("source.id"), primary_key=True),
    sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
    sa.Column("key_id", sa.String(32), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
)

#: The content-addressed blob store: raw payloads, normalized records and held responses, as canonical
#: JSON bytes compressed with zstd, keyed by the SHA-256 of the uncompressed bytes. Insert-only.
#: ``codec`` ``zstd``: one frame of the bytes; ``zstd-delta``: one frame compressed against the exact bytes
#: of ``base_sha256`` (always a ``zstd`` blob: a star, never a chain) as a raw-content dictionary.
raw_blob = sa.Table(
    "raw_blob",
    metadata,
    sa.Column("sha256", SHA, primary_key=True),
    sa.Column("codec", sa.String(16), nullable=False),
    sa.Column("size_raw", sa.Integer(), nullable=False),
    sa.Column("size_stored", sa.Integer(), nullable=False),
    sa.Column("data", sa.LargeBinary(), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("base_sha256", SHA, sa.ForeignKey("raw_blob.sha256"), nullable=True),
)

run = sa.Table(
    "run",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("source_id", ID, sa.ForeignKey("source.id"), nullable=False),
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
    sa.Column("held_response_sha256", SHA, sa.ForeignKey("raw_blob.sha256"), nullable=True),
    sa.Column("confirmed_by", sa.String(200), nullable=True),
    sa.Column("confirmed_at", UtcDateTime(), nullable=True),
    sa.CheckConstraint(f"status IN ({_in(RUN_STATUSES)})", name="status"),
    sa.CheckConstraint(f"mode IN ({_in(RUN_MODES)})", name="mode"),
    sa.CheckConstraint(f"trigger IN ({_in(RUN_TRIGGERS)})", name="trigger"),
    sa.Index("ix_run_source_created", "source_id", "created_at"),
    sa.Index("ix_run_status", "status"),
    # At most one queued-or-running run per source, enforced by the database itself.
    sa.Index(
        "uq_run_one_active_per_source",
        "source_id",
        unique=True,
        sqlite_where=sa.text(f"status IN ({_in(ACTIVE_RUN_STATUSES)})"),
        postgresql_where=sa.text(f"status IN ({_in(ACTIVE_RUN_STATUSES)})"),
    ),
)

asset = sa.Table(
    "asset",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("source_id", ID, sa.ForeignKey("source.id"), nullable=False),
    sa.Column("external_kind", sa.String(16), nullable=False),
    sa.Column("external_id", sa.String(512), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("display_name", sa.String(1024), nullable=False),
    sa.Column("power_state", sa.String(16), nullable=True),
    # normalized.virtualization.type (qemu / lxc) as a column of its own, so the filter is an index lookup.
    sa.Column("guest_type", sa.String(8), nullable=True),
    sa.Column("first_seen_at", UtcDateTime(), nullable=False),
    sa.Column("last_seen_at", UtcDateTime(), nullable=False),
    sa.Column("missing_since", UtcDateTime(), nullable=True),
    sa.Column("first_seen_run_id", ID, nullable=False),
    sa.Column("last_seen_run_id", ID, nullable=False),
    sa.Column("normalized", json_type(), nullable=False),
    sa.Column("normalized_sha256", SHA, nullable=False),
    sa.Column("raw_sha256", SHA, sa.ForeignKey("raw_blob.sha256"), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    sa.UniqueConstraint("source_id", "external_kind", "external_id"),
    sa.CheckConstraint(f"status IN ({_in(ASSET_STATUSES)})", name="status"),
    sa.Index("ix_asset_source_kind_status", "source_id", "external_kind", "status"),
    # Asset lists are pages ordered by (display_name, id): with and without the usual kind/status filter
    # the index is walked in order and the walk stops at the end of the page.
    sa.Index("ix_asset_kind_status_name", "external_kind", "status", "display_name", "id"),
    sa.Index("ix_asset_name", "display_name", "id"),
    # The same for the guest-type filter; its exact total is a range of this index.
    sa.Index(
        "ix_asset_kind_guest_type_status_name", "external_kind", "guest_type", "status", "display_name", "id"
    ),
)

#: normalized.virtualization.tags of each asset, one row per tag (the tag filter is an index lookup).
#: Kept in step with ``asset.normalized`` by the ingest; a missing asset keeps the tags it was last seen with.
#: Names and tags are kept to this many characters in the indexed columns (``asset.display_name``,
#: ``asset_tag.tag``): normalized-v1 allows 1,024, which in a 3- or 4-byte script is more than one
#: PostgreSQL B-tree entry holds (2,704 bytes). The normalized record keeps the whole value.
INDEXED_TEXT_CHARS = 256

asset_tag = sa.Table(
    "asset_tag",
    metadata,
    sa.Column("asset_id", ID, sa.ForeignKey("asset.id"), primary_key=True),
    sa.Column("tag", sa.String(1024), primary_key=True),
    sa.Index("ix_asset_tag_tag", "tag", "asset_id"),
)

#: Search accelerators that exist only where the database supports them, outside ``metadata``: on
#: PostgreSQL trigram (pg_trgm) GIN indexes on the lowered name and external id, on SQLite an FTS5 table
#: with the trigram tokenizer (``asset_text``, plus the shadow tables FTS5 keeps). Without them a text
#: search reads every row, with the same answers. See core.asset_search and migration 0005.
TEXT_SEARCH_INDEXES = ("ix_asset_name_trgm", "ix_asset_external_id_trgm")
TEXT_SEARCH_TABLE = "asset_text"
#: PostgreSQL only (migration 0005): ``asset (id) INCLUDE (external_kind, status, power_state, guest_type,
#: source_id)``, so a total of the tag filter checks the other filters without reading the asset rows
#: (index-only). SQLite has no INCLUDE and reads its rows fast enough.
FILTER_COVERING_INDEX = "ix_asset_id_filters"

source_record = sa.Table(
    "source_record",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("run_id", ID, sa.ForeignKey("run.id"), nullable=False),
    sa.Column("asset_id", ID, sa.ForeignKey("asset.id"), nullable=False),
    sa.Column("raw_sha256", SHA, sa.ForeignKey("raw_blob.sha256"), nullable=False),
    sa.Column("normalized_sha256", SHA, sa.ForeignKey("raw_blob.sha256"), nullable=False),
    sa.UniqueConstraint("run_id", "asset_id"),
    sa.Index("ix_source_record_asset", "asset_id", "id"),
)

relation = sa.Table(
    "relation",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("source_id", ID, sa.ForeignKey("source.id"), nullable=False),
    sa.Column("type", sa.String(32), nullable=False),
    sa.Column("from_asset_id", ID, sa.ForeignKey("asset.id"), nullable=False),
    sa.Column("to_asset_id", ID, sa.ForeignKey("asset.id"), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("first_seen_at", UtcDateTime(), nullable=False),
    sa.Column("last_seen_at", UtcDateTime(), nullable=False),
    sa.Column("missing_since", UtcDateTime(), nullable=True),
    sa.Column("first_seen_run_id", ID, nullable=False),
    sa.Column("last_seen_run_id", ID, nullable=False),
    sa.Column("raw_sha256", SHA, sa.ForeignKey("raw_blob.sha256"), nullable=True),
    sa.UniqueConstraint("source_id", "type", "from_asset_id", "to_asset_id"),
    sa.CheckConstraint(f"status IN ({_in(ASSET_STATUSES)})", name="status"),
    sa.Index("ix_relation_from", "from_asset_id"),
    sa.Index("ix_relation_to", "to_asset_id"),
)

relation_record = sa.Table(
    "relation_record",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("run_id", ID, sa.ForeignKey("run.id"), nullable=False),
    sa.Column("relation_id", ID, sa.ForeignKey("relation.id"), nullable=False),
    sa.Column("raw_sha256", SHA, sa.ForeignKey("raw_blob.sha256"), nullable=True),
    sa.UniqueConstraint("run_id", "relation_id"),
    sa.Index("ix_relation_record_relation", "relation_id"),
)
