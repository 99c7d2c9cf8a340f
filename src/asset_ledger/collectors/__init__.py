"""Collectors: one package per source type, each turning a collector-request-v1 into a collector-response-v1.

A collector talks to its source and knows the contract; it never imports the core or storage. The core finds
collectors here by source type.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

from asset_ledger.contract import LedgerError

#: A progress event: {"phase": str, "done": int, "total": int, "node": str | None, "message": str}.
ProgressEvent = dict[str, Any]
ProgressCallback = Callable[[ProgressEvent], None]


@runtime_checkable
class Collector(Protocol):
    """What the core needs from a collector."""

    #: The source type this collector serves, e.g. ``"pve"``.
    source_type: str
    #: Reported in every response and run record.
    version: str
    #: Credential fields that are secret: never logged, never shown, never stored in plaintext.
    secret_fields: frozenset[str]

    def check_config(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """The config with defaults filled in; raises ``LedgerError`` naming the field when it is invalid."""
        ...

    def check_credential(self, config: Mapping[str, Any], credential: Mapping[str, Any]) -> None:
        """Raises ``LedgerError`` when the credential lacks what the config's auth type needs."""
        ...

    async def run(
        self, request: Mapping[str, Any], progress: ProgressCallback | None = None
    ) -> dict[str, Any]:
        """Answer one collector-request-v1 with a collector-response-v1. Never raises for expected failures:
        they are ``errors[]`` entries with registered codes."""
        ...


#: source type -> "module:attribute" of a zero-argument factory returning a Collector.
COLLECTORS: dict[str, str] = {
    "pve": "asset_ledger.collectors.pve:PveCollector",
}


def source_types() -> list[str]:
    return sorted(COLLECTORS)


def get_collector(source_type: str) -> Collector:
    """The collector for ``source_type``; ``COLLECTOR_UNKNOWN_TYPE`` when none is installed."""
    target = COLLECTORS.get(source_type)
    if target is None:
        raise LedgerError(
            "COLLECTOR_UNKNOWN_TYPE",
            f"no collector for source type {source_type!r}; supported: {', '.join(source_types())}",
        )
    module_name, _, attr = target.partition(":")
    factory = getattr(importlib.import_module(module_name), attr)
    collector: Collector = factory()
    return collector
