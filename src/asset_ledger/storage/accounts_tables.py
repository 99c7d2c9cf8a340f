"""Tables of the ledger's own users: accounts, browser sessions, API tokens and the sign-in throttle.

They live in the same ``metadata`` as the inventory tables (one schema, one migration history). Session
and token secrets are never stored: only their SHA-256, so a leaked database opens no door.
"""

from __future__ import annotations

import sqlalchemy as sa

from asset_ledger.storage.tables import ID, SHA, UtcDateTime, metadata

ROLES = ("admin", "viewer")

app_user = sa.Table(
    "app_user",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("username", sa.String(100), nullable=False, unique=True),
    sa.Column("password_hash", sa.String(255), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("disabled", sa.Boolean(), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    sa.CheckConstraint("role IN ('admin', 'viewer')", name="role"),
)

user_session = sa.Table(
    "user_session",
    metadata,
    sa.Column("token_sha256", SHA, primary_key=True),
    sa.Column("user_id", ID, sa.ForeignKey("app_user.id", ondelete="CASCADE"), nullable=False),
    sa.Column("csrf_token", sa.String(64), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("expires_at", UtcDateTime(), nullable=False),
    sa.Index("ix_user_session_user", "user_id"),
)

api_token = sa.Table(
    "api_token",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("user_id", ID, sa.ForeignKey("app_user.id", ondelete="CASCADE"), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("token_sha256", SHA, nullable=False, unique=True),
    sa.Column("prefix", sa.String(16), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("last_used_at", UtcDateTime(), nullable=True),
    sa.Column("revoked_at", UtcDateTime(), nullable=True),
    sa.Index("ix_api_token_user", "user_id"),
)

#: Recent failed password checks (sign-in, or the current password when changing it), one row per throttle
#: key per failure: shared by every process on the database. The key is stored as its SHA-256 (a bounded
#: length whatever the user name typed, and no user names or addresses in the table). Rows older than the
#: throttle window are deleted by the next attempt.
login_failure = sa.Table(
    "login_failure",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("key_sha256", SHA, nullable=False),
    sa.Column("failed_at", UtcDateTime(), nullable=False),
    sa.Index("ix_login_failure_key", "key_sha256", "failed_at"),
    sa.Index("ix_login_failure_failed_at", "failed_at"),
)
