"""The ledger's pages: sources (list, create, edit, run), runs (list, detail with live progress, confirm),
assets (search, detail with relations and raw payload history), and the topology tree.

Forms post back to the page they came from; validation errors are shown beside the fields they name.
"""

from __future__ import annotations

import difflib
import json
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import FormData

from asset_ledger.api.auth import Admin, Viewer, engine_of, ledger_of
from asset_ledger.api.errors import status_for
from asset_ledger.api.ledger import MAX_OFFSET
from asset_ledger.collectors import get_collector
from asset_ledger.contract import LedgerError
from asset_ledger.core import UNSET, queue
from asset_ledger.core.asset_search import AssetFilter, all_tags, search_assets, topology
from asset_ledger.core.views import Run, Source
from asset_ledger.storage.tables import RUN_MODES, RUN_STATUSES
from asset_ledger.web.render import render

router = APIRouter(include_in_schema=False)

#: The risk of switching TLS verification off, as the source form explains it.
TLS_RISK_UI = (
    "Without verification any certificate is accepted, so anyone on the network path can pose as this PVE "
    "server and read the credential. Safer: give the CA bundle of a self-signed PVE, or pin the "
    "certificate's SHA-256 fingerprint (shown by 'pvenode cert info')."
)
POWER_STATES = ("running", "stopped", "paused", "suspended", "starting", "unknown")
#: Warning context keys that name what a warning is about.
AFFECTED_KEYS = ("node", "vmid", "vm", "name", "external_id")


@router.get("/")
def home(_: Viewer) -> Response:
    return RedirectResponse("/sources", status_code=303)


# ------------------------------------------------------------------------------------------------ sources


@router.get("/sources", response_class=HTMLResponse)
def sources(request: Request, _: Viewer) -> Response:
    engine = engine_of(request)
    return render(
        request,
        "sources.html",
        {
            "sources": ledger_of(request).list_sources(),
            "latest": queue.latest_runs(engine),
            "due": queue.next_scheduled(engine),
            "modes": RUN_MODES,
            "section": "sources",
        },
    )


def _form_values(source: Source | None) -> dict[str, Any]:
    config = source.config if source else {}
    return {
        "name": source.name if source else "",
        "endpoint": config.get("endpoint", ""),
        "tls_verify": config.get("tls_verify", True),
        "tls_ca_bundle": config.get("tls_ca_bundle") or "",
        "tls_fingerprint": config.get("tls_fingerprint") or "",
        "timeout_ms": config.get("timeout_ms", 60000),
        "scope": config.get("scope", "auto"),
        "max_parallel_nodes": config.get("max_parallel_nodes", 5),
        "auth_type": config.get("auth_type", "api_token"),
        "api_token_id": "",
        "username": "",
        "schedule_interval_s": source.schedule_interval_s if source and source.schedule_interval_s else "",
        "enabled": source.enabled if source else True,
        "acknowledge_tls_risk": False,
    }


def _source_form(
    request: Request,
    *,
    source: Source | None,
    values: dict[str, Any],
    error: LedgerError | None = None,
    status: int = 200,
) -> Response:
    fields: set[str] = set()
    if error is not None:
        for name in error.context.get("fields", []):
            fields.add(str(name).split(".")[-1])
    return render(
        request,
        "source_form.html",
        {
            "source": source,
            "v": values,
            "error": error.as_error() if error else None,
            "bad": fields,
            "tls_risk": TLS_RISK_UI,
            "section": "sources",
        },
        status_code=status,
    )


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _int(form: FormData, name: str, default: int | None) -> int | None:
    text = _text(form, name)
    if not text:
        return default
    try:
        return int(text)
    except ValueError:
        raise LedgerError(
            "SOURCE_CONFIG_INVALID", f"{name}: {text!r} is not a whole number", context={"fields": [name]}
        ) from None


