"""Sign-in throttle shared by every process: recent failed password checks per throttle key (hashed).

Revision ID: 0003_login_throttle
Revises: 0002_accounts
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from asset_ledger.storage.tables import UtcDateTime

revision = "0003_login_throttle"
down_revision = "0002_accounts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "login_failure",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("key_sha256", sa.String(64), nullable=False),
        sa.Column("failed_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_login_failure"),
    )
    op.create_index("ix_login_failure_key", "login_failure", ["key_sha256", "failed_at"])
    op.create_index("ix_login_failure_failed_at", "login_failure", ["failed_at"])


def downgrade() -> None:
    op.drop_table("login_failure")
