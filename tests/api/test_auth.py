"""Accounts, browser sessions, CSRF and API tokens, through the real app."""

from __future__ import annotations

import sqlalchemy as sa

from asset_ledger.core import accounts
from asset_ledger.storage import read_tx
from asset_ledger.storage.accounts_tables import api_token, app_user, user_session
from tests.api.conftest import ADMIN_PASSWORD, VIEWER_PASSWORD, Service, form_csrf


def test_sign_in_sets_a_secure_httponly_strict_session_cookie(service: Service) -> None:
    client = service.client()
    page = client.get("/login")
    response = client.post(
        "/login",
        data={
            "username": "alice",
            "password": ADMIN_PASSWORD,
            "csrf_token": form_csrf(page.text),
            "next": "/runs",
        },
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/runs"
    cookie = next(h for h in response.headers.get_list("set-cookie") if h.startswith("ledger_session="))
    attributes = {part.strip().lower() for part in cookie.split(";")}
    assert {"httponly", "secure", "samesite=strict", "path=/"} <= attributes
    assert client.get("/api/v1/me").json()["username"] == "alice"


def test_a_wrong_password_or_unknown_user_gets_the_same_answer_and_no_session(service: Service) -> None:
    for username, password in (("alice", "wrong-password"), ("nobody", "wrong-password")):
        client = service.client()
        csrf = form_csrf(client.get("/login").text)
        response = client.post(
            "/login", data={"username": username, "password": password, "csrf_token": csrf}
        )
        assert response.status_code == 401
        assert "Wrong user name or password" in response.text
        assert "ledger_session" not in client.cookies
        assert client.get("/api/v1/me").status_code == 401


def test_sign_in_without_the_login_form_token_is_refused(service: Service) -> None:
    client = service.client()
    response = client.post(
        "/login", data={"username": "alice", "password": ADMIN_PASSWORD, "csrf_token": "x"}
    )
    assert response.status_code == 403
    assert client.get("/api/v1/me").status_code == 401


def test_an_open_redirect_after_sign_in_is_refused(service: Service) -> None:
    client = service.client()
    csrf = form_csrf(client.get("/login").text)
    response = client.post(
        "/login",
        data={"username": "alice", "password": ADMIN_PASSWORD, "csrf_token": csrf, "next": "//evil.example/"},
    )
    assert response.headers["location"] == "/"


def test_session_requests_that_change_state_need_the_csrf_token(service: Service) -> None:
    browser = service.browser("alice", ADMIN_PASSWORD)
    refused = browser.post("/api/v1/tokens", json={"name": "no csrf"})
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "CSRF_INVALID"
    csrf = form_csrf(browser.get("/account").text)
    accepted = browser.post("/api/v1/tokens", json={"name": "with csrf"}, headers={"X-CSRF-Token": csrf})
    assert accepted.status_code == 201
    # A form post without the token is refused too, with an explanation page.
    form = browser.post("/account/tokens", data={"name": "forged"})
    assert form.status_code == 403
    assert "CSRF_INVALID" in form.text
    assert [t.name for t in accounts.list_tokens(service.ledger.engine)].count("forged") == 0


def test_sign_out_ends_the_session_on_the_server(service: Service) -> None:
    browser = service.browser("victor", VIEWER_PASSWORD)
    cookie = browser.cookies["ledger_session"]
    csrf = form_csrf(browser.get("/assets").text)
    assert browser.post("/logout", data={"csrf_token": csrf}).status_code == 303
    assert accounts.session_for(service.ledger.engine, cookie) is None
    replay = service.client().get("/api/v1/me", headers={"Cookie": f"ledger_session={cookie}"})
    assert replay.status_code == 401


def test_api_tokens_are_shown_once_stored_hashed_and_revocable(service: Service) -> None:
    admin = service.client(service.admin_token)
    created = admin.post("/api/v1/tokens", json={"name": "backup job"})
    assert created.status_code == 201
    secret = created.json()["token"]
    assert secret.startswith("alt_")
    listed = admin.get("/api/v1/tokens")
    assert secret not in listed.text
    with read_tx(service.ledger.engine) as conn:
        stored = [tuple(map(str, row)) for row in conn.execute(sa.select(api_token))]
    assert all(secret not in value for row in stored for value in row)
    script = service.client(secret)
    assert script.get("/api/v1/me").json()["authenticated_by"] == "token"
    assert admin.delete(f"/api/v1/tokens/{created.json()['id']}").json()["revoked_at"] is not None
    refused = script.get("/api/v1/me")
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "AUTH_REQUIRED"


def test_a_viewer_cannot_see_or_revoke_someone_elses_token(service: Service) -> None:
    admin_tokens = accounts.list_tokens(
        service.ledger.engine, accounts.find_user(service.ledger.engine, "alice").id
    )
    viewer = service.client(service.viewer_token)
    assert all(t["username"] == "victor" for t in viewer.get("/api/v1/tokens").json()["items"])
    response = viewer.delete(f"/api/v1/tokens/{admin_tokens[0].id}")
    assert response.status_code == 404
    assert service.client(service.admin_token).get("/api/v1/me").status_code == 200


def test_passwords_are_stored_as_argon2id_hashes_and_sessions_as_digests(service: Service) -> None:
    browser = service.browser("alice", ADMIN_PASSWORD)
    with read_tx(service.ledger.engine) as conn:
        hashes = list(conn.scalars(sa.select(app_user.c.password_hash)))
        sessions = list(conn.scalars(sa.select(user_session.c.token_sha256)))
    assert all(h.startswith("$argon2id$") for h in hashes)
    assert ADMIN_PASSWORD not in "".join(hashes)
    assert browser.cookies["ledger_session"] not in sessions


def test_disabling_a_user_ends_their_sessions_and_tokens(service: Service) -> None:
    browser = service.browser("victor", VIEWER_PASSWORD)
    admin = service.client(service.admin_token)
    victor = accounts.find_user(service.ledger.engine, "victor")
    assert admin.patch(f"/api/v1/users/{victor.id}", json={"disabled": True}).status_code == 200
    assert browser.get("/api/v1/me").status_code == 401
    assert service.client(service.viewer_token).get("/api/v1/me").status_code == 401


def test_the_last_admin_cannot_be_demoted_disabled_or_deleted(service: Service) -> None:
    admin = service.client(service.admin_token)
    alice = accounts.find_user(service.ledger.engine, "alice")
    for call in (
        lambda: admin.patch(f"/api/v1/users/{alice.id}", json={"role": "viewer"}),
        lambda: admin.patch(f"/api/v1/users/{alice.id}", json={"disabled": True}),
        lambda: admin.delete(f"/api/v1/users/{alice.id}"),
    ):
        response = call()
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "USER_INVALID"
    assert admin.get("/api/v1/me").json()["role"] == "admin"


def test_user_validation_errors_carry_registered_codes(service: Service) -> None:
    admin = service.client(service.admin_token)
    short = admin.post("/api/v1/users", json={"username": "bob", "password": "short", "role": "viewer"})
    assert (short.status_code, short.json()["error"]["code"]) == (400, "USER_INVALID")
    dup = admin.post(
        "/api/v1/users", json={"username": "victor", "password": "long-enough-1", "role": "viewer"}
    )
    assert (dup.status_code, dup.json()["error"]["code"]) == (409, "USER_EXISTS")
    bad_role = admin.post(
        "/api/v1/users", json={"username": "carol", "password": "long-enough-1", "role": "root"}
    )
    assert (bad_role.status_code, bad_role.json()["error"]["code"]) == (422, "REQUEST_INVALID")
    assert "role" in bad_role.json()["error"]["context"]["fields"]
    missing = admin.get("/api/v1/nothing-here")
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "NOT_FOUND")
    assert "password" not in admin.get("/api/v1/users").text


def test_pages_send_security_headers(service: Service) -> None:
    response = service.client().get("/login")
    assert "default-src 'self'" in response.headers["content-security-policy"]
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["cache-control"] == "no-store"


def test_repeated_wrong_passwords_are_throttled(service: Service) -> None:
    client = service.client()
    for _ in range(5):
        csrf = form_csrf(client.get("/login").text)
        assert (
            client.post(
                "/login", data={"username": "alice", "password": "guess", "csrf_token": csrf}
            ).status_code
            == 401
        )
    csrf = form_csrf(client.get("/login").text)
    refused = client.post(
        "/login", data={"username": "alice", "password": ADMIN_PASSWORD, "csrf_token": csrf}
    )
    assert refused.status_code == 429
    assert "Too many failed sign-ins" in refused.text
    assert "ledger_session" not in client.cookies
    # API tokens are not affected.
    assert service.client(service.admin_token).get("/api/v1/me").status_code == 200
