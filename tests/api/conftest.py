"""Fixtures of the service tests: the real app on a real ledger (SQLite, and PostgreSQL where marked), with
an admin and a viewer, API clients authenticated by token, and browser-like clients signed in by session."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from asset_ledger.api.app import ServiceOptions, create_app
from asset_ledger.core import Ledger, accounts
from tests.cli.conftest import restore_logging, run_cli
from tests.conftest import FakeSource, add_fake_source

__all__ = ["restore_logging", "run_cli"]

ADMIN_PASSWORD = "admin-password-1"
VIEWER_PASSWORD = "viewer-password-1"
BASE_URL = "https://testserver"


@dataclass
class Service:
    ledger: Ledger
    app: FastAPI
    admin_token: str
    viewer_token: str

    def client(self, token: str | None = None) -> TestClient:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return TestClient(self.app, base_url=BASE_URL, headers=headers, follow_redirects=False)

    def ledger_users(self) -> list[accounts.User]:
        return accounts.list_users(self.ledger.engine)

    def browser(self, username: str, password: str) -> TestClient:
        """A client signed in through the login form, as a browser would be."""
        client = self.client()
        page = client.get("/login")
        csrf = form_csrf(page.text)
        response = client.post(
            "/login", data={"username": username, "password": password, "csrf_token": csrf}
        )
        assert response.status_code == 303, response.text
        return client


def form_csrf(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF field in the page"
    return match.group(1)


def make_service(ledger: Ledger, *, options: ServiceOptions | None = None) -> Service:
    admin = accounts.create_user(ledger.engine, "alice", ADMIN_PASSWORD, "admin")
    viewer = accounts.create_user(ledger.engine, "victor", VIEWER_PASSWORD, "viewer")
    admin_token, _ = accounts.create_token(ledger.engine, admin.id, "admin script")
    viewer_token, _ = accounts.create_token(ledger.engine, viewer.id, "viewer script")
    app = create_app(
        ledger.settings, engine=ledger.engine, options=options or ServiceOptions(embedded_worker=False)
    )
    return Service(ledger=ledger, app=app, admin_token=admin_token, viewer_token=viewer_token)


@pytest.fixture
def service(sqlite_ledger: Ledger) -> Service:
    """The app on a SQLite ledger; no embedded worker (tests execute runs themselves)."""
    return make_service(sqlite_ledger)


@pytest.fixture
def lab(service: Service, tmp_path: Path, fake_collector: None) -> FakeSource:
    """A fake source named ``lab`` with a credential in the service's ledger."""
    return add_fake_source(service.ledger, tmp_path)
