"""Figures 3, 4 and 5: ingest of an XL snapshot, raw retention cost, peak memory of collect + ingest.

XL collects run against pvesim in a child process with no added latency and a short agent delay (the
network is not what these figures measure); each collect + ingest runs in its own process
(``benchmarks.xl_worker``) so its peak RSS is its own.

Retention (figure 4) is measured four ways on one SQLite ledger: the first collect; a second collect of an
unchanged simulator; a third after the volatile counters moved (uptime, cpu, mem, net/disk counters,
node load — what every poll of a real cluster sees); a fourth after that plus 5 % of guests changed.
Stored bytes are what the raw store actually added (new versions as ``zstd-delta`` blobs against the
asset's previous version's full base). For the changed runs it also reports what one full zstd frame per
new blob would have stored (the codec before deltas), what one run-level frame would store (informational),
and the information the churn model puts into one collect: what no exact encoding can go below.
"""

from __future__ import annotations

import copy
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from benchmarks.common import Row, fmt_bytes, fmt_s, median, run_json
from benchmarks.ledger_tools import database, ingest_canned, load, open_ledger, pg_available
from benchmarks.scenarios import (
    Scenario,
    SimProcess,
    choice_information_bits,
    churn_information_bits,
)

INGEST_TARGET_S = 3.0
RSS_TARGET = 300 * 1024 * 1024
UNCHANGED_SHARE = 0.02
CHANGED_SHARE = 0.10


def _worker(sim_json: Path, url: str, data_dir: Path, dump: Path | None = None) -> dict[str, Any]:
    args = [
        "-m",
        "benchmarks.xl_worker",
        "--db",
        url,
        "--data-dir",
        str(data_dir),
        "--sim-json",
        str(sim_json),
    ]
    if dump is not None:
        args += ["--dump", str(dump)]
    result = run_json(args)
    if result["status"] != "succeeded":
        raise RuntimeError(f"XL run {result['status']}: {result['errors']}")
    return result


def retention_analysis(url: str, data_dir: Path, run_ids: list[str]) -> list[dict[str, int]]:
    """Per run after the first, over the blobs the run added (a new raw payload or normalized record of an
    asset): how many were stored as deltas, the bytes actually stored, what one full zstd frame each would
    have stored (the codec before deltas), and what one run-level frame would store beyond the previous
    versions (each new payload right after its previous version; informational)."""
    import zstandard

    from asset_ledger.storage import raw
    from asset_ledger.storage.db import chunks
    from asset_ledger.storage.tables import raw_blob, source_record

    ledger = open_ledger(url, data_dir)
    out: list[dict[str, int]] = []
    compressor = zstandard.ZstdCompressor(level=raw.ZSTD_LEVEL)
    try:
        with ledger.engine.connect() as conn:

            def records(run_id: str) -> dict[str, tuple[str, str]]:
                return {
                    r.asset_id: (r.raw_sha256, r.normalized_sha256)
                    for r in conn.execute(
                        sa.select(
                            source_record.c.asset_id,
                            source_record.c.raw_sha256,
                            source_record.c.normalized_sha256,
                        ).where(source_record.c.run_id == run_id)
                    )
                }

            previous = records(run_ids[0])
            for run_id in run_ids[1:]:
                current = records(run_id)
                pairs_keys: list[tuple[str, str]] = []
                seen: set[str] = set()
                for asset_id, keys in current.items():
                    before = previous.get(asset_id)
                    for index, key in enumerate(keys):
                        if before is None or before[index] == key or key in seen:
                            continue
                        seen.add(key)
                        pairs_keys.append((before[index], key))
                rows = {
                    r.sha256: r
                    for part in chunks(sorted(seen), 5000)
                    for r in conn.execute(
                        sa.select(raw_blob.c.sha256, raw_blob.c.codec, raw_blob.c.size_stored).where(
                            raw_blob.c.sha256.in_(part)
                        )
                    )
                }
                exact = raw.get_many(conn, {k for pair in pairs_keys for k in pair})
                pairs: list[bytes] = []
                olds: list[bytes] = []
                full = stored = deltas = 0
                for old_key, new_key in pairs_keys:
                    full += len(compressor.compress(exact[new_key]))
                    stored += int(rows[new_key].size_stored)
                    deltas += rows[new_key].codec == raw.DELTA_CODEC
                    pairs += [exact[old_key], exact[new_key]]
                    olds += [exact[old_key], exact[old_key]]
                # One frame per run, each new payload right after its previous version: what a run-level
                # batch stores beyond the previous versions.
                batch = 0
                if pairs:
                    batch = max(
                        0,
                        len(compressor.compress(b"".join(pairs))) - len(compressor.compress(b"".join(olds))),
                    )
                out.append(
                    {
                        "changed_blobs": len(pairs_keys),
                        "delta_blobs": deltas,
                        "stored_bytes": stored,
                        "full_frame_bytes": full,
                        "batch_bytes": batch,
                    }
                )
                previous = current
    finally:
        ledger.close()
    return out


