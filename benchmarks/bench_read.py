"""Figure 6: reading a ledger of 100,000 assets through the real HTTP API.

The ledger is seeded through the core's own ingest (``Ledger.run_now`` with a canned XL snapshot, once per
source, ten sources); the service runs under uvicorn on a free 127.0.0.1 port in its own process; requests
go over HTTP with an API token, one after another, and each answer is read completely.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
from benchmarks.common import PYTHON, ROOT, Row, fmt_ms, free_port, median, percentile
from benchmarks.ledger_tools import database, ingest_canned, open_ledger, pg_available

P95_TARGET_S = 0.100

#: Filtered list queries a user of the asset page makes (one page of 50 each).
LIST_QUERIES = [
    "kind=vm&status=present&limit=50",
    "kind=vm&status=present&guest_type=lxc&limit=50",
    "kind=vm&power_state=running&tag=prod&limit=50",
    "q=web-1&limit=50",
    "kind=host&limit=50",
]


def seed(ledger: Any, snapshot_text: str, assets: int, log_progress: Any) -> int:
    """Ingest the snapshot under as many sources as it takes to hold ``assets`` assets."""
    per = len(json.loads(snapshot_text)["assets"])
    sources = max(1, -(-assets // per))
    for i in range(sources):
        t0 = time.perf_counter()
        ingest_canned(ledger, f"site-{i + 1:02d}", json.loads(snapshot_text))
        log_progress(
            f"    seeded source {i + 1}/{sources} ({per} assets) in {time.perf_counter() - t0:.1f} s"
        )
    return per * sources


def _serve(url: str, data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        "ASSET_LEDGER_DATABASE_URL": url,
        "ASSET_LEDGER_DATA_DIR": str(data_dir),
        "ASSET_LEDGER_EMBEDDED_WORKER": "0",
    }
    return subprocess.Popen(
        [
            PYTHON,
            "-m",
            "uvicorn",
            "--factory",
            "asset_ledger.api.app:create_app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _wait(client: httpx.Client, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"uvicorn exited: {proc.stderr.read().decode()[-2000:] if proc.stderr else ''}"
            )
        try:
            if client.get("/healthz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError("the service did not answer /healthz within 60 s")


def _timed(client: httpx.Client, path: str) -> tuple[float, httpx.Response]:
    t0 = time.perf_counter()
    response = client.get(path)
    response.read()
    elapsed = time.perf_counter() - t0
    response.raise_for_status()
    return elapsed, response


def measure(url: str, data_dir: Path, *, samples: int, log_progress: Any) -> dict[str, Any]:
    from asset_ledger.core import accounts

    ledger = open_ledger(url, data_dir)
    try:
        user = accounts.create_user(ledger.engine, "bench", "bench-password-123", "viewer")
        secret, _ = accounts.create_token(ledger.engine, user.id, "bench")
    finally:
        ledger.close()
    port = free_port()
    proc = _serve(url, data_dir, port)
    lists: dict[str, list[float]] = {q: [] for q in LIST_QUERIES}
    pages: list[float] = []
    details: list[float] = []
    try:
        headers = {"Authorization": f"Bearer {secret}"}
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=60) as client:
            _wait(client, proc)
            ids: list[str] = []
            for query in LIST_QUERIES:  # warm-up, and asset ids for the detail requests
                _, response = _timed(client, f"/api/v1/assets?{query}")
                ids += [item["id"] for item in response.json()["items"]]
            _, response = _timed(client, "/api/v1/assets?kind=vm&limit=500")
            ids += [item["id"] for item in response.json()["items"]]
            rng = random.Random(6)
            for i in range(samples):
                query = LIST_QUERIES[i % len(LIST_QUERIES)]
                elapsed, response = _timed(client, f"/api/v1/assets?{query}")
                lists[query].append(elapsed)
                cursor = response.json().get("next_cursor")
                if cursor:
                    elapsed, _ = _timed(client, f"/api/v1/assets?{query}&cursor={cursor}")
                    pages.append(elapsed)
                elapsed, _ = _timed(client, f"/api/v1/assets/{rng.choice(ids)}")
                details.append(elapsed)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
    all_lists = [x for values in lists.values() for x in values] + pages
    return {
        "list_p95_s": percentile(all_lists, 95),
        "list_median_s": median(all_lists),
        "detail_p95_s": percentile(details, 95),
        "detail_median_s": median(details),
        "by_query_p95_s": {q: percentile(v, 95) for q, v in lists.items()},
        "next_page_p95_s": percentile(pages, 95),
        "samples": len(all_lists) + len(details),
    }


def run(
    snapshot: Path, *, assets: int, backends: list[str], samples: int, log_progress: Any = print
) -> tuple[list[Row], dict[str, Any]]:
    rows: list[Row] = []
    details: dict[str, Any] = {}
    text = snapshot.read_text("utf-8")
    for backend in backends:
        reason = pg_available() if backend == "postgresql" else None
        if reason is not None:
            for what in ("filtered asset list", "asset detail"):
                rows.append(
                    Row("6", f"{what} on {backend}", f"p95 ≤ {fmt_ms(P95_TARGET_S)}", "skipped", note=reason)
                )
            details[backend] = {"skipped": reason}
            continue
        with database(backend) as (url, data_dir):
            log_progress(f"  seeding {assets} assets on {backend}")
            ledger = open_ledger(url, data_dir)
            try:
                t0 = time.perf_counter()
                seeded = seed(ledger, text, assets, log_progress)
                seed_s = time.perf_counter() - t0
            finally:
                ledger.close()
            result = measure(url, data_dir, samples=samples, log_progress=log_progress)
            result["assets"] = seeded
            result["seed_s"] = seed_s
            details[backend] = result
            log_progress(
                f"  {backend}: list p95 {result['list_p95_s'] * 1000:.1f} ms, "
                f"detail p95 {result['detail_p95_s'] * 1000:.1f} ms"
            )
            for key, what in (
                ("list_p95_s", "filtered asset list, page of 50"),
                ("detail_p95_s", "asset detail"),
            ):
                rows.append(
                    Row(
                        "6",
                        f"{what} on {backend}, {seeded:,} assets (p95)",
                        f"≤ {fmt_ms(P95_TARGET_S)}",
                        fmt_ms(result[key]),
                        result[key] / P95_TARGET_S,
                        result[key] <= P95_TARGET_S,
                        note=f"median {fmt_ms(result[key.replace('p95', 'median')])}",
                    )
                )
    return rows, details
