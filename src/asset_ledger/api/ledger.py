"""``/api/v1`` for the ledger itself: sources (credentials write-only), runs, assets, relations, topology.

Viewers read everything but secrets; admins change sources, set credentials, queue runs and confirm held
snapshots. Runs are queued here and executed by a worker (``asset-ledger serve`` embeds one).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from asset_ledger.api.auth import Admin, Viewer, engine_of, ledger_of
from asset_ledger.api.errors import ERROR_RESPONSES
from asset_ledger.collectors import get_collector
from asset_ledger.contract import LedgerError
from asset_ledger.core import UNSET, queue
from asset_ledger.core.asset_search import (
    COUNT_CAP,
    AssetFilter,
    TreeNode,
    search_assets,
    search_relations,
    topology,
)
from asset_ledger.core.views import Source

router = APIRouter(prefix="/api/v1", tags=["ledger"], responses=ERROR_RESPONSES)

#: Deeper than any real run history; keeps offsets within what every database's integers hold.
MAX_OFFSET = 100_000_000
TLS_RISK = (
    "tls_verify=false accepts any certificate, so anyone on the network path can read the credential. "
    "Prefer tls_ca_bundle (the PVE CA file) or tls_fingerprint (the certificate's SHA-256); to switch "
    "verification off anyway, send acknowledge_tls_risk=true."
)


def check_tls_acknowledged(config: dict[str, Any] | None, acknowledged: bool) -> None:
    """Turning TLS verification off is allowed only as an explicit, acknowledged decision."""
    if config is not None and config.get("tls_verify") is False and not acknowledged:
        raise LedgerError("SOURCE_CONFIG_INVALID", TLS_RISK, context={"fields": ["config.tls_verify"]})


def source_json(
    request: Request,
    view: Source,
    latest: dict[str, dict[str, dict[str, Any]]] | None = None,
    due: dict[str, datetime] | None = None,
) -> dict[str, Any]:
    """A source with the newest run of each mode and when its next scheduled collect is due."""
    engine = engine_of(request)
    latest = queue.latest_runs(engine) if latest is None else latest
    due = queue.next_scheduled(engine) if due is None else due
    next_at = due.get(view.id)
    return {
        **view.to_dict(),
        "last_runs": {
            mode: {
                **r,
                "created_at": r["created_at"].isoformat(),
                "finished_at": r["finished_at"].isoformat() if r["finished_at"] else None,
            }
            for mode, r in latest.get(view.id, {}).items()
        },
        "next_scheduled_at": next_at.isoformat() if next_at else None,
    }


class SourceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    source_type: str = "pve"
    config: dict[str, Any]
    enabled: bool = True
    schedule_interval_s: int | None = None
    missing_guard_share: float | None = None
    acknowledge_tls_risk: bool = False
    credential: dict[str, Any] | None = Field(default=None, description="Write-only; never returned.")


class SourceUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = None
    config: dict[str, Any] | None = Field(default=None, description="Replaces the whole config.")
    config_patch: dict[str, Any] | None = Field(default=None, description="Changes only these keys.")
    enabled: bool | None = None
    schedule_interval_s: int | None = None
    missing_guard_share: float | None = None
    acknowledge_tls_risk: bool = False


class RunCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mode: Literal["healthcheck", "detect", "collect"]


@router.get("/sources")
def list_sources(request: Request, _: Viewer) -> dict[str, Any]:
    engine = engine_of(request)
    latest, due = queue.latest_runs(engine), queue.next_scheduled(engine)
    return {"items": [source_json(request, s, latest, due) for s in ledger_of(request).list_sources()]}


@router.post("/sources", status_code=201)
def create_source(request: Request, body: SourceCreate, _: Admin) -> dict[str, Any]:
    check_tls_acknowledged(body.config, body.acknowledge_tls_risk)
    ledger = ledger_of(request)
    if body.credential is not None:
        # Check the credential before the source exists, so a bad one leaves nothing behind.
        collector = get_collector(body.source_type)
        collector.check_credential(collector.check_config(body.config), body.credential)
    view = ledger.add_source(
        body.name,
        body.source_type,
        body.config,
        enabled=body.enabled,
        schedule_interval_s=body.schedule_interval_s,
        missing_guard_share=body.missing_guard_share,
    )
    if body.credential is not None:
        view = ledger.set_credential(view.id, body.credential)
    return source_json(request, view)


@router.get("/sources/{ref}")
def get_source(request: Request, ref: str, _: Viewer) -> dict[str, Any]:
    return source_json(request, ledger_of(request).get_source(ref))


@router.patch("/sources/{ref}")
def update_source(request: Request, ref: str, body: SourceUpdate, _: Admin) -> dict[str, Any]:
    check_tls_acknowledged(body.config, body.acknowledge_tls_risk)
    check_tls_acknowledged(body.config_patch, body.acknowledge_tls_risk)
    fields = body.model_fields_set
    view = ledger_of(request).update_source(
        ref,
        name=body.name,
        config=body.config,
        config_patch=body.config_patch,
        enabled=body.enabled,
        schedule_interval_s=body.schedule_interval_s if "schedule_interval_s" in fields else UNSET,
        missing_guard_share=body.missing_guard_share if "missing_guard_share" in fields else UNSET,
    )
    return source_json(request, view)


@router.delete("/sources/{ref}", status_code=204)
def delete_source(request: Request, ref: str, _: Admin) -> Response:
    ledger_of(request).remove_source(ref)
    return Response(status_code=204)


@router.put("/sources/{ref}/credential")
def set_credential(request: Request, ref: str, body: dict[str, Any], _: Admin) -> dict[str, Any]:
    """Store the source's credential (encrypted). Write-only: no route ever returns it."""
    return source_json(request, ledger_of(request).set_credential(ref, body))


