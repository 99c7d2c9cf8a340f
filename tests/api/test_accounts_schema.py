"""The accounts migration creates exactly the tables ``storage.accounts_tables`` declares."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from asset_ledger.core import Ledger
from asset_ledger.storage import accounts_tables, read_tx
from asset_ledger.storage.migrate import MIGRATIONS, _config

MINE = {
    accounts_tables.app_user.name,
    accounts_tables.user_session.name,
    accounts_tables.api_token.name,
    accounts_tables.login_failure.name,
}


def test_migrations_have_one_head() -> None:
    assert len(ScriptDirectory.from_config(_config()).get_heads()) == 1
    assert (MIGRATIONS / "versions").is_dir()


def test_accounts_tables_match_their_migration(ledger: Ledger) -> None:
    with read_tx(ledger.engine) as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diffs = compare_metadata(context, accounts_tables.metadata)

    def touches_mine(diff: object) -> bool:
        text = repr(diff)
        return any(f"'{name}'" in text or f"<{name}>" in text for name in MINE)

    assert [d for d in diffs if touches_mine(d)] == []
