"""Shared fixtures: a ledger on SQLite and on PostgreSQL, and a fake source whose answers a test controls.

PostgreSQL: ``ASSET_LEDGER_TEST_PG_URL`` (default ``postgresql+psycopg://postgres@127.0.0.1:5432/test``).
Every test gets a database of its own (``al_test_<random>``, dropped afterwards), so xdist workers never
share state. Without a reachable server the PostgreSQL cases are skipped with the reason shown, unless
``ASSET_LEDGER_REQUIRE_PG=1`` (CI), where they fail instead.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from asset_ledger.collectors import COLLECTORS
from asset_ledger.core import Ledger, Run, Settings, Source
from tests.core.fake_collector import TARGET

PG_URL = os.environ.get("ASSET_LEDGER_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REQUIRE_PG = os.environ.get("ASSET_LEDGER_REQUIRE_PG") == "1"
FAKE_TOKEN = "fake-token-value"


@pytest.fixture(scope="session")
def pg_admin() -> Iterator[sa.Engine]:
    """An AUTOCOMMIT engine on the PostgreSQL maintenance database, or a skip (a failure on CI)."""
    engine = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT", pool_pre_ping=True)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except sa.exc.SQLAlchemyError as exc:
        engine.dispose()
        reason = f"PostgreSQL not reachable at {make_url(PG_URL).render_as_string(hide_password=True)}"
        reason += f" ({type(exc.orig or exc).__name__})"
        if REQUIRE_PG:
            pytest.fail(f"{reason} and ASSET_LEDGER_REQUIRE_PG=1")
        pytest.skip(reason)
    yield engine
    engine.dispose()


@pytest.fixture
def pg_url(pg_admin: sa.Engine) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test."""
    name = f"al_test_{secrets.token_hex(6)}"
    with pg_admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    yield url
    with pg_admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The database URL of a fresh ledger, once per backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'data' / 'ledger.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


def make_settings(tmp_path: Path, db_url: str | None, **overrides: Any) -> Settings:
    return Settings(data_dir=tmp_path / "data", database_url=db_url, **overrides)


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    return make_settings(tmp_path, db_url)


@pytest.fixture
def ledger(settings: Settings) -> Iterator[Ledger]:
    """An initialised ledger, on SQLite and on PostgreSQL."""
    with Ledger(settings) as ledger:
        ledger.init()
        yield ledger


@pytest.fixture
def sqlite_ledger(tmp_path: Path) -> Iterator[Ledger]:
    """An initialised ledger on the default SQLite file under a temporary data directory."""
    with Ledger(make_settings(tmp_path, None)) as ledger:
        ledger.init()
        yield ledger


@pytest.fixture
def fake_collector(monkeypatch: pytest.MonkeyPatch) -> None:
    """Install the fake collector as source type ``fake``."""
    monkeypatch.setitem(COLLECTORS, "fake", TARGET)


@dataclass
class FakeSource:
    """A ``fake`` source in a ledger; ``respond`` sets what its collector answers next."""

    ledger: Ledger
    source: Source
    response_file: Path

    def respond(self, answer: dict[str, Any]) -> None:
        self.response_file.write_text(json.dumps(answer), encoding="utf-8")

    def run(self, mode: str = "collect") -> Run:
        return self.ledger.run_now(self.source.name, mode)

    def collect(self, answer: dict[str, Any]) -> Run:
        self.respond(answer)
        return self.run("collect")


def add_fake_source(ledger: Ledger, tmp_path: Path, name: str = "lab", **options: Any) -> FakeSource:
    response_file = tmp_path / f"{name}-answer.json"
    source = ledger.add_source(
        name, "fake", {"endpoint": "https://lab.example:8006", "response_file": str(response_file)}, **options
    )
    ledger.set_credential(name, {"token": FAKE_TOKEN})
    return FakeSource(ledger, source, response_file)


@pytest.fixture
def fake_source(ledger: Ledger, tmp_path: Path, fake_collector: None) -> FakeSource:
    """A fake source with a credential, on both backends."""
    return add_fake_source(ledger, tmp_path)
