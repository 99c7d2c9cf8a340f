"""Delta storage in the raw store: ``raw_blob.base_sha256`` names the full blob a ``zstd-delta`` blob was
compressed against. Existing blobs stay full (``zstd``, no base) and are read as before.

Revision ID: 0004_raw_delta
Revises: 0003_login_throttle
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
import zstandard
from alembic import op

from asset_ledger.storage import raw

revision = "0004_raw_delta"
down_revision = "0003_login_throttle"
branch_labels = None
depends_on = None

FK = "fk_raw_blob_base_sha256_raw_blob"


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        # SQLite adds a nullable column with its reference in place; a batch rebuild of raw_blob would
        # copy every blob and drop a table other tables reference.
        op.execute(
            "ALTER TABLE raw_blob ADD COLUMN base_sha256 VARCHAR(64) "
            f"CONSTRAINT {FK} REFERENCES raw_blob (sha256)"
        )
        return
    op.add_column("raw_blob", sa.Column("base_sha256", sa.String(64), nullable=True))
    op.create_foreign_key(FK, "raw_blob", "raw_blob", ["base_sha256"], ["sha256"])


def downgrade() -> None:
    # Deltas cannot be read without the column: rebuild them as full blobs first.
    bind = op.get_bind()
    blob = sa.table(
        "raw_blob",
        sa.column("sha256", sa.String),
        sa.column("codec", sa.String),
        sa.column("data", sa.LargeBinary),
        sa.column("size_stored", sa.Integer),
        sa.column("base_sha256", sa.String),
    )
    keys = list(bind.scalars(sa.select(blob.c.sha256).where(blob.c.codec == raw.DELTA_CODEC)))
    compressor = zstandard.ZstdCompressor(level=raw.ZSTD_LEVEL)
    for start in range(0, len(keys), 1000):
        for key, data in raw.get_many(bind, keys[start : start + 1000]).items():
            packed = compressor.compress(data)
            bind.execute(
                blob.update()
                .where(blob.c.sha256 == key)
                .values(codec=raw.CODEC, data=packed, size_stored=len(packed), base_sha256=None)
            )
    if bind.dialect.name == "sqlite":
        op.execute("ALTER TABLE raw_blob DROP COLUMN base_sha256")
        return
    op.drop_constraint(FK, "raw_blob", type_="foreignkey")
    op.drop_column("raw_blob", "base_sha256")
