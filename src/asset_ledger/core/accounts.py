"""The ledger's own users: local accounts with a role, browser sessions and API tokens.

Roles: ``admin`` manages sources, credentials, users and runs; ``viewer`` reads everything but secrets.
Passwords are hashed with argon2id (argon2-cffi); session and API-token secrets are random 256-bit values
handed to the user once and stored only as their SHA-256. Nothing here returns a password hash or a stored
token digest to a caller outside this module.

Password guessing is throttled in the database, so every process on it shares one count: each password
check (sign-in, or the current password when changing it) first records a failure for the user name and for
the client address, atomically with the check that neither key is locked; a right password then takes its
failures back (and clears the user name's). ``Throttle`` holds the rule and the clock.
"""

from __future__ import annotations

import hashlib
import math
import re
import secrets
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.engine import Connection, Engine

from asset_ledger.contract import LedgerError
from asset_ledger.storage import read_tx, write_tx
from asset_ledger.storage.accounts_tables import ROLES, api_token, app_user, login_failure, user_session

Role = Literal["admin", "viewer"]

MIN_PASSWORD_LENGTH = 10
SESSION_LIFETIME = timedelta(hours=12)
#: API tokens start with this, so a leaked one is recognisable (secret scanners, logs).
TOKEN_PREFIX = "alt_"  # noqa: S105  (a public marker, not a secret)
_USERNAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$")

_hasher = PasswordHasher()
#: Verified against when the user does not exist, so a login takes as long for unknown names.
_DUMMY_HASH = _hasher.hash("not a password of anyone")


@dataclass(frozen=True, slots=True)
class User:
    id: str
    username: str
    role: Role
    disabled: bool
    created_at: datetime

    @property
    def is_admin(self) -> bool:
        return self.role == "admin" and not self.disabled


@dataclass(frozen=True, slots=True)
class Session:
    """A signed-in browser: ``token`` goes in the cookie, ``csrf_token`` in every state-changing form."""

    token: str
    csrf_token: str
    user: User
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class ApiToken:
    id: str
    user_id: str
    username: str
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


def _now() -> datetime:
    return datetime.now(UTC)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Throttle:
    """The rule against password guessing: after ``limit`` failed password checks for one user name (or
    from one client address) within ``window``, that key is locked until fewer than ``limit`` of its
    failures are younger than ``window``. ``clock`` is the time source (tests move it instead of waiting)."""

    limit: int = 5
    window: timedelta = timedelta(seconds=300)
    clock: Callable[[], datetime] = field(default=_now)


#: PostgreSQL advisory lock (two-int form: namespace, key) serialising the throttle's transactions, so the
#: "not locked yet" check and the failure it records are one step for every process. SQLite write
#: transactions are serialised already (``BEGIN IMMEDIATE``).
_THROTTLE_LOCK = (0x416C5447, 1)


def _user(m: sa.RowMapping) -> User:
    return User(
        id=m["id"],
        username=m["username"],
        role=m["role"],
        disabled=bool(m["disabled"]),
        created_at=m["created_at"],
    )


_USER_COLUMNS = (
    app_user.c.id,
    app_user.c.username,
    app_user.c.role,
    app_user.c.disabled,
    app_user.c.created_at,
)


