"""The ledger as a service: one FastAPI app serving the JSON API (``/api/v1``, OpenAPI at
``/api/v1/openapi.json``), the server-rendered pages, static files, ``/healthz`` and ``/metrics``.

The app only translates HTTP to core calls; every rule lives in the core. It reads its database from the
core's settings and never creates or migrates the schema itself (``asset-ledger init`` does).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy.engine import Engine

from asset_ledger import __version__
from asset_ledger.api import errors, meta, users
from asset_ledger.api import ledger as ledger_routes
from asset_ledger.api.worker_task import embedded_worker
from asset_ledger.core.accounts import Throttle
from asset_ledger.core.ledger import Ledger
from asset_ledger.core.settings import Settings
from asset_ledger.storage import make_engine
from asset_ledger.web import ledger_pages, pages

STATIC_DIR = Path(__file__).resolve().parent.parent / "web" / "static"

_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'"
)


@dataclass(frozen=True, slots=True)
class ServiceOptions:
    """How the service behaves, from the environment (see docs/deploy.md)."""

    #: Session cookies carry ``Secure``; browsers still accept them on http://127.0.0.1 and localhost.
    cookie_secure: bool = True
    #: ``/metrics`` without a token (for a scraper on a trusted network).
    metrics_public: bool = False
    #: Run one worker inside the web process.
    embedded_worker: bool = True
    #: Seconds between the worker's looks at the queue and the schedules.
    worker_poll_s: float = 2.0
    #: Addresses (comma-separated IPs or CIDR ranges) of reverse proxies whose ``X-Forwarded-For`` and
    #: ``X-Forwarded-Proto`` are believed; empty: forwarded headers are ignored (anyone could forge them).
    trusted_proxies: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ServiceOptions:
        env = os.environ if env is None else env

        def flag(name: str, default: bool) -> bool:
            text = env.get(name, "").strip().lower()
            if not text:
                return default
            return text in ("1", "true", "yes", "on")

        return cls(
            cookie_secure=flag("ASSET_LEDGER_COOKIE_SECURE", True),
            metrics_public=flag("ASSET_LEDGER_METRICS_PUBLIC", False),
            embedded_worker=flag("ASSET_LEDGER_EMBEDDED_WORKER", True),
            worker_poll_s=float(env.get("ASSET_LEDGER_WORKER_POLL_S") or 2.0),
            trusted_proxies=",".join(
                part.strip()
                for part in env.get("ASSET_LEDGER_TRUSTED_PROXIES", "").split(",")
                if part.strip()
            ),
        )


def create_app(
    settings: Settings | None = None,
    *,
    engine: Engine | None = None,
    options: ServiceOptions | None = None,
    throttle: Throttle | None = None,
) -> FastAPI:
    """The app for ``settings`` (default: from the environment). Pass ``engine`` to share one;
    ``throttle`` is the rule against password guessing (its count lives in the database)."""
    settings = settings or Settings.from_env()
    options = options or ServiceOptions(embedded_worker=False)
    own_engine = engine is None
    ledger = Ledger(settings, engine=engine or make_engine(settings.resolved_database_url))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with embedded_worker(app):
            yield
        if own_engine:
            ledger.close()

    app = FastAPI(
        title="Asset Ledger",
        version=__version__,
        description="Sources, runs, assets and relations of the asset ledger. Credentials are write-only.",
        # Served by meta.openapi_document, behind authentication like every other API route.
        openapi_url=None,
        # The interactive docs pages load their scripts from a CDN; only the OpenAPI document is served.
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.ledger = ledger
    app.state.options = options
    app.state.throttle = throttle or Throttle()

    errors.install(app, html_handler=pages.error_page)
    app.include_router(meta.router)
    app.include_router(users.router)
    app.include_router(ledger_routes.router)
    app.include_router(pages.router)
    app.include_router(ledger_pages.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.middleware("http")
    async def security_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        headers: dict[str, Any] = {
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "same-origin",
            "X-Frame-Options": "DENY",
            "Content-Security-Policy": _CSP,
        }
        if not request.url.path.startswith("/static/"):
            headers["Cache-Control"] = "no-store"
        for name, value in headers.items():
            response.headers.setdefault(name, value)
        return response

    return app
