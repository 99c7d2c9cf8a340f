"""The Account page: who the user is, their role, and the form to change their own password (current
password, the new one twice), for viewers and admins alike."""

from __future__ import annotations

import re

import httpx
import pytest
from fastapi.testclient import TestClient

from asset_ledger.core import accounts
from tests.api.conftest import ADMIN_PASSWORD, BASE_URL, VIEWER_PASSWORD, Service, form_csrf

NEW_PASSWORD = "a-brand-new-password"


def _submit(client: TestClient, current: str, new: str, again: str | None = None) -> httpx.Response:
    csrf = form_csrf(client.get("/account").text)
    return client.post(
        "/account/password",
        data={
            "csrf_token": csrf,
            "current_password": current,
            "new_password": new,
            "new_password_again": new if again is None else again,
        },
    )


@pytest.mark.parametrize(
    ("username", "password", "role"),
    [("victor", VIEWER_PASSWORD, "viewer"), ("alice", ADMIN_PASSWORD, "admin")],
)
def test_the_account_page_shows_who_and_the_role_and_is_linked_from_the_header(
    service: Service, username: str, password: str, role: str
) -> None:
    client = service.browser(username, password)
    page = client.get("/account").text
    assert re.search(r'<dd id="account-username">\s*' + username, page)
    assert re.search(r'<dd id="account-role">\s*' + role, page)
    assert 'action="/account/password"' in page
    assert 'name="new_password_again"' in page
    # Every page's header links to it.
    assert re.search(r'<a href="/account"[^>]*>Account</a>', client.get("/runs").text)


def test_changing_the_password_ends_the_other_sessions_and_says_so(service: Service) -> None:
    here = service.browser("victor", VIEWER_PASSWORD)
    other = service.browser("victor", VIEWER_PASSWORD)
    done = _submit(here, VIEWER_PASSWORD, NEW_PASSWORD)
    assert done.status_code == 200
    text = done.text
    assert "Your password was changed; 1 other session was signed out. This session stays signed in." in text
    assert NEW_PASSWORD not in text
    assert here.get("/account").status_code == 200
    assert other.get("/account").headers["location"].startswith("/login")
    fresh = service.browser("victor", NEW_PASSWORD)
    assert fresh.get("/api/v1/me").json()["username"] == "victor"
    # Once more, with no other session open (the fresh one signed out).
    assert (
        fresh.post("/logout", data={"csrf_token": form_csrf(fresh.get("/account").text)}).status_code == 303
    )
    again = _submit(here, NEW_PASSWORD, "yet-another-password")
    assert again.status_code == 200
    assert "Your password was changed; no other session was open. This session stays signed in." in again.text


@pytest.mark.parametrize(
    "case",
    [
        (VIEWER_PASSWORD, NEW_PASSWORD, NEW_PASSWORD + "x", 400, "The two new passwords differ"),
        (VIEWER_PASSWORD, "short", None, 400, "Password must have at least 10 characters"),
        ("not-my-password", NEW_PASSWORD, None, 400, "The current password is wrong"),
    ],
    ids=["mismatch", "weak", "wrong-current"],
)
def test_refused_changes_say_why_and_change_nothing(
    service: Service, case: tuple[str, str, str | None, int, str]
) -> None:
    current, new, again, status, message = case
    here = service.browser("victor", VIEWER_PASSWORD)
    other = service.browser("victor", VIEWER_PASSWORD)
    refused = _submit(here, current, new, again)
    assert refused.status_code == status
    assert message in refused.text
    assert 'id="password-changed"' not in refused.text
    assert accounts.authenticate(service.ledger.engine, "victor", VIEWER_PASSWORD) is not None
    assert other.get("/api/v1/me").status_code == 200


def test_wrong_current_passwords_are_throttled_like_sign_in(service: Service) -> None:
    here = service.browser("victor", VIEWER_PASSWORD)
    assert [_submit(here, f"guess-{i}", NEW_PASSWORD).status_code for i in range(5)] == [400] * 5
    locked = _submit(here, VIEWER_PASSWORD, NEW_PASSWORD)
    assert locked.status_code == 429
    assert 0 < int(locked.headers["retry-after"]) <= 300
    assert "try again in" in locked.text
    assert accounts.authenticate(service.ledger.engine, "victor", VIEWER_PASSWORD) is not None
    # The user name is locked for signing in too, from another address.
    elsewhere = TestClient(service.app, base_url=BASE_URL, client=("198.51.100.4", 1), follow_redirects=False)
    csrf = form_csrf(elsewhere.get("/login").text)
    login = elsewhere.post(
        "/login", data={"username": "victor", "password": VIEWER_PASSWORD, "csrf_token": csrf}
    )
    assert login.status_code == 429
