"""``/api/v1/me`` (and the caller's own password), ``/api/v1/users`` (admin) and ``/api/v1/tokens`` (each
user their own; admins all)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from asset_ledger.api.auth import Admin, Viewer, client_address, engine_of, throttle_of
from asset_ledger.api.errors import ERROR_RESPONSES
from asset_ledger.contract import LedgerError
from asset_ledger.core import accounts
from asset_ledger.core.accounts import ApiToken, User

router = APIRouter(prefix="/api/v1", tags=["users"], responses=ERROR_RESPONSES)


def user_json(user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "username": user.username,
        "role": user.role,
        "disabled": user.disabled,
        "created_at": user.created_at.isoformat(),
    }


def token_json(token: ApiToken) -> dict[str, Any]:
    return {
        "id": token.id,
        "name": token.name,
        "user_id": token.user_id,
        "username": token.username,
        "prefix": token.prefix,
        "created_at": token.created_at.isoformat(),
        "last_used_at": token.last_used_at.isoformat() if token.last_used_at else None,
        "revoked_at": token.revoked_at.isoformat() if token.revoked_at else None,
    }


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str
    password: str = Field(repr=False)
    role: Literal["admin", "viewer"] = "viewer"


class UserUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["admin", "viewer"] | None = None
    disabled: bool | None = None
    password: str | None = Field(default=None, repr=False)


class PasswordChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    current_password: str = Field(repr=False)
    new_password: str = Field(repr=False)


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str


@router.get("/me")
def me(principal: Viewer) -> dict[str, Any]:
    return {**user_json(principal.user), "authenticated_by": principal.via}


@router.post("/me/password")
def change_own_password(request: Request, body: PasswordChange, principal: Viewer) -> dict[str, Any]:
    """The signed-in user's own password (a browser session with its CSRF header; API tokens are refused).
    Wrong current passwords count as failed sign-ins (AUTH_THROTTLED after 5). Ends the user's other
    sessions and keeps this one; ``other_sessions_ended`` says how many."""
    if principal.session is None:
        raise LedgerError(
            "AUTH_FORBIDDEN",
            "a password is changed from a signed-in browser session (the Account page); API tokens cannot",
        )
    ended = accounts.change_own_password(
        engine_of(request),
        principal.user.id,
        body.current_password,
        body.new_password,
        address=client_address(request),
        keep_session=principal.session.token,
        throttle=throttle_of(request),
    )
    return {**user_json(principal.user), "other_sessions_ended": ended}


@router.get("/users")
def list_users(request: Request, _: Admin) -> dict[str, Any]:
    return {"items": [user_json(u) for u in accounts.list_users(engine_of(request))]}


@router.post("/users", status_code=201)
def create_user(request: Request, body: UserCreate, _: Admin) -> dict[str, Any]:
    return user_json(accounts.create_user(engine_of(request), body.username, body.password, body.role))


@router.get("/users/{user_id}")
def get_user(request: Request, user_id: str, _: Admin) -> dict[str, Any]:
    return user_json(accounts.get_user(engine_of(request), user_id))


@router.patch("/users/{user_id}")
def update_user(request: Request, user_id: str, body: UserUpdate, _: Admin) -> dict[str, Any]:
    user = accounts.update_user(
        engine_of(request), user_id, role=body.role, disabled=body.disabled, password=body.password
    )
    return user_json(user)


@router.delete("/users/{user_id}", status_code=204)
def delete_user(request: Request, user_id: str, _: Admin) -> Response:
    accounts.delete_user(engine_of(request), user_id)
    return Response(status_code=204)


@router.get("/tokens")
def list_tokens(request: Request, principal: Viewer) -> dict[str, Any]:
    owner = None if principal.user.is_admin else principal.user.id
    return {"items": [token_json(t) for t in accounts.list_tokens(engine_of(request), owner)]}


@router.post("/tokens", status_code=201)
def create_token(request: Request, body: TokenCreate, principal: Viewer) -> dict[str, Any]:
    """A token for the caller. ``token`` is in this response only: it is stored hashed."""
    secret, token = accounts.create_token(engine_of(request), principal.user.id, body.name)
    return {**token_json(token), "token": secret}


@router.delete("/tokens/{token_id}")
def revoke_token(request: Request, token_id: str, principal: Viewer) -> dict[str, Any]:
    engine = engine_of(request)
    token = accounts.get_token(engine, token_id)
    if token.user_id != principal.user.id and not principal.user.is_admin:
        # Someone else's token is as invisible as one that does not exist.
        raise LedgerError("TOKEN_NOT_FOUND", f"no API token with id {token_id!r}")
    return token_json(accounts.revoke_token(engine, token_id))
