"""Browser sessions: a new session id at every sign-in (no fixation), cookie flags as configured, and
throttled password guessing."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from asset_ledger.api.app import ServiceOptions
from asset_ledger.core import Ledger, accounts
from tests.api.conftest import ADMIN_PASSWORD, BASE_URL, VIEWER_PASSWORD, Service, form_csrf, make_service


def _sign_in(client: TestClient, username: str, password: str) -> int:
    return _sign_in_response(client, username, password).status_code


def _sign_in_response(client: TestClient, username: str, password: str) -> Any:
    csrf = form_csrf(client.get("/login").text)
    return client.post("/login", data={"username": username, "password": password, "csrf_token": csrf})


def _issued(response: Any) -> str:
    """The session id a sign-in response sets."""
    header = next(h for h in response.headers.get_list("set-cookie") if h.startswith("ledger_session="))
    return str(header.split(";", 1)[0].split("=", 1)[1])


def _cookie_header(response_headers: list[str], name: str) -> set[str]:
    cookie = next(h for h in response_headers if h.startswith(f"{name}="))
    return {part.strip().lower() for part in cookie.split(";")}


def test_a_planted_session_id_is_replaced_at_sign_in(service: Service) -> None:
    client = service.client()
    client.cookies.set("ledger_session", "attacker-chosen-value")
    response = _sign_in_response(client, "alice", ADMIN_PASSWORD)
    assert response.status_code == 303
    assert _issued(response) != "attacker-chosen-value"
    # The planted value is no session at all.
    assert accounts.session_for(service.ledger.engine, "attacker-chosen-value") is None
    planted = service.client()
    planted.cookies.set("ledger_session", "attacker-chosen-value")
    assert planted.get("/api/v1/me").status_code == 401


def test_signing_in_over_someone_elses_session_never_upgrades_it(service: Service) -> None:
    """An attacker signed in as a viewer plants their own (valid) session cookie in the admin's browser;
    the admin's sign-in must issue a new session, and the attacker's stays a viewer's."""
    attacker = service.browser("victor", VIEWER_PASSWORD)
    planted = attacker.cookies.get("ledger_session")
    assert planted
    victim = service.client()
    csrf = form_csrf(victim.get("/login").text)
    victim.cookies.set("ledger_session", planted)  # planted between loading the form and submitting it
    response = victim.post(
        "/login", data={"username": "alice", "password": ADMIN_PASSWORD, "csrf_token": csrf}
    )
    assert response.status_code == 303
    issued = _issued(response)
    assert issued != planted
    fresh = service.client()
    fresh.cookies.set("ledger_session", issued)
    assert fresh.get("/api/v1/me").json()["username"] == "alice"
    assert attacker.get("/api/v1/me").json()["username"] == "victor"
    session = accounts.session_for(service.ledger.engine, planted)
    assert session is not None
    assert session.user.username == "victor"


def test_each_sign_in_gets_its_own_session_and_csrf_token(service: Service) -> None:
    first, second = service.browser("alice", ADMIN_PASSWORD), service.browser("alice", ADMIN_PASSWORD)
    assert first.cookies.get("ledger_session") != second.cookies.get("ledger_session")
    assert form_csrf(first.get("/account").text) != form_csrf(second.get("/account").text)
    # Signing out one ends only that one.
    csrf = form_csrf(first.get("/account").text)
    assert first.post("/logout", data={"csrf_token": csrf}).status_code == 303
    assert second.get("/api/v1/me").status_code == 200


def test_cookie_flags_with_and_without_secure(sqlite_ledger: Ledger) -> None:
    for secure in (True, False):
        if secure:
            service = make_service(sqlite_ledger)
        else:
            service = Service(
                ledger=sqlite_ledger,
                app=make_service.__globals__["create_app"](
                    sqlite_ledger.settings,
                    engine=sqlite_ledger.engine,
                    options=ServiceOptions(embedded_worker=False, cookie_secure=False),
                ),
                admin_token="",
                viewer_token="",
            )
        client = service.client()
        page = client.get("/login")
        login_cookie = _cookie_header(page.headers.get_list("set-cookie"), "ledger_login_csrf")
        response = client.post(
            "/login",
            data={"username": "alice", "password": ADMIN_PASSWORD, "csrf_token": form_csrf(page.text)},
        )
        session_cookie = _cookie_header(response.headers.get_list("set-cookie"), "ledger_session")
        for attributes in (login_cookie, session_cookie):
            assert "httponly" in attributes
            assert "samesite=strict" in attributes
            assert ("secure" in attributes) is secure


def test_password_guessing_is_throttled_per_user_and_per_client(service: Service) -> None:
    client = service.client()
    statuses = [_sign_in(client, "alice", f"wrong-guess-{i}") for i in range(5)]
    assert statuses == [401] * 5
    # Locked for a while: even the right password is refused, with 429 and no session.
    assert _sign_in(client, "alice", ADMIN_PASSWORD) == 429
    assert "ledger_session" not in client.cookies
    page = client.get("/login")
    csrf = form_csrf(page.text)
    refused = client.post(
        "/login", data={"username": "alice", "password": ADMIN_PASSWORD, "csrf_token": csrf}
    )
    assert refused.status_code == 429
    assert "Too many failed sign-ins" in refused.text
    # The guesser's address is locked for every user name; another user elsewhere is not.
    assert _sign_in(client, "victor", VIEWER_PASSWORD) == 429
    elsewhere = TestClient(
        service.app, base_url=BASE_URL, client=("198.51.100.7", 50000), follow_redirects=False
    )
    assert _sign_in(elsewhere, "victor", VIEWER_PASSWORD) == 303
    # ... but alice herself is locked everywhere until the window passes.
    assert (
        _sign_in(
            TestClient(service.app, base_url=BASE_URL, client=("198.51.100.8", 1), follow_redirects=False),
            "alice",
            ADMIN_PASSWORD,
        )
        == 429
    )
    # Unknown user names are throttled the same way (no hint which names exist).
    guesser = TestClient(service.app, base_url=BASE_URL, client=("198.51.100.9", 1), follow_redirects=False)
    statuses = [_sign_in(guesser, "nobody", f"guess-{i}") for i in range(6)]
    assert statuses == [401] * 5 + [429]
