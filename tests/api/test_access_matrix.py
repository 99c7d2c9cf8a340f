"""Who may call what: every API route, as anonymous, viewer and admin, stated as one table.

Each row names a route and the status each caller gets; the test calls the real app on a real ledger with
real data behind every path parameter. A route added without a row fails ``test_every_route_has_a_row``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from starlette.routing import Route

from asset_ledger.api import ledger, meta, users
from asset_ledger.api.errors import is_machine_path
from asset_ledger.core import accounts
from asset_ledger.web import pages
from tests.api.conftest import Service
from tests.conftest import FakeSource, add_fake_source
from tests.core.fake_collector import snapshot

ANON, VIEWER, ADMIN = "anonymous", "viewer", "admin"


@dataclass(frozen=True)
class Case:
    method: str
    path: str
    anonymous: int
    viewer: int
    admin: int
    body: Any = None
    #: Path parameters made fresh for each caller (e.g. something the call deletes).
    fresh: tuple[str, ...] = field(default=())

    @property
    def id(self) -> str:
        return f"{self.method} {self.path}"


SOURCE_BODY = {"source_type": "fake", "config": {"endpoint": "https://new.example:8006"}}

CASES = [
    Case("GET", "/healthz", 200, 200, 200),
    Case("GET", "/metrics", 401, 200, 200),
    Case("GET", "/api/v1/openapi.json", 401, 200, 200),
    Case("GET", "/api/v1/me", 401, 200, 200),
    # Only a browser session changes its own password (tests/api/test_own_password.py); tokens are refused.
    Case(
        "POST",
        "/api/v1/me/password",
        401,
        403,
        403,
        body={"current_password": "not-the-password", "new_password": "a-long-new-password"},
    ),
    Case("GET", "/api/v1/users", 401, 403, 200),
    Case("POST", "/api/v1/users", 401, 403, 201, body={"password": "a-long-password", "role": "viewer"}),
    Case("GET", "/api/v1/users/{viewer_id}", 401, 403, 200),
    Case(
        "PATCH", "/api/v1/users/{spare_user}", 401, 403, 200, body={"role": "viewer"}, fresh=("spare_user",)
    ),
    Case("DELETE", "/api/v1/users/{spare_user}", 401, 403, 204, fresh=("spare_user",)),
    Case("GET", "/api/v1/tokens", 401, 200, 200),
    Case("POST", "/api/v1/tokens", 401, 201, 201, body={"name": "a script"}),
    Case("DELETE", "/api/v1/tokens/{own_token}", 401, 200, 200, fresh=("own_token",)),
    Case("GET", "/api/v1/sources", 401, 200, 200),
    Case("POST", "/api/v1/sources", 401, 403, 201, body=SOURCE_BODY),
    Case("GET", "/api/v1/sources/lab", 401, 200, 200),
    Case("PATCH", "/api/v1/sources/lab", 401, 403, 200, body={"schedule_interval_s": 3600}),
    Case("DELETE", "/api/v1/sources/{spare_source}", 401, 403, 204, fresh=("spare_source",)),
    Case("PUT", "/api/v1/sources/lab/credential", 401, 403, 200, body={"token": "new-token-value"}),
    Case(
        "POST",
        "/api/v1/sources/{spare_source}/runs",
        401,
        403,
        202,
        body={"mode": "healthcheck"},
        fresh=("spare_source",),
    ),
    Case("GET", "/api/v1/runs", 401, 200, 200),
    Case("GET", "/api/v1/runs/{run_id}", 401, 200, 200),
    Case("POST", "/api/v1/runs/{held_run}/confirm", 401, 403, 200),
    Case("GET", "/api/v1/assets", 401, 200, 200),
    Case("GET", "/api/v1/assets/{vm_id}", 401, 200, 200),
    Case("GET", "/api/v1/assets/{vm_id}/relations", 401, 200, 200),
    Case("GET", "/api/v1/relations", 401, 200, 200),
    Case("GET", "/api/v1/topology", 401, 200, 200),
]


class World:
    """Real data behind every path parameter of the table."""

    def __init__(self, service: Service, lab: FakeSource, tmp_path: Path) -> None:
        self.service = service
        self.lab = lab
        self.tmp_path = tmp_path
        self.counter = 0
        engine = service.ledger.engine
        lab.collect(snapshot(range(1, 8)))
        self.run_id = lab.collect(snapshot(range(1, 8))).id
        held = lab.collect(snapshot([1]))
        assert held.status == "held", held
        self.held_run = held.id
        self.vm_id = next(
            a.id for a in service.ledger.list_assets(kind="vm").items if a.external_id == "qemu/1"
        )
        self.viewer_id = accounts.find_user(engine, "victor").id

    def param(self, name: str, role: str) -> str:
        self.counter += 1
        engine = self.service.ledger.engine
        if name == "spare_user":
            return accounts.create_user(engine, f"spare{self.counter}", "spare-password-1", "viewer").id
        if name == "spare_source":
            return add_fake_source(self.service.ledger, self.tmp_path, name=f"spare{self.counter}").source.id
        if name == "own_token":
            owner = accounts.find_user(engine, "alice" if role == ADMIN else "victor")
            return accounts.create_token(engine, owner.id, f"throwaway {self.counter}")[1].id
        return str(getattr(self, name))

    def path(self, case: Case, role: str) -> str:
        names = [part[1:-1] for part in case.path.split("/") if part.startswith("{")]
        values = {name: self.param(name, role) for name in names}
        return case.path.format(**values)


def body_for(case: Case, role: str, counter: int) -> Any:
    if case.path == "/api/v1/users" and case.method == "POST":
        return {**case.body, "username": f"new-{role}-{counter}"}
    if case.path == "/api/v1/sources" and case.method == "POST":
        return {**case.body, "name": f"new-{role}-{counter}"}
    return case.body


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_route_access(case: Case, service: Service, lab: FakeSource, tmp_path: Path) -> None:
    world = World(service, lab, tmp_path)
    callers = {
        ANON: service.client(),
        VIEWER: service.client(service.viewer_token),
        ADMIN: service.client(service.admin_token),
    }
    expected = {ANON: case.anonymous, VIEWER: case.viewer, ADMIN: case.admin}
    got = {}
    for role in (ANON, VIEWER, ADMIN):
        body = body_for(case, role, world.counter)
        response = callers[role].request(case.method, world.path(case, role), json=body)
        got[role] = response.status_code
        if response.status_code >= 400 and response.headers["content-type"].startswith("application/json"):
            error = response.json()["error"]
            assert {"code", "category", "retryable", "message", "suggested_action"} <= set(error)
            if response.status_code == 401:
                assert error["code"] == "AUTH_REQUIRED"
            if response.status_code == 403:
                assert error["code"] == "AUTH_FORBIDDEN"
    assert got == expected


def test_every_route_has_a_row(service: Service) -> None:
    served = {
        f"{method} {route.path}"
        for router in (meta.router, users.router, ledger.router, pages.router)
        for route in router.routes
        if isinstance(route, Route) and is_machine_path(route.path)
        for method in (route.methods or set()) - {"HEAD"}
    }
    table = {
        f"{c.method} {c.path.replace('{viewer_id}', '{user_id}').replace('{spare_user}', '{user_id}')}"
        for c in CASES
    }
    renames = {
        "{own_token}": "{token_id}",
        "/sources/lab": "/sources/{ref}",
        "/sources/{spare_source}": "/sources/{ref}",
        "{held_run}": "{run_id}",
        "{vm_id}": "{asset_id}",
    }
    normalised = set()
    for entry in table:
        for old, new in renames.items():
            entry = entry.replace(old, new)  # noqa: PLW2901
        normalised.add(entry)
    assert served == normalised
