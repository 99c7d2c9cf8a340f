"""Human output for the CLI: aligned tables, key/value blocks, run summaries. Scripts use ``--json``."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import click

from asset_ledger.core import Asset, AssetDetail, Run, Source


def short(identifier: str) -> str:
    return identifier[:8]


def when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value is not None else "-"


def size(count: int) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{count} B"


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [["-" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return "\n".join(lines)


def as_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def sources_table(sources: Sequence[Source]) -> str:
    return table(
        ["NAME", "TYPE", "ENABLED", "CREDENTIAL", "ENDPOINT", "UPDATED"],
        (
            [
                s.name,
                s.source_type,
                "yes" if s.enabled else "no",
                "set" if s.credential_set else "missing",
                s.config.get("endpoint"),
                when(s.updated_at),
            ]
            for s in sources
        ),
    )


def source_block(s: Source) -> str:
    credential = f"set (updated {when(s.credential_updated_at)})" if s.credential_set else "not set"
    guard = "default" if s.missing_guard_share is None else f"{s.missing_guard_share:.0%}"
    schedule = "manual only" if s.schedule_interval_s is None else f"every {s.schedule_interval_s} s"
    lines = [
        f"name:        {s.name}",
        f"id:          {s.id}",
        f"type:        {s.source_type}",
        f"enabled:     {'yes' if s.enabled else 'no'}",
        f"credential:  {credential}",
        f"schedule:    {schedule}",
        f"guard share: {guard}",
        f"created:     {when(s.created_at)}",
        f"updated:     {when(s.updated_at)}",
        "config:",
        *("  " + line for line in as_json(s.config).splitlines()),
    ]
    return "\n".join(lines)


def runs_table(runs: Sequence[Run]) -> str:
    return table(
        ["ID", "SOURCE", "MODE", "STATUS", "TRIGGER", "CREATED", "DURATION", "ERRORS"],
        (
            [
                short(r.id),
                r.source_name,
                r.mode,
                r.status,
                r.trigger,
                when(r.created_at),
                f"{r.duration_s:.1f} s" if r.duration_s is not None else "-",
                ",".join(e["code"] for e in r.errors) or "-",
            ]
            for r in runs
        ),
    )


def run_summary(r: Run) -> str:
    duration = f" in {r.duration_s:.1f} s" if r.duration_s is not None else ""
    version = f" (collector {r.collector_version})" if r.collector_version else ""
    lines = [f"run {r.id}: {r.mode} of {r.source_name} {r.status}{duration}{version}"]
    if r.detect:
        caps = ", ".join(f"{k}={v}" for k, v in sorted((r.detect.get("capabilities") or {}).items()))
        lines.append(
            f"  detect: version {r.detect.get('target_version') or '?'}, driver {r.detect.get('driver')}, "
            f"recommended scope {r.detect.get('recommended_scope') or '-'}"
        )
        if caps:
            lines.append(f"  capabilities: {caps}")
    summary = r.summary or {}
    if "assets" in summary:
        lines.append(
            f"  assets: {summary['assets']} (added {summary['added']}, changed {summary['changed']}, "
            f"refreshed {summary.get('refreshed', 0)} (only uptime or counters moved), "
            f"reappeared {summary['reappeared']}, unchanged {summary['unchanged']}, "
            f"went missing {summary['went_missing']})"
        )
        lines.append(
            f"  relations: {summary['relations']} (added {summary['relations_added']}, "
            f"went missing {summary['relations_went_missing']})"
        )
        lines.append(
            f"  raw store: {summary['raw_blobs_added']} new blob(s), {size(summary['raw_bytes_added'])} "
            f"({summary.get('raw_deltas_added', 0)} stored as deltas)"
        )
    if r.confirmed_by:
        lines.append(f"  confirmed by {r.confirmed_by} at {when(r.confirmed_at)}")
    if r.stats and "counts" in r.stats:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(r.stats["counts"].items()))
        lines.append(f"  collector counts: {counts}")
    for warning in r.warnings:
        lines.append(f"  warning {warning['code']}: {warning['message']}")
    for error in r.errors:
        lines.append(f"  error {error['code']}: {error['message']}")
        if error.get("suggested_action"):
            lines.append(f"    action: {error['suggested_action']}")
    if r.status == "held":
        lines.append(f"  to apply it anyway: asset-ledger runs confirm {r.id}")
    return "\n".join(lines)


def assets_table(assets: Sequence[Asset]) -> str:
    return table(
        ["ID", "SOURCE", "KIND", "EXTERNAL ID", "NAME", "STATUS", "POWER", "LAST SEEN"],
        (
            [
                short(a.id),
                a.source_name,
                a.external_kind,
                a.external_id,
                a.display_name,
                a.status,
                a.power_state,
                when(a.last_seen_at),
            ]
            for a in assets
        ),
    )


def asset_block(detail: AssetDetail, *, all_raw: bool) -> str:
    a = detail.asset
    lines = [
        f"{a.external_kind} {a.display_name}  ({a.status})",
        f"id:           {a.id}",
        f"source:       {a.source_name}",
        f"external id:  {a.external_id}",
        f"first seen:   {when(a.first_seen_at)} (run {short(a.first_seen_run_id)})",
        f"last seen:    {when(a.last_seen_at)} (run {short(a.last_seen_run_id)})",
    ]
    if a.missing_since is not None:
        lines.append(f"missing since: {when(a.missing_since)}")
    lines.append("normalized:")
    lines.extend("  " + line for line in as_json(a.normalized).splitlines())
    lines.append("relations:")
    if not detail.relations:
        lines.append("  (none)")
    for rel in detail.relations:
        arrow = "->" if rel.direction == "out" else "<-"
        lines.append(
            f"  {rel.type} {arrow} {rel.other_kind} {rel.other_name} ({short(rel.other_id)}) {rel.status}"
        )
    lines.append("raw payload history (newest first):")
    for index, version in enumerate(detail.raw_history):
        lines.append(
            f"  {version.sha256[:16]}  {size(version.size_raw)}  seen by {version.runs} run(s) "
            f"{when(version.first_seen_at)} .. {when(version.last_seen_at)}"
        )
        if index == 0 or all_raw:
            lines.extend("    " + line for line in as_json(json.loads(version.data)).splitlines())
    return "\n".join(lines)


def echo_err(text: str) -> None:
    click.echo(text, err=True)
