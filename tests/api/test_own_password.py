"""A user changing their own password: ``POST /api/v1/me/password`` (browser sessions only) and the core
rule behind it, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from asset_ledger.contract import LedgerError
from asset_ledger.core import Ledger, accounts
from tests.api.conftest import ADMIN_PASSWORD, BASE_URL, VIEWER_PASSWORD, Service, form_csrf, make_service

NEW_PASSWORD = "victors-new-password"


@pytest.fixture
def both(ledger: Ledger) -> Service:
    """The app on a ledger of each backend."""
    return make_service(ledger)


def _csrf(client: TestClient) -> str:
    return form_csrf(client.get("/account").text)


def test_a_session_changes_its_password_and_the_other_sessions_end(both: Service) -> None:
    here = both.browser("victor", VIEWER_PASSWORD)
    elsewhere = [both.browser("victor", VIEWER_PASSWORD) for _ in range(2)]
    admin = both.browser("alice", ADMIN_PASSWORD)
    response = here.post(
        "/api/v1/me/password",
        json={"current_password": VIEWER_PASSWORD, "new_password": NEW_PASSWORD},
        headers={"X-CSRF-Token": _csrf(here)},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["username"] == "victor"
    assert body["other_sessions_ended"] == 2
    assert NEW_PASSWORD not in response.text
    # This session stays; the user's other sessions end; other users' sessions and API tokens are untouched.
    assert here.get("/api/v1/me").status_code == 200
    assert [c.get("/api/v1/me").status_code for c in elsewhere] == [401, 401]
    assert admin.get("/api/v1/me").status_code == 200
    assert both.client(both.viewer_token).get("/api/v1/me").status_code == 200
    # The new password signs in, the old one no longer does.
    engine = both.ledger.engine
    assert accounts.authenticate(engine, "victor", NEW_PASSWORD) is not None
    assert accounts.authenticate(engine, "victor", VIEWER_PASSWORD) is None


def test_a_wrong_current_password_changes_nothing_and_counts_as_a_failed_sign_in(both: Service) -> None:
    here = both.browser("victor", VIEWER_PASSWORD)
    other = both.browser("victor", VIEWER_PASSWORD)
    for i in range(5):
        wrong = here.post(
            "/api/v1/me/password",
            json={"current_password": f"not-it-{i}", "new_password": NEW_PASSWORD},
            headers={"X-CSRF-Token": _csrf(here)},
        )
        assert wrong.status_code == 400
        assert wrong.json()["error"]["code"] == "PASSWORD_WRONG"
    # The sixth try is throttled even with the right password, with a Retry-After.
    throttled = here.post(
        "/api/v1/me/password",
        json={"current_password": VIEWER_PASSWORD, "new_password": NEW_PASSWORD},
        headers={"X-CSRF-Token": _csrf(here)},
    )
    assert throttled.status_code == 429
    error = throttled.json()["error"]
    assert error["code"] == "AUTH_THROTTLED"
    assert error["retryable"] is True
    assert 0 < int(throttled.headers["retry-after"]) <= 300
    assert error["context"]["retry_after_s"] == int(throttled.headers["retry-after"])
    # Nothing changed: the old password is still the one, the other session is still signed in ...
    assert accounts.authenticate(both.ledger.engine, "victor", VIEWER_PASSWORD) is not None
    assert other.get("/api/v1/me").status_code == 200
    # ... and signing in as victor is locked as well, from anywhere (the same count as the sign-in form).
    page = TestClient(both.app, base_url=BASE_URL, client=("198.51.100.3", 1), follow_redirects=False)
    csrf = form_csrf(page.get("/login").text)
    login = page.post("/login", data={"username": "victor", "password": VIEWER_PASSWORD, "csrf_token": csrf})
    assert login.status_code == 429


def test_a_weak_new_password_is_refused_without_using_up_a_try(both: Service) -> None:
    here = both.browser("victor", VIEWER_PASSWORD)
    for new in ("short", "x" * 1025):
        for _ in range(3):
            weak = here.post(
                "/api/v1/me/password",
                json={"current_password": VIEWER_PASSWORD, "new_password": new},
                headers={"X-CSRF-Token": _csrf(here)},
            )
            assert weak.status_code == 400
            assert weak.json()["error"]["code"] == "USER_INVALID"
            assert "password must have" in weak.json()["error"]["message"]
    assert accounts.authenticate(both.ledger.engine, "victor", VIEWER_PASSWORD) is not None
    # Six refusals, and the right change still goes through: rule checks are no password guesses.
    ok = here.post(
        "/api/v1/me/password",
        json={"current_password": VIEWER_PASSWORD, "new_password": NEW_PASSWORD},
        headers={"X-CSRF-Token": _csrf(here)},
    )
    assert ok.status_code == 200


def test_api_tokens_cannot_change_a_password_even_with_the_current_one(both: Service) -> None:
    script = both.client(both.viewer_token)
    for current in (VIEWER_PASSWORD, "not-the-password"):
        refused = script.post(
            "/api/v1/me/password", json={"current_password": current, "new_password": NEW_PASSWORD}
        )
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "AUTH_FORBIDDEN"
    assert accounts.authenticate(both.ledger.engine, "victor", VIEWER_PASSWORD) is not None


def test_a_session_needs_its_csrf_header_and_both_fields(both: Service) -> None:
    here = both.browser("victor", VIEWER_PASSWORD)
    no_csrf = here.post(
        "/api/v1/me/password", json={"current_password": VIEWER_PASSWORD, "new_password": NEW_PASSWORD}
    )
    assert no_csrf.status_code == 403
    assert no_csrf.json()["error"]["code"] == "CSRF_INVALID"
    missing = here.post(
        "/api/v1/me/password",
        json={"new_password": NEW_PASSWORD},
        headers={"X-CSRF-Token": _csrf(here)},
    )
    assert missing.status_code == 422
    assert missing.json()["error"]["code"] == "REQUEST_INVALID"
    assert accounts.authenticate(both.ledger.engine, "victor", VIEWER_PASSWORD) is not None


def test_change_own_password_in_the_core(ledger: Ledger) -> None:
    engine = ledger.engine
    user = accounts.create_user(engine, "erin", "erins-first-password", "viewer")
    kept = accounts.start_session(engine, user)
    ended = [accounts.start_session(engine, user) for _ in range(3)]
    now = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
    throttle = accounts.Throttle(limit=2, window=timedelta(seconds=60), clock=lambda: now)
    with pytest.raises(LedgerError) as weak:
        accounts.change_own_password(
            engine, user.id, "erins-first-password", "short", address="192.0.2.1", throttle=throttle
        )
    assert weak.value.code == "USER_INVALID"
    with pytest.raises(LedgerError) as wrong:
        accounts.change_own_password(
            engine,
            user.id,
            "a-wrong-password",
            "erins-second-password",
            address="192.0.2.1",
            throttle=throttle,
        )
    assert wrong.value.code == "PASSWORD_WRONG"
    count = accounts.change_own_password(
        engine,
        user.id,
        "erins-first-password",
        "erins-second-password",
        address="192.0.2.1",
        keep_session=kept.token,
        throttle=throttle,
    )
    assert count == 3
    assert accounts.session_for(engine, kept.token) is not None
    assert all(accounts.session_for(engine, s.token) is None for s in ended)
    assert accounts.authenticate(engine, "erin", "erins-second-password") is not None
    # The right current password forgave the user name's failure: two more wrong ones before the lock.
    for _ in range(2):
        with pytest.raises(LedgerError) as again:
            accounts.change_own_password(
                engine,
                user.id,
                "nope-nope-nope",
                "erins-third-password",
                address="192.0.2.7",
                throttle=throttle,
            )
        assert again.value.code == "PASSWORD_WRONG"
    with pytest.raises(LedgerError) as locked:
        accounts.change_own_password(
            engine,
            user.id,
            "erins-second-password",
            "erins-third-password",
            address="192.0.2.8",
            throttle=throttle,
        )
    assert locked.value.code == "AUTH_THROTTLED"
    assert locked.value.context == {"retry_after_s": 60}