def information_floor(snapshot: Path, changed_guests: int) -> dict[str, float]:
    """The churn model's information per collect (``scenarios.churn_information_bits``) for the guests
    running in ``snapshot``, in bytes; for the changed run also the choice of the changed guests."""
    doc = load(snapshot)
    running = sum(
        1
        for a in doc["assets"]
        if a["external_kind"] == "vm"
        and (a["normalized"].get("runtime") or {}).get("power_state") == "running"
    )
    nodes = sum(1 for a in doc["assets"] if a["external_kind"] == "host")
    guests = sum(1 for a in doc["assets"] if a["external_kind"] == "vm")
    bits = churn_information_bits(running, nodes)
    choice = choice_information_bits(guests, changed_guests)
    return {
        "running_guests": running,
        "nodes": nodes,
        "bits_per_running_guest": bits["per_guest"],
        "bits_per_node": bits["per_node"],
        "volatile_bytes": bits["total"] / 8,
        "changed_bytes": (bits["total"] + choice) / 8,
    }


def _without_some_guests(response: dict[str, Any], share: float) -> dict[str, Any]:
    """A copy of ``response`` without ``share`` of its guests (they go missing when it is ingested)."""
    out = copy.deepcopy(response)
    vms = [a for a in out["assets"] if a["external_kind"] == "vm"]
    gone = {(a["external_kind"], a["external_id"]) for a in vms[:: max(1, round(1 / share))]}
    out["assets"] = [a for a in out["assets"] if (a["external_kind"], a["external_id"]) not in gone]
    out["relations"] = [
        r
        for r in out["relations"]
        if (r["from"]["external_kind"], r["from"]["external_id"]) not in gone
        and (r["to"]["external_kind"], r["to"]["external_id"]) not in gone
    ]
    return out


def ingest_timings(
    backend: str, first: Path, second: Path, *, repeat: int, log_progress: Any
) -> dict[str, Any]:
    """Median wall time of ``run_now`` with a canned XL snapshot: into an empty ledger, then a changed
    snapshot (5 % changed, 1 % gone: missing marking) into the ledger holding the first."""
    first_times: list[float] = []
    second_times: list[float] = []
    first_cpu: list[float] = []
    second_cpu: list[float] = []
    summaries: list[Any] = []
    second_doc = _without_some_guests(load(second), 0.01)
    second_text = json.dumps(second_doc)
    first_text = first.read_text("utf-8")
    for i in range(repeat):
        with database(backend) as (url, data_dir):
            ledger = open_ledger(url, data_dir)
            try:
                doc = json.loads(first_text)
                t0, c0 = time.perf_counter(), time.process_time()
                ingest_canned(ledger, "xl", doc)
                first_times.append(time.perf_counter() - t0)
                first_cpu.append(time.process_time() - c0)
                doc = json.loads(second_text)
                t0, c0 = time.perf_counter(), time.process_time()
                run = ingest_canned(ledger, "xl", doc)
                second_times.append(time.perf_counter() - t0)
                second_cpu.append(time.process_time() - c0)
                summaries.append(run.summary)
            finally:
                ledger.close()
        log_progress(
            f"  ingest XL on {backend} run {i + 1}: first {first_times[-1]:.2f} s, "
            f"changed+missing {second_times[-1]:.2f} s"
        )
    return {
        "first_s": median(first_times),
        "second_s": median(second_times),
        "first_cpu_s": median(first_cpu),
        "second_cpu_s": median(second_cpu),
        "first_all_s": first_times,
        "second_all_s": second_times,
        "second_summary": summaries[-1] if summaries else None,
    }


