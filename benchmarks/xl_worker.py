"""One real collect + ingest (``Ledger.run_now``) in its own process, for figures 4 and 5.

``python -m benchmarks.xl_worker --db URL --data-dir DIR --sim-json FILE [--dump FILE]`` prints one JSON
line: timings, the run summary, the raw store totals and this process's peak RSS (``VmHWM``), read
before the response is dumped for the other benchmarks.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--sim-json", required=True, help="url, ca_path, credentials of the simulator")
    parser.add_argument("--source", default="xl")
    parser.add_argument("--parallel", type=int, default=16)
    parser.add_argument("--dump", default=None)
    args = parser.parse_args()
    logging.disable(logging.WARNING)

    from benchmarks.common import peak_rss_kib
    from benchmarks.ledger_tools import RECORDED, ensure_source, open_ledger, raw_totals

    from asset_ledger import collectors

    sim = json.loads(Path(args.sim_json).read_text("utf-8"))
    collectors.COLLECTORS["pve"] = "benchmarks.ledger_tools:_recording_factory"
    ledger = open_ledger(args.db, Path(args.data_dir))
    config = {
        "endpoint": sim["url"],
        "tls_verify": True,
        "tls_ca_bundle": sim["ca_path"],
        "max_parallel_nodes": args.parallel,
        "timeout_ms": 60000,
    }
    ensure_source(ledger, args.source, config, sim["credentials"])
    before = raw_totals(ledger)
    started = time.perf_counter()
    run = ledger.run_now(args.source, "collect")
    total = time.perf_counter() - started
    peak_kb = peak_rss_kib()
    after = raw_totals(ledger)
    response, collect_s = RECORDED[-1] if RECORDED else ({}, 0.0)
    result = {
        "status": run.status,
        "errors": run.errors[:3],
        "total_s": total,
        "collect_s": collect_s,
        "ingest_s": total - collect_s,
        "peak_rss_bytes": peak_kb * 1024,
        "summary": run.summary,
        "assets": len(response.get("assets", [])),
        "added_blobs": after["blobs"] - before["blobs"],
        "added_raw_bytes": after["raw_bytes"] - before["raw_bytes"],
        "added_stored_bytes": after["stored_bytes"] - before["stored_bytes"],
        "store": after,
        "run_id": run.id,
    }
    if args.dump and response:
        Path(args.dump).write_text(json.dumps(response), "utf-8")
    ledger.close()
    print(json.dumps(result, default=str))


if __name__ == "__main__":
    main()
