"""Sign-in, sign-out, users and API-token pages, and the HTML error page; the ledger's own pages are in
``ledger_pages``. Every form posts with the session's CSRF token (checked in ``api.auth``)."""

from __future__ import annotations

import secrets
import threading
import time
from collections import deque
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from asset_ledger.api.auth import (
    CSRF_FIELD,
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    Admin,
    Viewer,
    engine_of,
    principal_of,
)
from asset_ledger.api.errors import status_for
from asset_ledger.contract import LedgerError
from asset_ledger.core import accounts
from asset_ledger.web.render import render

router = APIRouter(include_in_schema=False)


class LoginThrottle:
    """Slows password guessing: after ``limit`` failed sign-ins for one user name (or from one address)
    within ``window_s``, further attempts are refused until the window has passed. Per process."""

    def __init__(self, limit: int = 5, window_s: float = 300.0) -> None:
        self.limit = limit
        self.window_s = window_s
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.setdefault(key, deque())
        while times and times[0] <= now - self.window_s:
            times.popleft()
        return times

    def wait_s(self, keys: tuple[str, ...]) -> float:
        """Seconds until a new attempt is allowed (0 when it is allowed now)."""
        now = time.monotonic()
        with self._lock:
            waits = [
                times[0] + self.window_s - now
                for key in keys
                if len(times := self._recent(key, now)) >= self.limit
            ]
        return max(waits, default=0.0)

    def failed(self, keys: tuple[str, ...]) -> None:
        now = time.monotonic()
        with self._lock:
            for key in keys:
                self._recent(key, now).append(now)

    def succeeded(self, keys: tuple[str, ...]) -> None:
        with self._lock:
            for key in keys:
                self._failures.pop(key, None)


def _throttle(request: Request) -> LoginThrottle:
    throttle = getattr(request.app.state, "login_throttle", None)
    if throttle is None:
        throttle = request.app.state.login_throttle = LoginThrottle()
    assert isinstance(throttle, LoginThrottle)
    return throttle


def _safe_next(value: str | None) -> str:
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/"


async def error_page(request: Request, error: LedgerError) -> Response:
    """A LedgerError met while serving a page: sign-in for the anonymous, an explanation otherwise."""
    if error.code == "AUTH_REQUIRED" and request.method in ("GET", "HEAD"):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
    titles = {
        "AUTH_REQUIRED": "Sign in first",
        "AUTH_FORBIDDEN": "Not allowed",
        "CSRF_INVALID": "The form expired",
        "NOT_FOUND": "Not found",
    }
    title = titles.get(error.code, "Something is wrong")
    return render(
        request,
        "error.html",
        {"error": error.as_error(), "title": title},
        status_code=status_for(error),
    )


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str = "/") -> Response:
    if principal_of(request) is not None:
        return RedirectResponse(_safe_next(next), status_code=303)
    return _login_page(request, next=_safe_next(next))


