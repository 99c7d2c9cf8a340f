"""Who is asking: a browser session (cookie) or a script (``Authorization: Bearer alt_...``).

Every route except login, static files and the health probe depends on ``viewer`` or ``admin`` here.
A session-authenticated request that changes state must also present the session's CSRF token (form field
``csrf_token`` or header ``X-CSRF-Token``); token-authenticated requests carry no ambient authority and need
none.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends, Request
from sqlalchemy.engine import Engine

from asset_ledger.contract import LedgerError
from asset_ledger.core import accounts
from asset_ledger.core.accounts import Session, Throttle, User
from asset_ledger.core.ledger import Ledger

SESSION_COOKIE = "ledger_session"
LOGIN_CSRF_COOKIE = "ledger_login_csrf"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True, slots=True)
class Principal:
    user: User
    via: Literal["session", "token"]
    session: Session | None = None

    @property
    def csrf_token(self) -> str:
        return self.session.csrf_token if self.session is not None else ""


def ledger_of(request: Request) -> Ledger:
    ledger: Ledger = request.app.state.ledger
    return ledger


def engine_of(request: Request) -> Engine:
    return ledger_of(request).engine


def throttle_of(request: Request) -> Throttle:
    throttle: Throttle = request.app.state.throttle
    return throttle


def client_address(request: Request) -> str:
    """The caller's address, one of the keys password guessing is counted by."""
    return request.client.host if request.client else "-"


def principal_of(request: Request) -> Principal | None:
    """The authenticated caller, or ``None``. Cached on the request."""
    if hasattr(request.state, "principal"):
        cached: Principal | None = request.state.principal
        return cached
    engine = engine_of(request)
    principal: Principal | None = None
    header = request.headers.get("authorization", "")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer":
            user = accounts.user_for_token(engine, value.strip())
            if user is not None:
                principal = Principal(user=user, via="token")
    else:
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie:
            session = accounts.session_for(engine, cookie)
            if session is not None:
                principal = Principal(user=session.user, via="session", session=session)
    request.state.principal = principal
    return principal


async def check_csrf(request: Request, principal: Principal) -> None:
    """Refuse a state-changing session request without the session's CSRF token."""
    if request.method in SAFE_METHODS or principal.session is None:
        return
    presented = request.headers.get(CSRF_HEADER)
    if presented is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        form = await request.form()
        value = form.get(CSRF_FIELD)
        presented = value if isinstance(value, str) else None
    if not accounts.csrf_matches(principal.session, presented):
        raise LedgerError("CSRF_INVALID", "the form is stale or did not come from this site; reload the page")


async def require_viewer(request: Request) -> Principal:
    principal = principal_of(request)
    if principal is None:
        raise LedgerError("AUTH_REQUIRED", "sign in, or send 'Authorization: Bearer <API token>'")
    await check_csrf(request, principal)
    return principal


async def require_admin(request: Request) -> Principal:
    principal = await require_viewer(request)
    if not principal.user.is_admin:
        raise LedgerError(
            "AUTH_FORBIDDEN", f"this needs the admin role; {principal.user.username} is a viewer"
        )
    return principal


Viewer = Annotated[Principal, Depends(require_viewer)]
Admin = Annotated[Principal, Depends(require_admin)]