def check_role(role: str) -> Role:
    if role not in ROLES:
        raise LedgerError("USER_INVALID", f"role must be one of {', '.join(ROLES)} (got {role!r})")
    return role  # type: ignore[return-value]  # narrowed by the membership test above


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise LedgerError("USER_INVALID", f"password must have at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > 1024:
        raise LedgerError("USER_INVALID", "password must have at most 1024 characters")


def check_username(username: str) -> str:
    if not _USERNAME_RE.match(username):
        raise LedgerError(
            "USER_INVALID",
            "username must be 1-100 characters: letters, digits, '.', '_', '@' or '-', "
            "starting with a letter or digit",
        )
    return username


def hash_password(password: str) -> str:
    return _hasher.hash(password)


# -- users ---------------------------------------------------------------------------------------------


def create_user(engine: Engine, username: str, password: str, role: str) -> User:
    check_username(username)
    check_password(password)
    checked_role = check_role(role)
    now = _now()
    user_id = str(uuid.uuid4())
    with write_tx(engine) as conn:
        if conn.scalar(sa.select(app_user.c.id).where(app_user.c.username == username)) is not None:
            raise LedgerError("USER_EXISTS", f"a user named {username!r} already exists")
        conn.execute(
            app_user.insert().values(
                id=user_id,
                username=username,
                password_hash=hash_password(password),
                role=checked_role,
                disabled=False,
                created_at=now,
                updated_at=now,
            )
        )
    return User(id=user_id, username=username, role=checked_role, disabled=False, created_at=now)


def list_users(engine: Engine) -> list[User]:
    with read_tx(engine) as conn:
        rows = conn.execute(sa.select(*_USER_COLUMNS).order_by(app_user.c.username)).all()
    return [_user(r._mapping) for r in rows]


def _get_user(conn: Connection, user_id: str) -> User:
    row = conn.execute(sa.select(*_USER_COLUMNS).where(app_user.c.id == user_id)).first()
    if row is None:
        raise LedgerError("USER_NOT_FOUND", f"no user with id {user_id!r}")
    return _user(row._mapping)


def get_user(engine: Engine, user_id: str) -> User:
    with read_tx(engine) as conn:
        return _get_user(conn, user_id)


def find_user(engine: Engine, username: str) -> User:
    with read_tx(engine) as conn:
        row = conn.execute(sa.select(*_USER_COLUMNS).where(app_user.c.username == username)).first()
    if row is None:
        raise LedgerError("USER_NOT_FOUND", f"no user named {username!r}")
    return _user(row._mapping)


def _active_admins(conn: Connection) -> int:
    return int(
        conn.scalar(
            sa.select(sa.func.count())
            .select_from(app_user)
            .where(app_user.c.role == "admin", app_user.c.disabled.is_(False))
        )
        or 0
    )


def update_user(
    engine: Engine,
    user_id: str,
    *,
    role: str | None = None,
    disabled: bool | None = None,
    password: str | None = None,
) -> User:
    """Change a user's role, enabled state or password. The last enabled admin cannot be demoted or
    disabled. Disabling a user or changing the password ends their browser sessions."""
    values: dict[str, object] = {}
    if role is not None:
        values["role"] = check_role(role)
    if disabled is not None:
        values["disabled"] = disabled
    if password is not None:
        check_password(password)
        values["password_hash"] = hash_password(password)
    with write_tx(engine) as conn:
        current = _get_user(conn, user_id)
        if not values:
            return current
        values["updated_at"] = _now()
        conn.execute(app_user.update().where(app_user.c.id == user_id).values(**values))
        if current.is_admin and _active_admins(conn) == 0:
            raise LedgerError("USER_INVALID", "the last enabled admin cannot be demoted or disabled")
        if disabled or password is not None:
            conn.execute(user_session.delete().where(user_session.c.user_id == user_id))
        return _get_user(conn, user_id)


def change_own_password(
    engine: Engine,
    user_id: str,
    current_password: str,
    new_password: str,
    *,
    address: str,
    keep_session: str | None = None,
    throttle: Throttle | None = None,
) -> int:
    """A user changing their own password: the current one must be right (checked behind the sign-in
    throttle: wrong ones count as failed sign-ins), the new one follows the rules of user creation. Ends
    every browser session of the user except ``keep_session`` (a session token); returns how many ended.
    API tokens stay valid."""
    check_password(new_password)
    throttle = throttle or Throttle()
    user = get_user(engine, user_id)
    keys = throttle_keys(user.username, address)
    attempt = _claim_attempt(engine, keys, throttle)
    if authenticate(engine, user.username, current_password) is None:
        raise LedgerError("PASSWORD_WRONG", "the current password is wrong; the password was not changed")
    new_hash = hash_password(new_password)
    with write_tx(engine) as conn:
        _clear_attempt(conn, keys[0], attempt)
        conn.execute(
            app_user.update()
            .where(app_user.c.id == user_id)
            .values(password_hash=new_hash, updated_at=_now())
        )
        others = user_session.delete().where(user_session.c.user_id == user_id)
        if keep_session is not None:
            others = others.where(user_session.c.token_sha256 != _digest(keep_session))
        ended: int = conn.execute(others).rowcount
    return ended


def delete_user(engine: Engine, user_id: str) -> None:
    with write_tx(engine) as conn:
        current = _get_user(conn, user_id)
        conn.execute(user_session.delete().where(user_session.c.user_id == user_id))
        conn.execute(api_token.delete().where(api_token.c.user_id == user_id))
        conn.execute(app_user.delete().where(app_user.c.id == user_id))
        if current.is_admin and _active_admins(conn) == 0:
            raise LedgerError("USER_INVALID", "the last enabled admin cannot be deleted")


def throttle_keys(username: str, address: str) -> tuple[str, str]:
    """The two keys a password check counts against: the user name (case-insensitive) and the address."""
    return (f"user:{username.lower()}", f"addr:{address}")


def _lock_throttle(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        space, key = _THROTTLE_LOCK
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:space, :key)"), {"space": space, "key": key})


def _wait(conn: Connection, key_sha256: str, throttle: Throttle, now: datetime) -> float:
    """Seconds until ``key`` is no longer locked (0 when it is not)."""
    times: Sequence[datetime] = conn.scalars(
        sa.select(login_failure.c.failed_at)
        .where(login_failure.c.key_sha256 == key_sha256, login_failure.c.failed_at > now - throttle.window)
        .order_by(login_failure.c.failed_at.desc())
        .limit(throttle.limit)
    ).all()
    if len(times) < throttle.limit:
        return 0.0
    # The key unlocks when the oldest of its newest ``limit`` failures leaves the window.
    return max((times[-1] + throttle.window - now).total_seconds(), 0.0)


def _claim_attempt(engine: Engine, keys: Sequence[str], throttle: Throttle) -> list[str]:
    """Refuse with AUTH_THROTTLED when a key is locked; otherwise record this attempt as a failure of every
    key (the ids of the rows, to take back if the password turns out right). Prunes expired failures."""
    now = throttle.clock()
    digests = [_digest(key) for key in keys]
    ids = [str(uuid.uuid4()) for _ in digests]
    with write_tx(engine) as conn:
        _lock_throttle(conn)
        conn.execute(login_failure.delete().where(login_failure.c.failed_at <= now - throttle.window))
        wait = max(_wait(conn, digest, throttle, now) for digest in digests)
        if wait == 0:
            conn.execute(
                login_failure.insert(),
                [
                    {"id": row_id, "key_sha256": digest, "failed_at": now}
                    for row_id, digest in zip(ids, digests, strict=True)
                ],
            )
    # Raised after the transaction, so the pruning above is kept even when the attempt is refused.
    if wait > 0:
        seconds = max(math.ceil(wait), 1)
        raise LedgerError(
            "AUTH_THROTTLED",
            f"too many wrong passwords for this user name or from this address; try again in {seconds} "
            "seconds",
            context={"retry_after_s": seconds},
        )
    return ids


def _clear_attempt(conn: Connection, user_key: str, attempt: Sequence[str]) -> None:
    """A right password: this attempt was no failure, and the user name's failures are forgiven (the
    address keeps its other failures)."""
    _lock_throttle(conn)
    conn.execute(login_failure.delete().where(login_failure.c.id.in_(list(attempt))))
    conn.execute(login_failure.delete().where(login_failure.c.key_sha256 == _digest(user_key)))


def sign_in(
    engine: Engine, username: str, password: str, address: str, *, throttle: Throttle | None = None
) -> User | None:
    """``authenticate`` behind the shared throttle: raises AUTH_THROTTLED (``context.retry_after_s``) while
    the user name or the address is locked, counts a wrong password against both."""
    throttle = throttle or Throttle()
    keys = throttle_keys(username, address)
    attempt = _claim_attempt(engine, keys, throttle)
    user = authenticate(engine, username, password)
    if user is not None:
        with write_tx(engine) as conn:
            _clear_attempt(conn, keys[0], attempt)
    return user


def authenticate(engine: Engine, username: str, password: str) -> User | None:
    """The user when ``password`` is theirs and they are enabled; ``None`` otherwise (no hint which)."""
    with read_tx(engine) as conn:
        row = conn.execute(
            sa.select(*_USER_COLUMNS, app_user.c.password_hash).where(app_user.c.username == username)
        ).first()
    stored = row._mapping["password_hash"] if row is not None else _DUMMY_HASH
    try:
        _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return None
    if row is None:
        return None
    user = _user(row._mapping)
    if user.disabled:
        return None
    if _hasher.check_needs_rehash(stored):
        with write_tx(engine) as conn:
            conn.execute(
                app_user.update()
                .where(app_user.c.id == user.id)
                .values(password_hash=hash_password(password))
            )
    return user


# -- browser sessions ------------------------------------------------------------------------------------


def start_session(engine: Engine, user: User) -> Session:
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    now = _now()
    expires = now + SESSION_LIFETIME
    with write_tx(engine) as conn:
        conn.execute(user_session.delete().where(user_session.c.expires_at < now))
        conn.execute(
            user_session.insert().values(
                token_sha256=_digest(token),
                user_id=user.id,
                csrf_token=csrf,
                created_at=now,
                expires_at=expires,
            )
        )
    return Session(token=token, csrf_token=csrf, user=user, expires_at=expires)


def session_for(engine: Engine, token: str) -> Session | None:
    """The live session a cookie value stands for, or ``None`` (unknown, expired, or user disabled)."""
    if not token or len(token) > 200:
        return None
    with read_tx(engine) as conn:
        row = conn.execute(
            sa.select(*_USER_COLUMNS, user_session.c.csrf_token, user_session.c.expires_at)
            .join(app_user, app_user.c.id == user_session.c.user_id)
            .where(user_session.c.token_sha256 == _digest(token))
        ).first()
    if row is None:
        return None
    user = _user(row._mapping)
    expires: datetime = row._mapping["expires_at"]
    if user.disabled or expires <= _now():
        return None
    return Session(token=token, csrf_token=row._mapping["csrf_token"], user=user, expires_at=expires)


def end_session(engine: Engine, token: str) -> None:
    with write_tx(engine) as conn:
        conn.execute(user_session.delete().where(user_session.c.token_sha256 == _digest(token)))


def csrf_matches(session: Session, presented: str | None) -> bool:
    return presented is not None and secrets.compare_digest(session.csrf_token, presented)


# -- API tokens ------------------------------------------------------------------------------------------


def _token(m: sa.RowMapping) -> ApiToken:
    return ApiToken(
        id=m["id"],
        user_id=m["user_id"],
        username=m["username"],
        name=m["name"],
        prefix=m["prefix"],
        created_at=m["created_at"],
        last_used_at=m["last_used_at"],
        revoked_at=m["revoked_at"],
    )


_TOKEN_COLUMNS = (
    api_token.c.id,
    api_token.c.user_id,
    app_user.c.username,
    api_token.c.name,
    api_token.c.prefix,
    api_token.c.created_at,
    api_token.c.last_used_at,
    api_token.c.revoked_at,
)


def create_token(engine: Engine, user_id: str, name: str) -> tuple[str, ApiToken]:
    """A new API token for ``user_id``: the secret (returned here only, never again) and its record."""
    name = name.strip()
    if not name or len(name) > 200:
        raise LedgerError("USER_INVALID", "a token needs a name of 1-200 characters (what script uses it)")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token_id = str(uuid.uuid4())
    with write_tx(engine) as conn:
        _get_user(conn, user_id)
        conn.execute(
            api_token.insert().values(
                id=token_id,
                user_id=user_id,
                name=name,
                token_sha256=_digest(secret),
                prefix=secret[:10],
                created_at=_now(),
                last_used_at=None,
                revoked_at=None,
            )
        )
        row = conn.execute(
            sa.select(*_TOKEN_COLUMNS)
            .join(app_user, app_user.c.id == api_token.c.user_id)
            .where(api_token.c.id == token_id)
        ).one()
    return secret, _token(row._mapping)


def list_tokens(engine: Engine, user_id: str | None = None) -> list[ApiToken]:
    stmt = sa.select(*_TOKEN_COLUMNS).join(app_user, app_user.c.id == api_token.c.user_id)
    if user_id is not None:
        stmt = stmt.where(api_token.c.user_id == user_id)
    with read_tx(engine) as conn:
        rows = conn.execute(stmt.order_by(api_token.c.created_at, api_token.c.id)).all()
    return [_token(r._mapping) for r in rows]


def get_token(engine: Engine, token_id: str) -> ApiToken:
    with read_tx(engine) as conn:
        row = conn.execute(
            sa.select(*_TOKEN_COLUMNS)
            .join(app_user, app_user.c.id == api_token.c.user_id)
            .where(api_token.c.id == token_id)
        ).first()
    if row is None:
        raise LedgerError("TOKEN_NOT_FOUND", f"no API token with id {token_id!r}")
    return _token(row._mapping)


def revoke_token(engine: Engine, token_id: str) -> ApiToken:
    with write_tx(engine) as conn:
        found = conn.execute(
            api_token.update()
            .where(api_token.c.id == token_id, api_token.c.revoked_at.is_(None))
            .values(revoked_at=_now())
        ).rowcount
        if not found and conn.scalar(sa.select(api_token.c.id).where(api_token.c.id == token_id)) is None:
            raise LedgerError("TOKEN_NOT_FOUND", f"no API token with id {token_id!r}")
    return get_token(engine, token_id)


def user_for_token(engine: Engine, secret: str) -> User | None:
    """The enabled user an unrevoked API token belongs to, or ``None``."""
    if not secret.startswith(TOKEN_PREFIX) or len(secret) > 200:
        return None
    digest = _digest(secret)
    with read_tx(engine) as conn:
        row = conn.execute(
            sa.select(*_USER_COLUMNS, api_token.c.id.label("token_id"), api_token.c.last_used_at)
            .join(app_user, app_user.c.id == api_token.c.user_id)
            .where(api_token.c.token_sha256 == digest, api_token.c.revoked_at.is_(None))
        ).first()
    if row is None:
        return None
    user = _user(row._mapping)
    if user.disabled:
        return None
    now = _now()
    last: datetime | None = row._mapping["last_used_at"]
    if last is None or now - last > timedelta(minutes=1):
        with write_tx(engine) as conn:
            conn.execute(
                api_token.update().where(api_token.c.id == row._mapping["token_id"]).values(last_used_at=now)
            )
    return user
