"""The sign-in throttle lives in the database: two app instances, each with its own engine (as two
``asset-ledger serve`` processes would be), share one count of failed sign-ins, on SQLite and PostgreSQL.
The clock is injected: the tests move it instead of waiting five minutes."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient

from asset_ledger.api.app import create_app
from asset_ledger.contract import LedgerError
from asset_ledger.core import Ledger, accounts
from asset_ledger.storage import make_engine, read_tx
from asset_ledger.storage.accounts_tables import login_failure
from tests.api.conftest import BASE_URL, form_csrf

PASSWORD = "the-right-password"
OTHER_PASSWORD = "bobs-own-password"


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class Two:
    """Two app instances on the same database, each with its own engine and connection pool."""

    first: FastAPI
    second: FastAPI
    clock: Clock
    ledger: Ledger

    def sign_in(
        self, app: FastAPI, username: str, password: str, address: str = "192.0.2.10"
    ) -> httpx.Response:
        client = TestClient(app, base_url=BASE_URL, client=(address, 40000), follow_redirects=False)
        csrf = form_csrf(client.get("/login").text)
        return client.post("/login", data={"username": username, "password": password, "csrf_token": csrf})

    def status(self, app: FastAPI, username: str, password: str, address: str = "192.0.2.10") -> int:
        return self.sign_in(app, username, password, address).status_code

    def rows(self) -> int:
        with read_tx(self.ledger.engine) as conn:
            return int(conn.scalar(sa.select(sa.func.count()).select_from(login_failure)) or 0)


@pytest.fixture
def two(ledger: Ledger) -> Iterator[Two]:
    accounts.create_user(ledger.engine, "alice", PASSWORD, "admin")
    accounts.create_user(ledger.engine, "bob", OTHER_PASSWORD, "viewer")
    clock = Clock()
    throttle = accounts.Throttle(clock=clock)
    first = create_app(ledger.settings, throttle=throttle)
    second = create_app(ledger.settings, throttle=throttle)
    assert first.state.ledger.engine is not second.state.ledger.engine
    yield Two(first, second, clock, ledger)
    first.state.ledger.close()
    second.state.ledger.close()


def test_failures_in_one_instance_lock_the_user_in_the_other(two: Two) -> None:
    # Five wrong passwords, spread over both instances and five addresses (so only the user name counts).
    for i in range(5):
        app = two.first if i % 2 == 0 else two.second
        assert two.status(app, "alice", f"wrong-{i}", address=f"192.0.2.{20 + i}") == 401
        two.clock.advance(10)
    # Locked in both instances, from a fresh address, even with the right password.
    for app in (two.first, two.second):
        refused = two.sign_in(app, "alice", PASSWORD, address="198.51.100.1")
        assert refused.status_code == 429
        assert "Too many failed sign-ins" in refused.text
        assert "ledger_session" not in refused.cookies
    # Another user is not affected.
    assert two.status(two.second, "bob", OTHER_PASSWORD, address="198.51.100.1") == 303


def test_the_429_says_when_to_retry_and_the_lock_expires(two: Two) -> None:
    for i in range(5):
        assert two.status(two.first, "alice", f"wrong-{i}", address=f"192.0.2.{i}") == 401
    # The first failure was at t=0; the window is 300 s. At t=100 the answer says 200 s.
    two.clock.advance(100)
    refused = two.sign_in(two.second, "alice", PASSWORD)
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "200"
    assert "try again in 200 seconds" in refused.text
    # Still locked one second before the window has passed ...
    two.clock.advance(199)
    late = two.sign_in(two.first, "alice", PASSWORD)
    assert late.status_code == 429
    assert late.headers["retry-after"] == "1"
    # ... and open when it has.
    two.clock.advance(1)
    assert two.status(two.second, "alice", PASSWORD) == 303


def test_a_success_clears_the_user_name_in_every_instance(two: Two) -> None:
    for i in range(4):
        assert two.status(two.first, "alice", f"wrong-{i}", address=f"192.0.2.{i}") == 401
    assert two.status(two.second, "alice", PASSWORD, address="192.0.2.50") == 303
    # The count starts again: four more wrong passwords are allowed before the lock, then the fifth locks.
    for i in range(5):
        assert two.status(two.first, "alice", f"again-{i}", address=f"192.0.2.{100 + i}") == 401
    assert two.status(two.second, "alice", PASSWORD, address="192.0.2.200") == 429


def test_an_address_is_locked_in_every_instance_for_every_user_name(two: Two) -> None:
    for i in range(5):
        assert two.status(two.first, f"nobody-{i}", "guess", address="203.0.113.9") == 401
    assert two.status(two.second, "bob", OTHER_PASSWORD, address="203.0.113.9") == 429
    assert two.status(two.second, "bob", OTHER_PASSWORD, address="203.0.113.10") == 303


def test_expired_failures_are_pruned_by_later_attempts(two: Two) -> None:
    for i in range(5):
        assert two.status(two.first, f"sprayed-{i}", "guess", address=f"192.0.2.{i}") == 401
    assert two.rows() == 10  # one for the user name, one for the address, per failure
    two.clock.advance(301)
    assert two.status(two.second, "bob", OTHER_PASSWORD, address="192.0.2.99") == 303
    # The old failures are gone, and a right password leaves nothing behind.
    assert two.rows() == 0
    # A refused attempt prunes as well: failures at t=0 for other keys, then bob locked at t=200 ...
    for i in range(5):
        assert two.status(two.first, f"sprayed-{i}", "guess", address="192.0.2.1") == 401
    two.clock.advance(200)
    for i in range(5):
        assert two.status(two.second, "bob", "guess", address=f"192.0.2.{10 + i}") == 401
    assert two.rows() == 20
    # ... at t=350 bob is still locked, and the refusal deletes the t=0 failures.
    two.clock.advance(150)
    assert two.status(two.first, "bob", OTHER_PASSWORD, address="192.0.2.99") == 429
    assert two.rows() == 10


def test_concurrent_wrong_passwords_get_exactly_the_limit(ledger: Ledger) -> None:
    """Sixteen wrong passwords at once, through two engines: the check and the count are one step, so
    exactly five are let through to the password check and the rest are refused."""
    accounts.create_user(ledger.engine, "alice", PASSWORD, "admin")
    throttle = accounts.Throttle(clock=Clock())
    engines = [make_engine(ledger.settings.resolved_database_url) for _ in range(2)]
    start = threading.Barrier(16)
    outcomes: list[str] = []
    lock = threading.Lock()

    def guess(i: int) -> None:
        start.wait()
        try:
            user = accounts.sign_in(engines[i % 2], "alice", f"guess-{i}", f"192.0.2.{i}", throttle=throttle)
            outcome = "accepted" if user is not None else "wrong"
        except LedgerError as exc:
            outcome = exc.code
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=guess, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    for engine in engines:
        engine.dispose()
    assert sorted(outcomes) == ["AUTH_THROTTLED"] * 11 + ["wrong"] * 5


def test_throttle_rule_and_retry_after_in_the_core(ledger: Ledger) -> None:
    accounts.create_user(ledger.engine, "carol", PASSWORD, "viewer")
    clock = Clock()
    throttle = accounts.Throttle(limit=3, window=timedelta(seconds=60), clock=clock)
    for _ in range(3):
        assert accounts.sign_in(ledger.engine, "Carol", "wrong", "192.0.2.1", throttle=throttle) is None
        clock.advance(5)
    with pytest.raises(LedgerError) as refused:
        # User names are counted case-insensitively: CAROL is carol.
        accounts.sign_in(ledger.engine, "CAROL", PASSWORD, "192.0.2.2", throttle=throttle)
    assert refused.value.code == "AUTH_THROTTLED"
    assert refused.value.context == {"retry_after_s": 45}
    assert refused.value.retryable
    clock.advance(45)
    user = accounts.sign_in(ledger.engine, "carol", PASSWORD, "192.0.2.2", throttle=throttle)
    assert user is not None
    assert user.username == "carol"
