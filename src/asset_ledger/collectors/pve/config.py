"""The pve source configuration and credential models.

Validation here is the only place a config or credential is judged; every failure becomes
``PVE_CONFIG_INVALID`` naming the field and what is wrong. Secret values never appear in a message.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from asset_ledger.contract import LedgerError

DEFAULT_PORT = 8006
DEFAULT_TIMEOUT_MS = 60_000
#: Agent calls get their own, shorter deadline so a hanging guest agent cannot stall a run.
DEFAULT_AGENT_TIMEOUT_MS = 10_000

_HOST_RE = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(?:\.[A-Za-z0-9-]{1,63})*$")
_FINGERPRINT_RE = re.compile(r"^[0-9A-Fa-f]{64}$")
#: ``user@realm!tokenid``: user ids are ``name@realm``; token ids are letters, digits, ``-``, ``_``, ``.``.
_TOKEN_ID_RE = re.compile(r"^[^\s@:;=!]+@[A-Za-z0-9][A-Za-z0-9._-]*![A-Za-z][A-Za-z0-9._-]*$")
_FORBIDDEN_CHARS = ("\r", "\n", "\x00")


class PveConfig(BaseModel):
    """Non-secret settings of one pve source (PRD §1 plus TLS trust and an agent deadline)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    endpoint: str
    tls_verify: bool = True
    tls_ca_bundle: str | None = None
    tls_fingerprint: str | None = None
    timeout_ms: int = Field(default=DEFAULT_TIMEOUT_MS, ge=1_000, le=600_000)
    agent_timeout_ms: int | None = Field(default=None, ge=500, le=600_000)
    scope: Literal["auto", "standalone", "cluster"] = "auto"
    max_parallel_nodes: int = Field(default=5, ge=1, le=64)
    auth_type: Literal["api_token", "user_password"] = "api_token"

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        return normalize_endpoint(value)

    @field_validator("tls_fingerprint")
    @classmethod
    def _fingerprint(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        compact = value.strip().replace(":", "")
        if not _FINGERPRINT_RE.match(compact):
            raise ValueError("must be a SHA-256 fingerprint: 64 hex digits, with or without ':' separators")
        return ":".join(compact[i : i + 2] for i in range(0, 64, 2)).upper()

    @field_validator("tls_ca_bundle")
    @classmethod
    def _ca_bundle(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if any(c in value for c in _FORBIDDEN_CHARS):
            raise ValueError("must be a file path without control characters")
        return value

    @model_validator(mode="after")
    def _agent_deadline(self) -> PveConfig:
        if self.agent_timeout_ms is not None and self.agent_timeout_ms > self.timeout_ms:
            raise ValueError("agent_timeout_ms must not exceed timeout_ms")
        return self

    @property
    def host(self) -> str:
        return urlsplit(self.endpoint).hostname or ""

    @property
    def port(self) -> int:
        return urlsplit(self.endpoint).port or DEFAULT_PORT

    @property
    def timeout_s(self) -> float:
        return self.timeout_ms / 1000

    @property
    def agent_timeout_s(self) -> float:
        if self.agent_timeout_ms is not None:
            return self.agent_timeout_ms / 1000
        return min(self.timeout_ms, DEFAULT_AGENT_TIMEOUT_MS) / 1000


def normalize_endpoint(value: str) -> str:
    """``https://host:port`` from ``https://host[:port][/]`` or ``host[:port]``; anything else is refused."""
    text = value.strip()
    if not text:
        raise ValueError("must not be empty")
    if any(c in text for c in (*_FORBIDDEN_CHARS, " ", "\t")):
        raise ValueError("must not contain whitespace or control characters")
    if "://" not in text:
        text = "https://" + text
    parts = urlsplit(text)
    if parts.scheme.lower() != "https":
        raise ValueError(f"must use https (got {parts.scheme!r}); PVE serves its API over HTTPS on port 8006")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise ValueError("must not contain user information; put credentials in the credential")
    if parts.path not in ("", "/"):
        raise ValueError(f"must be only scheme, host and port (found path {parts.path!r})")
    if parts.query or parts.fragment:
        raise ValueError("must not contain a query or fragment")
    try:
        port = parts.port
    except ValueError:
        raise ValueError("has an invalid port") from None
    host = parts.hostname
    if not host:
        raise ValueError("has no host")
    if ":" in host:  # IPv6 literal
        host_text = f"[{host}]"
    else:
        if not _HOST_RE.match(host):
            raise ValueError(f"has an invalid host name {host!r}")
        host_text = host
    if port is not None and not 1 <= port <= 65535:
        raise ValueError("has a port outside 1..65535")
    return f"https://{host_text}:{port or DEFAULT_PORT}"


class ApiTokenCredential(BaseModel):
    """``Authorization: PVEAPIToken=<api_token_id>=<api_token_secret>`` (PVE 6.2+)."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    api_token_id: str
    api_token_secret: str = Field(repr=False)

    @field_validator("api_token_id")
    @classmethod
    def _token_id(cls, value: str) -> str:
        if any(c in value for c in _FORBIDDEN_CHARS) or not value.isascii() or not value.isprintable():
            raise ValueError(
                "must be printable ASCII without control characters (it goes into an HTTP header)"
            )
        if not _TOKEN_ID_RE.match(value):
            raise ValueError(
                "must look like 'user@realm!tokenid' (no spaces, ';', '=' or ':'), "
                "e.g. 'ledger@pve!inventory'"
            )
        return value

    @field_validator("api_token_secret")
    @classmethod
    def _secret(cls, value: str) -> str:
        if not value:
            raise ValueError("must not be empty")
        if any(c in value for c in (*_FORBIDDEN_CHARS, ";", " ", "\t")) or not (
            value.isascii() and value.isprintable()
        ):
            raise ValueError(
                "contains a character PVE tokens never contain (control character, non-ASCII, ';' or space)"
            )
        return value

    @property
    def user(self) -> str:
        return self.api_token_id.split("!", 1)[0]

    def header(self) -> str:
        return f"PVEAPIToken={self.api_token_id}={self.api_token_secret}"


class PasswordCredential(BaseModel):
    """User name (``name@realm`` or ``name`` plus ``realm``) and password, for a PVE ticket."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    username: str
    password: str = Field(repr=False)
    realm: str | None = None

    @field_validator("username")
    @classmethod
    def _username(cls, value: str) -> str:
        if not value or any(c in value for c in (*_FORBIDDEN_CHARS, " ", "\t", "!", ";", "=")):
            raise ValueError("must be a PVE user name like 'ledger@pve' (no spaces, '!', ';' or '=')")
        return value

    @field_validator("password")
    @classmethod
    def _password(cls, value: str) -> str:
        if not value:
            raise ValueError("must not be empty")
        if any(c in value for c in _FORBIDDEN_CHARS):
            raise ValueError("must not contain control characters")
        return value

    @field_validator("realm")
    @classmethod
    def _realm(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not re.match(r"^[A-Za-z][A-Za-z0-9._-]*$", value):
            raise ValueError("must be a realm name such as 'pam' or 'pve'")
        return value

    @model_validator(mode="after")
    def _realm_once(self) -> PasswordCredential:
        if self.realm is None and "@" not in self.username:
            raise ValueError("username needs a realm: write 'name@realm' or give 'realm'")
        if self.realm is not None and "@" in self.username:
            raise ValueError("give the realm either in username ('name@realm') or in 'realm', not both")
        return self

    @property
    def userid(self) -> str:
        return self.username if self.realm is None else f"{self.username}@{self.realm}"


Credential = ApiTokenCredential | PasswordCredential


def _first_problem(exc: ValidationError, prefix: str) -> LedgerError:
    problems = []
    fields = []
    for err in exc.errors(include_input=False, include_url=False):
        loc = ".".join(str(p) for p in err["loc"]) or prefix
        fields.append(loc)
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "is not a known setting"
        elif err["type"] == "missing":
            msg = "is required"
        problems.append(f"{prefix}.{loc}: {msg}" if loc != prefix else f"{prefix}: {msg}")
    return LedgerError(
        "PVE_CONFIG_INVALID",
        "; ".join(problems),
        context={"fields": [f"{prefix}.{f}" if f != prefix else prefix for f in fields]},
    )


def parse_config(config: Mapping[str, Any] | None) -> PveConfig:
    """The validated config; ``PVE_CONFIG_INVALID`` naming every wrong field otherwise."""
    if not isinstance(config, Mapping):
        raise LedgerError("PVE_CONFIG_INVALID", "config: must be an object with at least 'endpoint'")
    try:
        return PveConfig.model_validate(dict(config))
    except ValidationError as exc:
        raise _first_problem(exc, "config") from None


def parse_credential(config: PveConfig, credential: Mapping[str, Any] | None) -> Credential:
    """The credential for ``config.auth_type``; ``PVE_CONFIG_INVALID`` naming the field otherwise."""
    if not isinstance(credential, Mapping):
        raise LedgerError(
            "PVE_CONFIG_INVALID",
            "credential: missing; auth_type "
            + config.auth_type
            + (
                " needs api_token_id and api_token_secret"
                if config.auth_type == "api_token"
                else " needs username and password"
            ),
            context={"fields": ["credential"]},
        )
    data = {k: v for k, v in credential.items() if v is not None}
    try:
        if config.auth_type == "api_token":
            return ApiTokenCredential.model_validate(data)
        return PasswordCredential.model_validate(data)
    except ValidationError as exc:
        raise _first_problem(exc, "credential") from None