def _read_source_form(form: FormData) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(values to show again, config, credential fields given)."""
    values = {
        "name": _text(form, "name"),
        "endpoint": _text(form, "endpoint"),
        "tls_verify": form.get("tls_verify") == "on",
        "tls_ca_bundle": _text(form, "tls_ca_bundle"),
        "tls_fingerprint": _text(form, "tls_fingerprint"),
        "timeout_ms": _text(form, "timeout_ms"),
        "scope": _text(form, "scope") or "auto",
        "max_parallel_nodes": _text(form, "max_parallel_nodes"),
        "auth_type": _text(form, "auth_type") or "api_token",
        "api_token_id": _text(form, "api_token_id"),
        "username": _text(form, "username"),
        "schedule_interval_s": _text(form, "schedule_interval_s"),
        "enabled": form.get("enabled") == "on",
        "acknowledge_tls_risk": form.get("acknowledge_tls_risk") == "on",
    }
    config: dict[str, Any] = {
        "endpoint": values["endpoint"],
        "tls_verify": values["tls_verify"],
        "scope": values["scope"],
        "auth_type": values["auth_type"],
    }
    if values["tls_ca_bundle"]:
        config["tls_ca_bundle"] = values["tls_ca_bundle"]
    if values["tls_fingerprint"]:
        config["tls_fingerprint"] = values["tls_fingerprint"]
    for name in ("timeout_ms", "max_parallel_nodes"):
        number = _int(form, name, None)
        if number is not None:
            config[name] = number
    credential: dict[str, Any] = {}
    if values["auth_type"] == "api_token":
        secret = form.get("api_token_secret")
        if values["api_token_id"] or secret:
            credential = {"api_token_id": values["api_token_id"], "api_token_secret": secret or ""}
    else:
        password = form.get("password")
        if values["username"] or password:
            credential = {"username": values["username"], "password": password or ""}
    return values, config, credential


def _require_tls_acknowledgement(values: dict[str, Any], config: dict[str, Any]) -> None:
    """Switching certificate verification off is accepted only with the risk box ticked."""
    if not config["tls_verify"] and not values["acknowledge_tls_risk"]:
        raise LedgerError(
            "SOURCE_CONFIG_INVALID",
            "certificate verification is off: acknowledge the risk, or switch verification back on",
            context={"fields": ["acknowledge_tls_risk"]},
        )


@router.get("/sources/new", response_class=HTMLResponse)
def new_source(request: Request, _: Admin) -> Response:
    return _source_form(request, source=None, values=_form_values(None))


@router.post("/sources/new", response_class=HTMLResponse)
async def create_source(request: Request, _: Admin) -> Response:
    form = await request.form()
    ledger = ledger_of(request)
    values: dict[str, Any] = _form_values(None)
    try:
        values, config, credential = _read_source_form(form)
        _require_tls_acknowledgement(values, config)
        collector = get_collector("pve")
        checked = collector.check_config(config)
        if not credential:
            raise LedgerError(
                "CREDENTIAL_MISSING",
                "a new source needs its credential (API token id and secret, or user name and password)",
                context={"fields": ["api_token_id", "username"]},
            )
        collector.check_credential(checked, credential)
        view = ledger.add_source(
            values["name"],
            "pve",
            config,
            enabled=values["enabled"],
            schedule_interval_s=_int(form, "schedule_interval_s", None),
        )
        ledger.set_credential(view.id, credential)
    except LedgerError as exc:
        return _source_form(request, source=None, values=values, error=exc, status=status_for(exc))
    return RedirectResponse("/sources?done=source_saved", status_code=303)


@router.get("/sources/{ref}/edit", response_class=HTMLResponse)
def edit_source(request: Request, ref: str, _: Admin) -> Response:
    source = ledger_of(request).get_source(ref)
    return _source_form(request, source=source, values=_form_values(source))


@router.post("/sources/{ref}/edit", response_class=HTMLResponse)
async def save_source(request: Request, ref: str, _: Admin) -> Response:
    form = await request.form()
    ledger = ledger_of(request)
    source = ledger.get_source(ref)
    values: dict[str, Any] = _form_values(source)
    try:
        values, config, credential = _read_source_form(form)
        _require_tls_acknowledgement(values, config)
        if credential:
            collector = get_collector(source.source_type)
            collector.check_credential(collector.check_config(config), credential)
        ledger.update_source(
            source.id,
            name=values["name"] or None,
            config=config,
            enabled=values["enabled"],
            schedule_interval_s=_int(form, "schedule_interval_s", None),
            missing_guard_share=UNSET,
        )
        if credential:
            ledger.set_credential(source.id, credential)
    except LedgerError as exc:
        return _source_form(request, source=source, values=values, error=exc, status=status_for(exc))
    return RedirectResponse("/sources?done=source_saved", status_code=303)


@router.post("/sources/{ref}/delete")
def delete_source(request: Request, ref: str, _: Admin) -> Response:
    ledger_of(request).remove_source(ref)
    return RedirectResponse("/sources?done=source_removed", status_code=303)


@router.post("/sources/{ref}/runs")
async def queue_run(request: Request, ref: str, _: Admin) -> Response:
    form = await request.form()
    mode = _text(form, "mode")
    run = ledger_of(request).create_run(ref, mode, trigger="manual")
    return RedirectResponse(f"/runs/{run.id}", status_code=303)


# --------------------------------------------------------------------------------------------------- runs


@router.get("/runs", response_class=HTMLResponse)
def runs(
    request: Request, _: Viewer, source: str = "", status: str = "", mode: str = "", offset: int = 0
) -> Response:
    ledger = ledger_of(request)
    offset = min(max(0, offset), MAX_OFFSET)
    page = ledger.list_runs(
        source=source or None, status=status or None, mode=mode or None, limit=50, offset=offset
    )
    filters = {"source": source, "status": status, "mode": mode}
    return render(
        request,
        "runs.html",
        {
            "page": page,
            "sources": ledger.list_sources(),
            "statuses": RUN_STATUSES,
            "modes": RUN_MODES,
            "f": filters,
            "next_offset": page.offset + page.limit if page.offset + page.limit < page.total else None,
            "prev_offset": max(0, page.offset - page.limit) if page.offset else None,
            "filter_query": urlencode({k: v for k, v in filters.items() if v}),
            "section": "runs",
        },
    )


def group_warnings(run: Run) -> list[dict[str, Any]]:
    """Warnings grouped by code: how many, an example message, and the nodes/VMs they are about."""
    groups: dict[str, dict[str, Any]] = {}
    for warning in run.warnings:
        group = groups.setdefault(
            warning["code"],
            {"code": warning["code"], "count": 0, "message": warning["message"], "affected": []},
        )
        group["count"] += 1
        context = warning.get("context") or {}
        label = ", ".join(f"{k} {context[k]}" for k in AFFECTED_KEYS if context.get(k) not in (None, ""))
        if label and label not in group["affected"]:
            group["affected"].append(label)
    return sorted(groups.values(), key=lambda g: (-g["count"], g["code"]))


@router.get("/runs/{run_id}", response_class=HTMLResponse)
def run_detail(request: Request, run_id: str, _: Viewer) -> Response:
    run = ledger_of(request).get_run(run_id)
    return render(
        request,
        "run.html",
        {"run": run, "warning_groups": group_warnings(run), "section": "runs"},
    )


@router.post("/runs/{run_id}/confirm")
def confirm_run(request: Request, run_id: str, principal: Admin) -> Response:
    run = ledger_of(request).confirm_run(run_id, confirmed_by=principal.user.username)
    return RedirectResponse(f"/runs/{run.id}?done=run_confirmed", status_code=303)


# ------------------------------------------------------------------------------------------------- assets


@router.get("/assets", response_class=HTMLResponse)
def assets(  # noqa: PLR0917  (FastAPI takes query parameters as arguments)
    request: Request,
    _: Viewer,
    kind: str = "",
    status: str = "",
    source: str = "",
    power_state: str = "",
    guest_type: str = "",
    tag: str = "",
    q: str = "",
    cursor: str = "",
    exact_total: bool = False,
) -> Response:
    filters = {
        "kind": kind,
        "status": status,
        "source": source,
        "power_state": power_state,
        "guest_type": guest_type,
        "tag": tag,
        "q": q,
    }
    filt = AssetFilter(**{k: (v or None) for k, v in filters.items()})
    engine = engine_of(request)
    page = search_assets(engine, filt, limit=50, cursor=cursor or None, exact_total=exact_total)
    active = {k: v for k, v in filters.items() if v}
    return render(
        request,
        "assets.html",
        {
            "page": page,
            "f": filters,
            "sources": ledger_of(request).list_sources(),
            "tags": all_tags(engine),
            "power_states": POWER_STATES,
            "next_url": f"/assets?{urlencode({**active, 'cursor': page.next_cursor})}"
            if page.next_cursor
            else None,
            "first_url": f"/assets?{urlencode(active)}" if cursor else None,
            "count_all_url": f"/assets?{urlencode({**active, 'exact_total': 1})}"
            if page.total_capped and not cursor
            else None,
            "section": "assets",
        },
    )


def _pretty(data: bytes) -> str:
    return json.dumps(json.loads(data), indent=2, sort_keys=True, ensure_ascii=False)


@router.get("/assets/{asset_id}", response_class=HTMLResponse)
def asset_detail(request: Request, asset_id: str, _: Viewer, older: str = "", newer: str = "") -> Response:
    detail = ledger_of(request).get_asset(asset_id, history_limit=50)
    versions = {v.sha256: v for v in detail.raw_history}
    diff: list[tuple[str, str]] | None = None
    if older and newer:
        if older not in versions or newer not in versions:
            raise LedgerError("REQUEST_INVALID", "pick two raw payload versions of this asset to compare")
        diff = []
        for line in difflib.unified_diff(
            _pretty(versions[older].data).splitlines(),
            _pretty(versions[newer].data).splitlines(),
            fromfile=f"raw {older[:12]}",
            tofile=f"raw {newer[:12]}",
            lineterm="",
            n=3,
        ):
            kind = "add" if line.startswith("+") else "del" if line.startswith("-") else "same"
            diff.append((kind, line))
    return render(
        request,
        "asset.html",
        {
            "a": detail.asset,
            "relations": detail.relations,
            "history": [(v, _pretty(v.data)) for v in detail.raw_history],
            "diff": diff,
            "older": older,
            "newer": newer,
            "section": "assets",
        },
    )


@router.get("/topology", response_class=HTMLResponse)
def topology_page(request: Request, _: Viewer, source: str = "") -> Response:
    return render(
        request,
        "topology.html",
        {
            "roots": topology(engine_of(request), source_name=source or None),
            "sources": ledger_of(request).list_sources(),
            "source": source,
            "section": "topology",
        },
    )
