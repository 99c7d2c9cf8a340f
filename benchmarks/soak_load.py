"""Soak/load: many simulated PVE sources collected on a schedule by separate worker processes while the
API serves reads (``make soak``; docs/reliability.md has the figures and how to read them).

Starts ``--sources`` pvesim servers of mixed releases (5.x ticket login through 9.x tokens), registers each
as a scheduled ``pve`` source on a fresh ledger (PostgreSQL by default), runs ``--workers`` real
``asset-ledger worker`` processes and one ``asset-ledger serve --no-worker`` process, and reads the API
from ``--readers`` threads for ``--minutes``. Then it stops scheduling, lets the queue drain and checks:

- no run lost: every source was collected about duration / interval times, nothing stays queued/running;
- no run duplicated: at most one run per source at a time (no two runs of a source overlap), no two
  scheduled runs of a source created within less than the interval;
- no deadlock / failure: every run succeeded, no worker round failed, the API never answered 5xx;
- memory flat: the workers' RSS at the end is within ``--rss-growth`` of its value after warm-up.

Prints one JSON document (runs/minute, API p50/p95/max, RSS samples, the checks); exit 1 if a check failed.
Intervals below the product's 60 s minimum (for the smoke size) are written straight into the database.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Literal

import httpx
import sqlalchemy as sa
from sqlalchemy.engine import make_url

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import itertools

from asset_ledger.core import Ledger, Settings, accounts
from pvesim import SimServer, Topology

REPO = Path(__file__).resolve().parent.parent
PROFILES = ["5.4", "6.1", "6.4", "7.2", "7.4", "8.0", "8.2", "8.4", "9.0", "9.1"]
DEFAULT_PG = os.environ.get("ASSET_LEDGER_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def percentile(values: list[float], share: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


class Database:
    """A fresh PostgreSQL database (dropped at the end), or a SQLite file with ``--sqlite``."""

    def __init__(self, args: argparse.Namespace, data_dir: Path) -> None:
        self.admin: sa.Engine | None = None
        if args.sqlite:
            self.url = f"sqlite:///{data_dir / 'ledger.db'}"
            return
        self.admin = sa.create_engine(args.pg_url, isolation_level="AUTOCOMMIT")
        self.name = f"al_soak_{secrets.token_hex(4)}"
        with self.admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{self.name}"')
        self.url = make_url(args.pg_url).set(database=self.name).render_as_string(hide_password=False)

    def drop(self) -> None:
        if self.admin is not None:
            with self.admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
            self.admin.dispose()


def start_servers(count: int, guests: int) -> list[SimServer]:
    servers = []
    for index in range(count):
        profile = PROFILES[index % len(PROFILES)]
        topology = Topology.generate(
            seed=index, nodes=2, qemu=max(1, guests * 2 // 3), lxc=max(1, guests // 3)
        )
        server = SimServer(profile=profile, topology=topology, time_scale=0.01, seed=index)
        server.start()
        servers.append(server)
    return servers


def register(ledger: Ledger, servers: list[SimServer], interval_s: int) -> None:
    for index, server in enumerate(servers):
        tokens = server.profile.name >= "6.2"
        auth: Literal["api_token", "user_password"] = "api_token" if tokens else "user_password"
        name = f"pve-{index:02d}-{server.profile.name}"
        ledger.add_source(
            name,
            "pve",
            {"endpoint": server.url, "tls_ca_bundle": server.ca_path, "auth_type": auth},
            schedule_interval_s=max(60, interval_s),
        )
        ledger.set_credential(name, server.credentials("reader" if tokens else "auditor", auth=auth))
    if interval_s < 60:
        with ledger.engine.begin() as conn:
            conn.execute(sa.text("UPDATE source SET schedule_interval_s = :s"), {"s": interval_s})


def spawn(args: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "asset_ledger.cli", *args], env=env, stdout=out, stderr=subprocess.STDOUT
        )


class Readers:
    """Threads reading the API with an admin token; latencies in seconds, statuses counted."""

    PATHS = ("/api/v1/assets?limit=50", "/api/v1/runs?limit=20", "/api/v1/sources", "/api/v1/topology")

    def __init__(self, base: str, token: str, count: int) -> None:
        self.base, self.token = base, token
        self.latencies: list[float] = []
        self.statuses: dict[int, int] = defaultdict(int)
        self.errors = 0
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.loop, args=(i,), daemon=True) for i in range(count)]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def loop(self, index: int) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        with httpx.Client(base_url=self.base, headers=headers, timeout=30) as client:
            turn = index
            while not self.stop.is_set():
                path = self.PATHS[turn % len(self.PATHS)]
                turn += 1
                started = time.perf_counter()
                try:
                    status = client.get(path).status_code
                except httpx.HTTPError:
                    with self.lock:
                        self.errors += 1
                    time.sleep(0.2)
                    continue
                elapsed = time.perf_counter() - started
                with self.lock:
                    self.latencies.append(elapsed)
                    self.statuses[status] += 1
                self.stop.wait(0.05)

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)


def wait_for_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"the API at {url} did not come up")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def check_runs(ledger: Ledger, interval_s: int, duration_s: float) -> dict[str, Any]:
    with ledger.engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT r.id, s.name, r.status, r.trigger, r.created_at, r.started_at, r.finished_at, "
                "r.errors FROM run r JOIN source s ON s.id = r.source_id ORDER BY s.name, r.created_at"
            )
        ).all()
    by_source: dict[str, list[Any]] = defaultdict(list)
    for row in rows:
        by_source[row.name].append(row)
    statuses: dict[str, int] = defaultdict(int)
    problems: list[str] = []
    lateness: list[float] = []
    for name, runs in by_source.items():
        for run in runs:
            statuses[run.status] += 1
            if run.status != "succeeded":
                codes = [e.get("code") for e in (run.errors or [])]
                problems.append(f"{name}: run {run.id} {run.status} {codes}")
        for before, after in itertools.pairwise(runs):
            if (
                before.finished_at is None
                or after.started_at is None
                or after.started_at < before.finished_at
            ):
                problems.append(f"{name}: runs {before.id} and {after.id} overlap")
            gap = (after.created_at - before.created_at).total_seconds()
            lateness.append(gap - interval_s)
            if gap < interval_s * 0.9:
                problems.append(
                    f"{name}: scheduled runs {gap:.1f} s apart (interval {interval_s} s): duplicated"
                )
            if gap > 2 * interval_s + 5:
                problems.append(
                    f"{name}: scheduled runs {gap:.1f} s apart (interval {interval_s} s): one lost"
                )
        # The first collect at once, then one per interval (plus however late the workers get to it).
        if len(runs) < 1 + int(duration_s // (2 * interval_s)):
            problems.append(
                f"{name}: only {len(runs)} runs in {duration_s:.0f} s with interval {interval_s} s"
            )
    return {
        "runs": len(rows),
        "by_status": dict(statuses),
        "sources_run": len(by_source),
        "schedule_lateness_s": {
            "median": round(statistics.median(lateness), 2) if lateness else None,
            "max": round(max(lateness), 2) if lateness else None,
        },
        "problems": problems,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--readers", type=int, default=2)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--interval", type=int, default=60, help="schedule interval per source, seconds")
    parser.add_argument("--guests", type=int, default=12, help="guests per simulated cluster (2 nodes)")
    parser.add_argument("--pg-url", default=DEFAULT_PG)
    parser.add_argument("--sqlite", action="store_true", help="use a SQLite file instead of PostgreSQL")
    parser.add_argument(
        "--rss-growth", type=float, default=0.25, help="allowed worker RSS growth after warm-up"
    )
    parser.add_argument("--smoke", action="store_true", help="3 sources, 20 s, 6 s interval")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON result here")
    args = parser.parse_args(argv)
    if args.smoke:
        args.sources, args.minutes, args.interval, args.guests, args.readers = 3, 1 / 3, 6, 4, 1

    work = Path(tempfile.mkdtemp(prefix="al-soak-"))
    data_dir = work / "data"
    db = Database(args, data_dir)
    servers: list[SimServer] = []
    processes: list[subprocess.Popen[bytes]] = []
    result: dict[str, Any] = {}
    try:
        settings = Settings(data_dir=data_dir, database_url=db.url)
        with Ledger(settings) as ledger:
            ledger.init()
            log(f"soak: starting {args.sources} simulated PVE servers")
            servers = start_servers(args.sources, args.guests)
            admin = accounts.create_user(ledger.engine, "soak", "soak-password-1", "admin")
            token, _ = accounts.create_token(ledger.engine, admin.id, "soak reader")
            env = {
                **os.environ,
                "PYTHONPATH": str(REPO / "src") + os.pathsep + str(REPO),
                "ASSET_LEDGER_DATA_DIR": str(data_dir),
                "ASSET_LEDGER_DATABASE_URL": db.url,
                "ASSET_LEDGER_WORKER_POLL_S": "0.5",
                "ASSET_LEDGER_COOKIE_SECURE": "0",
            }
            port = free_port()
            base = f"http://127.0.0.1:{port}"
            processes.append(spawn(["serve", "--no-worker", "--port", str(port)], env, work / "serve.log"))
            wait_for_http(base)
            readers = Readers(base, token, args.readers)
            readers.start()
            register(ledger, servers, args.interval)
            started = time.monotonic()
            workers = [spawn(["worker"], env, work / f"worker-{i}.log") for i in range(args.workers)]
            processes.extend(workers)
            duration = args.minutes * 60
            samples: list[dict[str, Any]] = []
            while (elapsed := time.monotonic() - started) < duration:
                time.sleep(min(5.0, max(0.5, duration / 20)))
                samples.append(
                    {"t": round(elapsed, 1), "rss_mib": [round(rss_mib(w.pid) or 0, 1) for w in workers]}
                )
                for worker in workers:
                    if worker.poll() is not None:
                        raise RuntimeError(f"worker {worker.pid} exited with {worker.returncode}")
            # Stop scheduling, let the queue drain.
            with ledger.engine.begin() as conn:
                conn.execute(sa.text("UPDATE source SET schedule_interval_s = NULL"))
            drain_deadline = time.monotonic() + 120
            while time.monotonic() < drain_deadline:
                with ledger.engine.connect() as conn:
                    active = conn.execute(
                        sa.text("SELECT count(*) FROM run WHERE status IN ('queued', 'running')")
                    ).scalar()
                if not active:
                    break
                time.sleep(0.5)
            readers.finish()
            for worker in workers:
                worker.send_signal(signal.SIGTERM)
            for worker in workers:
                worker.wait(timeout=120)
            checks = check_runs(ledger, args.interval, duration)
            if checks["sources_run"] != args.sources:
                checks["problems"].append(
                    f"only {checks['sources_run']} of {args.sources} sources were collected"
                )
            round_failures = sum(
                (work / f"worker-{i}.log").read_text(errors="replace").count("worker.round_failed")
                for i in range(args.workers)
            )
            if round_failures:
                checks["problems"].append(f"{round_failures} worker rounds failed (see worker logs)")
            server_errors = sum(n for s, n in readers.statuses.items() if s >= 500)
            if server_errors:
                checks["problems"].append(f"the API answered 5xx {server_errors} times")
            if readers.errors:
                checks["problems"].append(f"{readers.errors} API reads failed at the transport level")
            warm = [s for s in samples if s["t"] >= duration * 0.3]
            rss_start = [max(v, 1.0) for v in warm[0]["rss_mib"]] if warm else []
            rss_end = warm[-1]["rss_mib"] if warm else []
            growth = [e / s - 1 for s, e in zip(rss_start, rss_end, strict=True)]
            if any(g > args.rss_growth for g in growth):
                checks["problems"].append(f"worker RSS grew by {max(growth):.0%} after warm-up")
            minutes = duration / 60
            latencies_ms = [1000 * x for x in readers.latencies]
            result = {
                "sources": args.sources,
                "profiles": sorted({s.profile.name for s in servers}),
                "guests_per_source": args.guests,
                "workers": args.workers,
                "readers": args.readers,
                "database": "sqlite" if args.sqlite else "postgresql",
                "minutes": round(minutes, 2),
                "interval_s": args.interval,
                "runs": checks["runs"],
                "runs_per_minute": round(checks["runs"] / minutes, 1),
                "runs_by_status": checks["by_status"],
                "sources_collected": checks["sources_run"],
                "schedule_lateness_s": checks["schedule_lateness_s"],
                "api_reads": len(latencies_ms),
                "api_statuses": {str(k): v for k, v in sorted(readers.statuses.items())},
                "api_p50_ms": round(statistics.median(latencies_ms), 1) if latencies_ms else None,
                "api_p95_ms": round(percentile(latencies_ms, 0.95), 1),
                "api_max_ms": round(max(latencies_ms, default=0.0), 1),
                "worker_rss_mib_after_warmup": rss_start,
                "worker_rss_mib_end": rss_end,
                "worker_rss_mib_max": [max(s["rss_mib"][i] for s in samples) for i in range(args.workers)]
                if samples
                else [],
                "problems": checks["problems"],
                "ok": not checks["problems"],
            }
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
        for server in servers:
            server.stop()
        db.drop()
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    return 0 if result.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main())
