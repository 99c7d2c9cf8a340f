"""What the core hands to its interfaces (CLI, HTTP API, web UI): plain, typed, JSON-ready records.

No view ever carries a secret: a source says whether a credential is set and when, nothing more.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

T = TypeVar("T")


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


class _View:
    def to_dict(self) -> dict[str, Any]:
        """This record as JSON-ready data (timestamps in ISO 8601, UTC)."""
        result: dict[str, Any] = _jsonable(asdict(self))  # type: ignore[call-overload]
        return result


@dataclass(frozen=True, slots=True)
class Source(_View):
    id: str
    name: str
    source_type: str
    config: dict[str, Any]
    enabled: bool
    schedule_interval_s: int | None
    missing_guard_share: float | None
    created_at: datetime
    updated_at: datetime
    credential_set: bool
    credential_updated_at: datetime | None


@dataclass(frozen=True, slots=True)
class Run(_View):
    id: str
    source_id: str
    source_name: str
    mode: str
    status: str
    trigger: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    heartbeat_at: datetime
    collector_version: str | None
    detect: dict[str, Any] | None
    stats: dict[str, Any] | None
    errors: list[dict[str, Any]]
    warnings: list[dict[str, Any]]
    progress: dict[str, Any] | None
    summary: dict[str, Any] | None
    held: bool
    confirmed_by: str | None
    confirmed_at: datetime | None

    @property
    def duration_s(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


@dataclass(frozen=True, slots=True)
class Asset(_View):
    id: str
    source_id: str
    source_name: str
    external_kind: str
    external_id: str
    status: str
    display_name: str
    power_state: str | None
    first_seen_at: datetime
    last_seen_at: datetime
    missing_since: datetime | None
    first_seen_run_id: str
    last_seen_run_id: str
    normalized: dict[str, Any]
    raw_sha256: str


@dataclass(frozen=True, slots=True)
class RelationEnd(_View):
    """A relation seen from one asset: its type, direction and the asset at the other end."""

    type: str
    direction: str  # "out" (this asset -> other) or "in" (other -> this asset)
    status: str
    other_id: str
    other_kind: str
    other_external_id: str
    other_name: str
    first_seen_at: datetime
    last_seen_at: datetime
    missing_since: datetime | None


@dataclass(frozen=True, slots=True)
class RawVersion(_View):
    """One distinct raw payload an asset had, the runs that saw it, and its exact bytes."""

    sha256: str
    first_run_id: str
    last_run_id: str
    runs: int
    first_seen_at: datetime | None
    last_seen_at: datetime | None
    size_raw: int
    data: bytes = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        result = {k: _jsonable(getattr(self, k)) for k in self.__dataclass_fields__ if k != "data"}
        result["payload"] = json.loads(self.data)
        return result


@dataclass(frozen=True, slots=True)
class AssetDetail(_View):
    asset: Asset
    relations: list[RelationEnd]
    raw_history: list[RawVersion]

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.asset.to_dict(),
            "relations": [r.to_dict() for r in self.relations],
            "raw_history": [v.to_dict() for v in self.raw_history],
        }


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a listing and the total number of matches."""

    items: list[T]
    total: int
    limit: int
    offset: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "items": [item.to_dict() for item in self.items],  # type: ignore[attr-defined]
            "total": self.total,
            "limit": self.limit,
            "offset": self.offset,
        }
