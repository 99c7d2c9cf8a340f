"""Every route of the app, generated from its route table: the API routes are the rows of
``tests/api/test_access_matrix.py``, the pages and forms are the rows here. A route added to the app
without a row in either table fails ``test_every_route_of_the_app_has_a_row``.

For pages and forms: anonymous callers are sent to the sign-in page (and change nothing), viewers get the
pages they may see and 403 on admin pages and forms, admins get everything; every state-changing form
refuses a signed-in session without its CSRF token; every response carries the security headers."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.routing import Route

from tests.api.conftest import ADMIN_PASSWORD, VIEWER_PASSWORD, Service, form_csrf
from tests.api.test_access_matrix import CASES as API_CASES
from tests.api.test_access_matrix import World
from tests.conftest import FakeSource

ANON, VIEWER, ADMIN = "anonymous", "viewer", "admin"
#: Anonymous callers of a page are redirected to /login?next=...; anonymous form posts get 401.
LOGIN = "login"


@dataclass(frozen=True)
class Page:
    method: str
    path: str
    anonymous: int | str
    viewer: int | tuple[int, ...]
    admin: int | tuple[int, ...]
    form: dict[str, str] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.method} {self.path}"


PAGES = [
    Page("GET", "/login", 200, 303, 303),  # signed-in users go on to the ledger
    Page("POST", "/logout", 401, 303, 303),
    Page("GET", "/", LOGIN, 303, 303),
    Page("GET", "/account", LOGIN, 200, 200),
    # A wrong current password: refused with 400 for both (the right one: tests/web/test_account_page.py).
    Page(
        "POST",
        "/account/password",
        401,
        400,
        400,
        {
            "current_password": "not-the-password",
            "new_password": "a-new-password",
            "new_password_again": "a-new-password",
        },
    ),
    Page("POST", "/account/tokens", 401, 201, 201, {"name": "a script"}),
    Page("POST", "/account/tokens/{own_token}/revoke", 401, 303, 303),
    Page("GET", "/users", LOGIN, 403, 200),
    Page("POST", "/users", 401, 403, 303, {"username": "new-{n}", "password": "long-password-1"}),
    Page("POST", "/users/{spare_user}", 401, 403, 303, {"role": "viewer"}),
    Page("GET", "/sources", LOGIN, 200, 200),
    Page("GET", "/sources/new", LOGIN, 403, 200),
    Page("POST", "/sources/new", 401, 403, (303, 400, 422), {"name": "new-{n}", "endpoint": "pve.example"}),
    Page("GET", "/sources/lab/edit", LOGIN, 403, 200),
    Page("POST", "/sources/{spare_source}/edit", 401, 403, (303, 400, 422), {"endpoint": "pve.example"}),
    Page("POST", "/sources/{spare_source}/delete", 401, 403, 303),
    Page("POST", "/sources/{spare_source}/runs", 401, 403, 303, {"mode": "healthcheck"}),
    Page("GET", "/runs", LOGIN, 200, 200),
    Page("GET", "/runs/{run_id}", LOGIN, 200, 200),
    Page("POST", "/runs/{held_run}/confirm", 401, 403, 303),
    Page("GET", "/assets", LOGIN, 200, 200),
    Page("GET", "/assets/{vm_id}", LOGIN, 200, 200),
    Page("GET", "/topology", LOGIN, 200, 200),
]
#: The sign-in form has its own pre-session CSRF cookie (tests/api/test_auth.py, test_sessions.py).
OWN_TESTS = {"POST /login"}


def _routes(service: Service) -> set[str]:
    found: set[str] = set()
    for included in service.app.router.routes:
        router = getattr(included, "original_router", None)
        routes = router.routes if router is not None else [included]
        for route in routes:
            if isinstance(route, Route):
                found.update(f"{m} {route.path}" for m in (route.methods or set()) - {"HEAD"})
    return found


def _template(path: str) -> str:
    renames = {
        "{own_token}": "{token_id}",
        "{spare_user}": "{user_id}",
        "{viewer_id}": "{user_id}",
        "{spare_source}": "{ref}",
        "/sources/lab": "/sources/{ref}",
        "{held_run}": "{run_id}",
        "{vm_id}": "{asset_id}",
    }
    for old, new in renames.items():
        path = path.replace(old, new)
    return path


def test_every_route_of_the_app_has_a_row(service: Service) -> None:
    tabled = {f"{c.method} {_template(c.path)}" for c in API_CASES}
    tabled |= {f"{p.method} {_template(p.path)}" for p in PAGES}
    assert _routes(service) - OWN_TESTS == tabled


def _callers(service: Service) -> dict[str, TestClient]:
    return {
        ANON: service.client(),
        VIEWER: service.browser("victor", VIEWER_PASSWORD),
        ADMIN: service.browser("alice", ADMIN_PASSWORD),
    }


def _csrf(client: TestClient) -> str:
    return form_csrf(client.get("/account").text)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.id)
def test_page_access(page: Page, service: Service, lab: FakeSource, tmp_path: Path) -> None:
    world = World(service, lab, tmp_path)
    callers = _callers(service)
    got: dict[str, Any] = {}
    for role, client in callers.items():
        path = world.path(page, role)  # type: ignore[arg-type]
        data = {k: v.format(n=world.counter) for k, v in page.form.items()}
        if page.method == "POST" and role != ANON:
            data["csrf_token"] = _csrf(client)
        response = client.request(page.method, path, data=data or None)
        status: int | str = response.status_code
        if role == ANON and status == 303 and response.headers["location"].startswith("/login?next="):
            status = LOGIN
        got[role] = status
        assert response.headers["x-content-type-options"] == "nosniff"
    expected = {ANON: page.anonymous, VIEWER: page.viewer, ADMIN: page.admin}
    for role, want in expected.items():
        assert got[role] in (want if isinstance(want, tuple) else (want,)), (role, got)


FORMS = [p for p in PAGES if p.method == "POST"]


@pytest.mark.parametrize("page", FORMS, ids=lambda p: p.id)
def test_every_form_refuses_a_session_without_its_csrf_token(
    page: Page, service: Service, lab: FakeSource, tmp_path: Path
) -> None:
    world = World(service, lab, tmp_path)
    admin = service.browser("alice", ADMIN_PASSWORD)
    other = service.browser("alice", ADMIN_PASSWORD)  # the same user, another session
    path = world.path(page, ADMIN)  # type: ignore[arg-type]
    before = _observable(service)
    for token in ("missing", "wrong", "other-session"):
        data = {k: v.format(n=world.counter) for k, v in page.form.items()}
        if token == "wrong":
            data["csrf_token"] = "x" * 43
        elif token == "other-session":
            data["csrf_token"] = _csrf(other)
        response = admin.post(path, data=data)
        assert response.status_code == 403, (token, response.text[:300])
        assert "did not come from this site" in response.text, token
        assert _observable(service) == before, token
    # The same request with the session's own token goes through.
    data["csrf_token"] = _csrf(admin)
    assert admin.post(path, data=data).status_code not in (401, 403)


def _observable(service: Service) -> Any:
    ledger = service.ledger
    from asset_ledger.core import accounts

    return (
        sorted((s.name, s.enabled, str(s.config)) for s in ledger.list_sources()),
        sorted((r.id, r.status) for r in ledger.list_runs(limit=1000).items),
        sorted((u.username, u.role, u.disabled) for u in accounts.list_users(ledger.engine)),
        sorted((t.id, t.revoked_at is not None) for t in accounts.list_tokens(ledger.engine)),
    )


STATE_CHANGING_API = [c for c in API_CASES if c.method not in ("GET", "HEAD")]


def test_every_state_changing_api_route_refuses_a_session_without_the_csrf_header(
    service: Service, lab: FakeSource, tmp_path: Path
) -> None:
    world = World(service, lab, tmp_path)
    admin = service.browser("alice", ADMIN_PASSWORD)
    assert STATE_CHANGING_API
    for case in STATE_CHANGING_API:
        path = world.path(case, ADMIN)
        before = _observable(service)
        response = admin.request(case.method, path, json=case.body)
        assert response.status_code == 403, case.id
        assert response.json()["error"]["code"] == "CSRF_INVALID", case.id
        assert _observable(service) == before, case.id


GET_PAGES = [p for p in PAGES if p.method == "GET"]
SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
}


def test_every_page_and_api_response_carries_the_security_headers(
    service: Service, lab: FakeSource, tmp_path: Path
) -> None:
    world = World(service, lab, tmp_path)
    admin = service.browser("alice", ADMIN_PASSWORD)
    api = service.client(service.admin_token)
    responses = [admin.get(world.path(p, ADMIN)) for p in GET_PAGES]  # type: ignore[arg-type]
    responses += [service.client().get(world.path(p, ANON)) for p in GET_PAGES]  # type: ignore[arg-type]
    responses += [api.get(world.path(c, ADMIN)) for c in API_CASES if c.method == "GET"]
    responses.append(api.get("/api/v1/no-such-route"))
    for response in responses:
        where = f"{response.request.method} {response.request.url.path} -> {response.status_code}"
        for name, value in SECURITY_HEADERS.items():
            assert response.headers.get(name) == value, where
        csp = response.headers.get("content-security-policy", "")
        assert "frame-ancestors 'none'" in csp, where
        assert "default-src 'self'" in csp, where
        assert "unsafe-inline" not in csp, where
        assert response.headers.get("cache-control") == "no-store", where