@router.post("/sources/{ref}/runs", status_code=202)
def queue_run(request: Request, ref: str, body: RunCreate, principal: Admin) -> dict[str, Any]:
    trigger = "api" if principal.via == "token" else "manual"
    return ledger_of(request).create_run(ref, body.mode, trigger=trigger).to_dict()


@router.get("/runs")
def list_runs(  # noqa: PLR0917  (FastAPI takes query parameters as arguments)
    request: Request,
    _: Viewer,
    source: str | None = None,
    status: str | None = None,
    mode: Annotated[str | None, Query(description="healthcheck, detect or collect")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> dict[str, Any]:
    runs = ledger_of(request).list_runs(source=source, status=status, mode=mode, limit=limit, offset=offset)
    return runs.to_dict()


@router.get("/runs/{run_id}")
def get_run(request: Request, run_id: str, _: Viewer) -> dict[str, Any]:
    return ledger_of(request).get_run(run_id).to_dict()


@router.post("/runs/{run_id}/confirm")
def confirm_run(request: Request, run_id: str, principal: Admin) -> dict[str, Any]:
    """Apply a snapshot the mass-disappearance guard held back."""
    return ledger_of(request).confirm_run(run_id, confirmed_by=principal.user.username).to_dict()


@router.get("/assets")
def list_assets(  # noqa: PLR0917  (FastAPI takes query parameters as arguments)
    request: Request,
    _: Viewer,
    kind: str | None = None,
    status: str | None = None,
    source: str | None = None,
    power_state: str | None = None,
    guest_type: str | None = Query(default=None, description="qemu or lxc"),
    tag: str | None = None,
    q: str | None = Query(default=None, description="part of the name or external id"),
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: str | None = Query(default=None, description="next_cursor of the previous page"),
    exact_total: bool = Query(
        default=False, description=f"count every match, not only up to {COUNT_CAP:,} (slower on big lists)"
    ),
) -> dict[str, Any]:
    """Assets matching every filter given, ordered by display name (then id), a page at a time.

    `tag` is one tag, matched exactly (on its first 256 characters: tags and display names are indexed
    that long). `q` is part of the display name or external id, any case.

    `total` is the number of matches, counted when the first page (no `cursor`) is read, up to 10,000:
    with more, `total` is 10,000 and `total_capped` is `true` (show it as "10,000+"); `exact_total=true`
    counts them all. Pages reached with `next_cursor` repeat the first page's `total` and `total_capped`
    instead of counting again (`total_counted` is `false` on them), so assets added or changed while
    paging show in the total only when the list is read again from the start.
    """
    filt = AssetFilter(
        kind=kind, status=status, source=source, power_state=power_state, guest_type=guest_type, tag=tag, q=q
    )
    page = search_assets(engine_of(request), filt, limit=limit, cursor=cursor, exact_total=exact_total)
    return page.to_dict()


@router.get("/assets/{asset_id}")
def get_asset(
    request: Request, asset_id: str, _: Viewer, history: Annotated[int, Query(ge=1, le=200)] = 20
) -> dict[str, Any]:
    """An asset with its relations and raw payload history (each distinct payload, newest first)."""
    return ledger_of(request).get_asset(asset_id, history_limit=history).to_dict()


@router.get("/assets/{asset_id}/relations")
def get_relations(request: Request, asset_id: str, _: Viewer) -> dict[str, Any]:
    detail = ledger_of(request).get_asset(asset_id, history_limit=1)
    return {"items": [r.to_dict() for r in detail.relations]}


@router.get("/relations")
def list_relations(  # noqa: PLR0917  (FastAPI takes query parameters as arguments)
    request: Request,
    _: Viewer,
    source: str | None = None,
    type: str | None = Query(default=None, description="runs_on or member_of"),
    status: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: str | None = None,
) -> dict[str, Any]:
    """Relations (VM runs_on Host, Host member_of Cluster) with both ends named."""
    page = search_relations(
        engine_of(request), source_ref=source, type=type, status=status, limit=limit, cursor=cursor
    )
    return page.to_dict()


def _tree_json(node: TreeNode) -> dict[str, Any]:
    a = node.asset
    return {
        "id": a.id,
        "kind": a.external_kind,
        "name": a.display_name,
        "external_id": a.external_id,
        "power_state": a.power_state,
        "guest_type": (a.normalized.get("virtualization") or {}).get("type"),
        "children": [_tree_json(c) for c in node.children],
    }


@router.get("/topology")
def get_topology(request: Request, _: Viewer, source: str | None = None) -> dict[str, Any]:
    return {"items": [_tree_json(n) for n in topology(engine_of(request), source_name=source)]}
