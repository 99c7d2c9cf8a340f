"""Figures 3, 4 and 5: ingest of an XL snapshot, raw retention cost, peak memory of collect + ingest.

XL collects run against pvesim in a child process with no added latency and a short agent delay (the
network is not what these figures measure); each collect + ingest runs in its own process
(``benchmarks.xl_worker``) so its peak RSS is its own.

Retention (figure 4) is measured four ways on one SQLite ledger: the first collect; a second collect of an
unchanged simulator; a third after the volatile counters moved (uptime, cpu, mem, net/disk counters,
node load — what every poll of a real cluster sees); a fourth after that plus 5 % of guests changed.
For the changed runs it also measures what delta encoding would store (each new payload compressed with
zstd against the same asset's previous payload as dictionary — the exact bytes stay recoverable).
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
from benchmarks.scenarios import Scenario, SimProcess

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


def delta_analysis(url: str, data_dir: Path, run_ids: list[str]) -> list[dict[str, int]]:
    """Per run after the first: bytes of the payloads that changed, stored as today and as zstd deltas
    against the asset's previous payload."""
    import zstandard

    from asset_ledger.storage import raw
    from asset_ledger.storage.tables import raw_blob, source_record

    ledger = open_ledger(url, data_dir)
    out: list[dict[str, int]] = []
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

            def blob(key: str) -> tuple[bytes, int]:
                row = conn.execute(
                    sa.select(raw_blob.c.codec, raw_blob.c.data, raw_blob.c.size_stored).where(
                        raw_blob.c.sha256 == key
                    )
                ).one()
                return raw.decode(row.codec, row.data), int(row.size_stored)

            previous = records(run_ids[0])
            for run_id in run_ids[1:]:
                current = records(run_id)
                changed = stored = delta = 0
                seen: set[str] = set()
                pairs: list[bytes] = []
                olds: list[bytes] = []
                for asset_id, keys in current.items():
                    before = previous.get(asset_id)
                    for index, key in enumerate(keys):
                        if before is None or before[index] == key or key in seen:
                            continue
                        seen.add(key)
                        new, size_stored = blob(key)
                        old, _ = blob(before[index])
                        dictionary = zstandard.ZstdCompressionDict(
                            old, dict_type=zstandard.DICT_TYPE_RAWCONTENT
                        )
                        packed = zstandard.ZstdCompressor(level=3, dict_data=dictionary).compress(new)
                        changed += 1
                        stored += size_stored
                        delta += len(packed) + 32  # + the base payload's key (SHA-256, binary)
                        pairs += [old, new]
                        olds += [old, old]
                # One frame per run, each new payload right after its previous version: what a run-level
                # batch stores beyond the previous versions (the floor: the counters' own information).
                batch = 0
                if pairs:
                    compressor = zstandard.ZstdCompressor(level=3)
                    batch = max(
                        0,
                        len(compressor.compress(b"".join(pairs))) - len(compressor.compress(b"".join(olds))),
                    )
                out.append(
                    {
                        "changed_blobs": changed,
                        "stored_bytes": stored,
                        "delta_bytes": delta,
                        "batch_bytes": batch,
                    }
                )
                previous = current
    finally:
        ledger.close()
    return out


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
            deltas = delta_analysis(url, data_dir, [r1["run_id"], r2["run_id"], r3["run_id"], r4["run_id"]])
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
    details["delta_encoding"] = dict(zip(("unchanged", "volatile", "changed_5pct"), deltas, strict=True))
    base = r1["added_stored_bytes"]
    compression = r1["added_raw_bytes"] / max(1, r1["added_stored_bytes"])
    details["compression_ratio_first"] = compression
    for key, label, limit in (
        ("unchanged", "second collect, nothing changed", UNCHANGED_SHARE),
        ("volatile", "second collect, volatile counters moved", UNCHANGED_SHARE),
        ("changed_5pct", "collect with 5 % of guests changed (+ counters)", CHANGED_SHARE),
    ):
        share = runs[key]["added_stored_bytes"] / max(1, base)
        delta = details["delta_encoding"][key]
        batch_share = (delta["batch_bytes"] + runs[key]["added_stored_bytes"] - delta["stored_bytes"]) / max(
            1, base
        )
        delta_share = (delta["delta_bytes"] + runs[key]["added_stored_bytes"] - delta["stored_bytes"]) / max(
            1, base
        )
        rows.append(
            Row(
                "4",
                f"raw retention: {label}",
                f"≤ {limit:.0%} of first run",
                f"{fmt_bytes(runs[key]['added_stored_bytes'])} = {share:.2%} of {fmt_bytes(base)}",
                share / limit,
                share <= limit,
                note=(f"delta-encoded per asset: {delta_share:.2%}; one run-level frame: {batch_share:.2%}"),
                data={"share": share, "delta_share": delta_share, "batch_share": batch_share, **delta},
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
