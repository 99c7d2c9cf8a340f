"""The error-code registry (``error-codes.json``) and the one error type that carries a registered code.

Every code the project can emit is in the registry; asking for an unknown code is a programming error and
raises ``KeyError`` at once, so an unregistered code can never reach a user.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from typing import Any, Literal

CATEGORIES = (
    "config",
    "auth",
    "permission",
    "network",
    "rate_limit",
    "parse",
    "schema",
    "inventory",
    "storage",
    "internal",
)

Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class ErrorCode:
    """One registered code: what it means, whether a retry can help, and what the user should do."""

    code: str
    category: str
    severity: Severity
    retryable: bool
    emitted_by: str
    meaning: str
    action: str


def _load() -> dict[str, ErrorCode]:
    text = resources.files("asset_ledger.contract").joinpath("error-codes.json").read_text("utf-8")
    entries = json.loads(text)["codes"]
    registry: dict[str, ErrorCode] = {}
    for entry in entries:
        code = ErrorCode(**entry)
        if code.code in registry:
            raise ValueError(f"error code {code.code} is registered twice")
        if code.category not in CATEGORIES:
            raise ValueError(f"error code {code.code} has unknown category {code.category}")
        registry[code.code] = code
    return registry


REGISTRY: dict[str, ErrorCode] = _load()


def lookup(code: str) -> ErrorCode:
    """The registered entry for ``code``; ``KeyError`` if it was never registered."""
    try:
        return REGISTRY[code]
    except KeyError:
        raise KeyError(f"error code {code!r} is not in the registry (contract/error-codes.json)") from None


def error_entry(
    code: str,
    message: str,
    *,
    suggested_action: str | None = None,
    retryable: bool | None = None,
    context: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An ``errors[]`` item of collector-response-v1, category and retryability taken from the registry."""
    entry = lookup(code)
    if entry.severity != "error":
        raise ValueError(f"{code} is a warning code, not an error code")
    item: dict[str, Any] = {
        "code": code,
        "category": entry.category,
        "retryable": entry.retryable if retryable is None else retryable,
        "message": message,
        "suggested_action": suggested_action or entry.action,
    }
    if context:
        item["context"] = context
    return item


def warning_entry(code: str, message: str, *, context: dict[str, Any] | None = None) -> dict[str, Any]:
    """A ``warnings[]`` item of collector-response-v1 for a registered warning code."""
    entry = lookup(code)
    if entry.severity != "warning":
        raise ValueError(f"{code} is an error code, not a warning code")
    item: dict[str, Any] = {"code": code, "message": message}
    if context:
        item["context"] = context
    return item


class LedgerError(Exception):
    """An expected failure that carries a registered code, a message and (optionally) a better action.

    Raised anywhere in the project for bad input or an unusable environment; interfaces turn it into a
    clear message and a stable code, never a traceback. Messages must never contain secrets.
    """

    def __init__(
        self,
        code: str,
        message: str,
        *,
        suggested_action: str | None = None,
        context: dict[str, Any] | None = None,
    ) -> None:
        self.entry = lookup(code)
        self.code = code
        self.message = message
        self.suggested_action = suggested_action or self.entry.action
        self.context = context or {}
        super().__init__(f"{code}: {message}")

    @property
    def retryable(self) -> bool:
        return self.entry.retryable

    def as_error(self) -> dict[str, Any]:
        """This error as an ``errors[]`` item of collector-response-v1."""
        return error_entry(
            self.code, self.message, suggested_action=self.suggested_action, context=self.context or None
        )