def _login_page(
    request: Request, *, next: str, error: str = "", username: str = "", status: int = 200
) -> Response:
    login_csrf = secrets.token_urlsafe(32)
    response = render(
        request,
        "login.html",
        {"login_csrf": login_csrf, "next": next, "error": error, "username": username},
        status_code=status,
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        login_csrf,
        max_age=3600,
        httponly=True,
        secure=request.app.state.options.cookie_secure,
        samesite="strict",
        path="/login",
    )
    return response


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    form = await request.form()
    username = str(form.get("username") or "")
    password = str(form.get("password") or "")
    next_url = _safe_next(str(form.get("next") or "/"))
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE)
    presented = str(form.get(CSRF_FIELD) or "")
    if not cookie or not secrets.compare_digest(cookie, presented):
        return _login_page(
            request,
            next=next_url,
            username=username,
            status=403,
            error="The sign-in form expired or did not come from this site; try again.",
        )
    throttle = _throttle(request)
    keys = (f"user:{username.lower()}", f"addr:{request.client.host if request.client else '-'}")
    wait = throttle.wait_s(keys)
    if wait > 0:
        return _login_page(
            request,
            next=next_url,
            username=username,
            status=429,
            error=f"Too many failed sign-ins; try again in {int(wait) + 1} seconds.",
        )
    engine = engine_of(request)
    user = accounts.authenticate(engine, username, password)
    if user is None:
        throttle.failed(keys)
        return _login_page(
            request,
            next=next_url,
            username=username,
            status=401,
            error="Wrong user name or password, or the account is disabled.",
        )
    throttle.succeeded(keys)
    session = accounts.start_session(engine, user)
    response = RedirectResponse(next_url, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        session.token,
        max_age=int(accounts.SESSION_LIFETIME.total_seconds()),
        httponly=True,
        secure=request.app.state.options.cookie_secure,
        samesite="strict",
        path="/",
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


@router.post("/logout")
def logout(request: Request, principal: Viewer) -> Response:
    if principal.session is not None:
        accounts.end_session(engine_of(request), principal.session.token)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/account", response_class=HTMLResponse)
def account(request: Request, principal: Viewer) -> Response:
    owner = None if principal.user.is_admin else principal.user.id
    tokens = accounts.list_tokens(engine_of(request), owner)
    return render(request, "account.html", {"tokens": tokens, "new_token": "", "section": "account"})


@router.post("/account/tokens", response_class=HTMLResponse)
async def create_token(request: Request, principal: Viewer) -> Response:
    form = await request.form()
    engine = engine_of(request)
    secret, _ = accounts.create_token(engine, principal.user.id, str(form.get("name") or ""))
    owner = None if principal.user.is_admin else principal.user.id
    # The secret is rendered in this response only (never in a URL, never again).
    return render(
        request,
        "account.html",
        {"tokens": accounts.list_tokens(engine, owner), "new_token": secret, "section": "account"},
        status_code=201,
    )


@router.post("/account/tokens/{token_id}/revoke")
def revoke_token(request: Request, token_id: str, principal: Viewer) -> Response:
    engine = engine_of(request)
    token = accounts.get_token(engine, token_id)
    if token.user_id != principal.user.id and not principal.user.is_admin:
        raise LedgerError("TOKEN_NOT_FOUND", f"no API token with id {token_id!r}")
    accounts.revoke_token(engine, token_id)
    return RedirectResponse("/account?done=token_revoked", status_code=303)


@router.get("/users", response_class=HTMLResponse)
def users(request: Request, _: Admin) -> Response:
    return _users_page(request)


def _users_page(request: Request, error: str = "", status: int = 200) -> Response:
    context: dict[str, Any] = {
        "users": accounts.list_users(engine_of(request)),
        "error": error,
        "section": "users",
    }
    return render(request, "users.html", context, status_code=status)


@router.post("/users", response_class=HTMLResponse)
async def add_user(request: Request, _: Admin) -> Response:
    form = await request.form()
    try:
        accounts.create_user(
            engine_of(request),
            str(form.get("username") or ""),
            str(form.get("password") or ""),
            str(form.get("role") or "viewer"),
        )
    except LedgerError as exc:
        return _users_page(request, error=exc.message, status=status_for(exc))
    return RedirectResponse("/users?done=user_added", status_code=303)


@router.post("/users/{user_id}", response_class=HTMLResponse)
async def save_user(request: Request, user_id: str, _: Admin) -> Response:
    form = await request.form()
    try:
        accounts.update_user(
            engine_of(request),
            user_id,
            role=str(form.get("role") or "viewer"),
            disabled=form.get("disabled") == "1",
        )
    except LedgerError as exc:
        if exc.code == "USER_NOT_FOUND":
            raise
        return _users_page(request, error=exc.message, status=status_for(exc))
    return RedirectResponse("/users?done=user_saved", status_code=303)
