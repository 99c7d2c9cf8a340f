"""Sign-in, sign-out, the account page (own password, API tokens), users and the HTML error page; the
ledger's own pages are in ``ledger_pages``. Every form posts with the session's CSRF token (checked in
``api.auth``)."""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from asset_ledger.api.auth import (
    CSRF_FIELD,
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    Admin,
    Principal,
    Viewer,
    client_address,
    engine_of,
    principal_of,
    throttle_of,
)
from asset_ledger.api.errors import error_headers, status_for
from asset_ledger.contract import LedgerError
from asset_ledger.core import accounts
from asset_ledger.web.render import render

router = APIRouter(include_in_schema=False)


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
    engine = engine_of(request)
    try:
        user = accounts.sign_in(
            engine, username, password, client_address(request), throttle=throttle_of(request)
        )
    except LedgerError as exc:
        if exc.code != "AUTH_THROTTLED":
            raise
        response = _login_page(
            request,
            next=next_url,
            username=username,
            status=429,
            error=f"Too many failed sign-ins; try again in {exc.context['retry_after_s']} seconds.",
        )
        response.headers.update(error_headers(exc))
        return response
    if user is None:
        return _login_page(
            request,
            next=next_url,
            username=username,
            status=401,
            error="Wrong user name or password, or the account is disabled.",
        )
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


def _account_page(
    request: Request,
    principal: Principal,
    *,
    new_token: str = "",
    change_error: str = "",
    change_done: str = "",
    status: int = 200,
) -> Response:
    owner = None if principal.user.is_admin else principal.user.id
    context: dict[str, Any] = {
        "tokens": accounts.list_tokens(engine_of(request), owner),
        "new_token": new_token,
        "change_error": change_error,
        "change_done": change_done,
        "min_password_length": accounts.MIN_PASSWORD_LENGTH,
        "section": "account",
    }
    return render(request, "account.html", context, status_code=status)


@router.get("/account", response_class=HTMLResponse)
def account(request: Request, principal: Viewer) -> Response:
    return _account_page(request, principal)


@router.post("/account/password", response_class=HTMLResponse)
async def change_password(request: Request, principal: Viewer) -> Response:
    """The signed-in user's own password: the current one, the new one twice. Ends the other sessions."""
    form = await request.form()
    current = str(form.get("current_password") or "")
    new = str(form.get("new_password") or "")
    if new != str(form.get("new_password_again") or ""):
        return _account_page(
            request,
            principal,
            change_error="The two new passwords differ; the password was not changed.",
            status=400,
        )
    try:
        ended = accounts.change_own_password(
            engine_of(request),
            principal.user.id,
            current,
            new,
            address=client_address(request),
            keep_session=principal.session.token if principal.session is not None else None,
            throttle=throttle_of(request),
        )
    except LedgerError as exc:
        if exc.code not in ("PASSWORD_WRONG", "USER_INVALID", "AUTH_THROTTLED"):
            raise
        message = exc.message[0].upper() + exc.message[1:] + "."
        response = _account_page(request, principal, change_error=message, status=status_for(exc))
        response.headers.update(error_headers(exc))
        return response
    if ended == 0:
        others = "no other session was open"
    elif ended == 1:
        others = "1 other session was signed out"
    else:
        others = f"{ended} other sessions were signed out"
    return _account_page(
        request,
        principal,
        change_done=f"Your password was changed; {others}. This session stays signed in.",
    )


@router.post("/account/tokens", response_class=HTMLResponse)
async def create_token(request: Request, principal: Viewer) -> Response:
    form = await request.form()
    secret, _ = accounts.create_token(engine_of(request), principal.user.id, str(form.get("name") or ""))
    # The secret is rendered in this response only (never in a URL, never again).
    return _account_page(request, principal, new_token=secret, status=201)


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