def run(
    scenario: Scenario,
    *,
    repeat: int,
    backends: list[str],
    workdir: Path | None = None,
    log_progress: Any = print,
) -> tuple[list[Row], dict[str, Any]]:
    rows: list[Row] = []
    details: dict[str, Any] = {"scenario": scenario.describe()}
    tmp = Path(tempfile.mkdtemp(prefix="al-bench-xl-")) if workdir is None else workdir
    snap1, snap4 = tmp / "xl-1.json", tmp / "xl-4.json"
    with SimProcess(scenario, latency_ms=0, agent_delay=0.05) as sim:
        sim_json = tmp / "sim.json"
        sim_json.write_text(
            json.dumps({"url": sim.url, "ca_path": sim.ca_path, "credentials": sim.credentials}), "utf-8"
        )
        with database("sqlite") as (url, data_dir):
            log_progress(f"  XL collect 1 ({scenario.guests} guests) + ingest, in a subprocess")
            r1 = _worker(sim_json, url, data_dir, dump=snap1)
            log_progress("  XL collect 2: nothing changed")
            r2 = _worker(sim_json, url, data_dir)
            sim.churn()
            log_progress("  XL collect 3: volatile counters moved")
            r3 = _worker(sim_json, url, data_dir)
            sim.churn()
            changed = sim.change(0.05)
            log_progress(f"  XL collect 4: counters moved and {changed} guests changed")
            r4 = _worker(sim_json, url, data_dir, dump=snap4)
            deltas = retention_analysis(
                url, data_dir, [r1["run_id"], r2["run_id"], r3["run_id"], r4["run_id"]]
            )
    floor = information_floor(snap1, changed)
    runs = {"first": r1, "unchanged": r2, "volatile": r3, "changed_5pct": r4}
    details["runs"] = {
        k: {key: v[key] for key in ("collect_s", "ingest_s", "peak_rss_bytes", "assets", "summary")}
        | {
            "added_blobs": v["added_blobs"],
            "added_raw_bytes": v["added_raw_bytes"],
            "added_stored_bytes": v["added_stored_bytes"],
        }
        for k, v in runs.items()
    }
    details["retention"] = dict(zip(("unchanged", "volatile", "changed_5pct"), deltas, strict=True))
    details["information_floor"] = floor
    base = r1["added_stored_bytes"]
    compression = r1["added_raw_bytes"] / max(1, r1["added_stored_bytes"])
    details["compression_ratio_first"] = compression
    for key, label, limit, floor_bytes in (
        ("unchanged", "second collect, nothing changed", UNCHANGED_SHARE, 0.0),
        ("volatile", "second collect, volatile counters moved", UNCHANGED_SHARE, floor["volatile_bytes"]),
        (
            "changed_5pct",
            "collect with 5 % of guests changed (+ counters)",
            CHANGED_SHARE,
            floor["changed_bytes"],
        ),
    ):
        added = runs[key]["added_stored_bytes"]
        share = added / max(1, base)
        info = details["retention"][key]
        # Blobs a run adds beyond new asset versions (relation payloads) are stored the same either way.
        other = added - info["stored_bytes"]
        full_share = (info["full_frame_bytes"] + other) / max(1, base)
        batch_share = (info["batch_bytes"] + other) / max(1, base)
        floor_share = floor_bytes / max(1, base)
        rows.append(
            Row(
                "4",
                f"raw retention: {label}",
                f"≤ {limit:.0%} of first run",
                f"{fmt_bytes(added)} = {share:.2%} of {fmt_bytes(base)}",
                share / limit,
                share <= limit,
                note=(
                    f"{info['delta_blobs']} of {info['changed_blobs']} new versions stored as deltas; "
                    f"full frames would store {full_share:.2%}; one run-level frame {batch_share:.2%}; "
                    f"information in the moved values {floor_share:.2%}"
                ),
                data={
                    "share": share,
                    "full_frame_share": full_share,
                    "batch_share": batch_share,
                    "floor_share": floor_share,
                    **info,
                },
            )
        )
    rows.append(
        Row(
            "4",
            "raw store, first XL run (stored; compression ratio)",
            "info",
            f"{fmt_bytes(base)} stored of {fmt_bytes(r1['added_raw_bytes'])} canonical JSON; "
            f"{compression:.1f}×",
            None,
            None,
        )
    )
    rows.append(
        Row(
            "5",
            "peak RSS, XL collect + ingest (one process)",
            f"≤ {fmt_bytes(RSS_TARGET)}",
            f"{fmt_bytes(r1['peak_rss_bytes'])}",
            r1["peak_rss_bytes"] / RSS_TARGET,
            r1["peak_rss_bytes"] <= RSS_TARGET,
            note=f"collect {r1['collect_s']:.1f} s, ingest {r1['ingest_s']:.1f} s",
            data={k: v["peak_rss_bytes"] for k, v in runs.items()},
        )
    )
    details["ingest"] = {}
    for backend in backends:
        reason = pg_available() if backend == "postgresql" else None
        if reason is not None:
            rows.append(
                Row("3", f"ingest XL on {backend}", f"≤ {fmt_s(INGEST_TARGET_S)}", "skipped", note=reason)
            )
            details["ingest"][backend] = {"skipped": reason}
            continue
        timing = ingest_timings(backend, snap1, snap4, repeat=repeat, log_progress=log_progress)
        details["ingest"][backend] = timing
        for key, label in (
            ("first_s", "into an empty ledger"),
            ("second_s", "changed snapshot, 1 % missing"),
        ):
            rows.append(
                Row(
                    "3",
                    f"ingest XL on {backend}, {label} (median)",
                    f"≤ {fmt_s(INGEST_TARGET_S)}",
                    f"{fmt_s(timing[key])} (n={repeat})",
                    timing[key] / INGEST_TARGET_S,
                    timing[key] <= INGEST_TARGET_S,
                    note=(
                        f"CPU of the ingesting process {timing[key.replace('_s', '_cpu_s')]:.2f} s; "
                        f"all runs {', '.join(f'{x:.2f}' for x in timing[key.replace('_s', '_all_s')])} s"
                    ),
                )
            )
    details["snapshot_files"] = {"first": str(snap1), "changed": str(snap4)}
    return rows, details
