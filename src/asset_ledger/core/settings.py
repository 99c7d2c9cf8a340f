"""Where the ledger keeps its data and how it behaves, read from the environment.

- ``ASSET_LEDGER_DATA_DIR``: data directory (SQLite file, key file); default ``./var``.
- ``ASSET_LEDGER_DATABASE_URL``: database URL, e.g. ``postgresql+psycopg://user@host/db``;
  default ``sqlite:///<data dir>/ledger.db``.
- ``ASSET_LEDGER_SECRET_KEY``: credential encryption key (Fernet); default: ``<data dir>/secret.key``.
- ``ASSET_LEDGER_MISSING_GUARD_SHARE``: share of known assets a snapshot may mark missing before it is
  held back; default ``0.5`` (a source can override it).
- ``ASSET_LEDGER_MISSING_GUARD_MIN``: the guard applies from this many known assets on; default ``5``.
- ``ASSET_LEDGER_RUN_LEASE_S``: a run whose heartbeat is older than this counts as abandoned; default 300.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from asset_ledger.contract import LedgerError
from asset_ledger.storage import sqlite_url


@dataclass(frozen=True, slots=True)
class Settings:
    data_dir: Path = Path("var")
    database_url: str | None = None
    secret_key: str | None = None
    missing_guard_share: float = 0.5
    missing_guard_min_known: int = 5
    run_lease_s: float = 300.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        return cls(
            data_dir=Path(env.get("ASSET_LEDGER_DATA_DIR") or "var"),
            database_url=env.get("ASSET_LEDGER_DATABASE_URL") or None,
            secret_key=env.get("ASSET_LEDGER_SECRET_KEY") or None,
            missing_guard_share=_number(env, "ASSET_LEDGER_MISSING_GUARD_SHARE", 0.5),
            missing_guard_min_known=int(_number(env, "ASSET_LEDGER_MISSING_GUARD_MIN", 5)),
            run_lease_s=_number(env, "ASSET_LEDGER_RUN_LEASE_S", 300.0),
        )

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or sqlite_url(self.data_dir)

    @property
    def key_file(self) -> Path:
        return self.data_dir / "secret.key"

    @property
    def uses_default_sqlite(self) -> bool:
        return self.database_url is None


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    text = env.get(name)
    if not text:
        return default
    try:
        return float(text)
    except ValueError:
        raise LedgerError("SOURCE_CONFIG_INVALID", f"{name}={text!r} is not a number") from None
