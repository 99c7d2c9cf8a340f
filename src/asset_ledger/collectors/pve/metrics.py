"""Prometheus metrics of the pve collector, in a registry of their own that an API can expose.

Nothing here talks to PVE; the collector and its client update these as runs happen.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

#: The registry holding every pve collector metric (expose it with ``prometheus_client.generate_latest``).
REGISTRY = CollectorRegistry(auto_describe=True)

COLLECT_SUCCESS_RATE = Gauge(
    "pve_collect_success_rate",
    "Share of pve collect runs of this source that succeeded (since the process started).",
    ["source_id"],
    registry=REGISTRY,
)
RATE_LIMIT_COUNT = Counter(
    "pve_rate_limit_count",
    "Times PVE (or a proxy in front of it) answered 429/503.",
    ["source_id"],
    registry=REGISTRY,
)
GUEST_AGENT_UNAVAILABLE_RATE = Gauge(
    "pve_guest_agent_unavailable_rate",
    "Share of running QEMU VMs of the last collect whose guest agent could not be read.",
    ["source_id"],
    registry=REGISTRY,
)

_collect_runs: dict[str, list[int]] = {}


def record_collect(source_id: str, *, success: bool) -> float:
    """Count one collect run and update ``pve_collect_success_rate``; returns the new rate."""
    ok_total = _collect_runs.setdefault(source_id, [0, 0])
    ok_total[0] += int(success)
    ok_total[1] += 1
    rate = ok_total[0] / ok_total[1]
    COLLECT_SUCCESS_RATE.labels(source_id=source_id).set(rate)
    return rate


def record_agent_availability(source_id: str, *, queried: int, unavailable: int) -> float:
    """Set ``pve_guest_agent_unavailable_rate`` from one run; returns the rate (0 when nothing was asked)."""
    rate = unavailable / queried if queried else 0.0
    GUEST_AGENT_UNAVAILABLE_RATE.labels(source_id=source_id).set(rate)
    return rate
