"""``/healthz`` (open: a load balancer's probe) and ``/metrics`` (Prometheus text; an API token, or open
when ``ASSET_LEDGER_METRICS_PUBLIC=1``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, SummaryMetricFamily
from sqlalchemy.engine import Engine

from asset_ledger.api.auth import Viewer, engine_of, principal_of
from asset_ledger.api.errors import ERROR_RESPONSES
from asset_ledger.collectors.pve import metrics as pve_metrics
from asset_ledger.contract import LedgerError
from asset_ledger.core import queue

router = APIRouter(tags=["meta"], responses=ERROR_RESPONSES)


@router.get("/healthz")
def healthz(request: Request) -> dict[str, Any]:
    """Liveness and database reachability; says nothing about the inventory."""
    try:
        queue.ping(engine_of(request))
    except LedgerError as exc:
        return {"status": "degraded", "database": exc.code}
    return {"status": "ok", "database": "ok"}


@router.get("/api/v1/openapi.json", include_in_schema=False)
def openapi_document(request: Request, _: Viewer) -> dict[str, Any]:
    """The OpenAPI document of ``/api/v1``."""
    document: dict[str, Any] = request.app.openapi()
    return document


class _LedgerCollector:
    """Run and asset figures read from the database at scrape time, so every worker's runs count."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Any:
        figures = queue.service_figures(self.engine)
        runs = CounterMetricFamily(
            "asset_ledger_runs", "Runs that ended, by mode and status.", labels=["mode", "status"]
        )
        for (mode, status), count in sorted(figures.finished.items()):
            runs.add_metric([mode, status], count)
        yield runs
        duration = SummaryMetricFamily(
            "asset_ledger_run_duration_seconds", "Duration of ended runs, by mode.", labels=["mode"]
        )
        for mode, (count, total) in sorted(figures.durations.items()):
            duration.add_metric([mode], count_value=count, sum_value=total)
        yield duration
        active = GaugeMetricFamily("asset_ledger_runs_active", "Runs queued or running.", labels=["status"])
        for status, count in sorted(figures.active.items()):
            active.add_metric([status], count)
        yield active
        assets = GaugeMetricFamily(
            "asset_ledger_assets", "Assets in the ledger, by kind and status.", labels=["kind", "status"]
        )
        for (kind, status), count in sorted(figures.assets.items()):
            assets.add_metric([kind, status], count)
        yield assets


@router.get("/metrics", response_class=Response)
def metrics(request: Request) -> Response:
    if not request.app.state.options.metrics_public:
        principal = principal_of(request)
        if principal is None or principal.via != "token":
            raise LedgerError("AUTH_REQUIRED", "/metrics needs 'Authorization: Bearer <API token>'")
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_LedgerCollector(engine_of(request)))
    body = generate_latest(registry) + generate_latest(pve_metrics.REGISTRY)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
