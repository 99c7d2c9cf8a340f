"""How fast pvesim is at scale: generation, start-up, /cluster/resources at 10k guests, per-guest throughput.

Usage: ``python benchmarks/pvesim_scale.py [--smoke] [--nodes 16] [--guests 10000] [--clients 8]``.
Prints a table; nothing is asserted (timings depend on the machine).
"""

from __future__ import annotations

import argparse
import random
import ssl
import statistics
import time
from concurrent.futures import ProcessPoolExecutor

import httpx

from pvesim import SimServer, Topology


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))
    return ordered[index]


def _client_worker(job: tuple[str, str, dict[str, str], list[str]]) -> int:
    """One client process: its own keep-alive connection, requests one after another."""
    base, ca_path, headers, paths = job
    context = ssl.create_default_context(cafile=ca_path)
    with httpx.Client(base_url=base, verify=context, headers=headers, timeout=60) as client:
        for path in paths:
            client.get(path).raise_for_status()
    return len(paths)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, a few seconds")
    parser.add_argument("--profile", default="8.4")
    parser.add_argument("--nodes", type=int, default=16)
    parser.add_argument("--guests", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients for the per-guest test")
    parser.add_argument("--resources-requests", type=int, default=50)
    parser.add_argument("--guest-requests", type=int, default=3000)
    parser.add_argument("--overhead-requests", type=int, default=1000)
    args = parser.parse_args()
    if args.smoke:
        args.nodes, args.guests = 3, 60
        args.resources_requests, args.guest_requests, args.overhead_requests = 10, 200, 100

    rows: list[tuple[str, str]] = []
    qemu = args.guests * 7 // 10
    start = time.perf_counter()
    topo = Topology.generate(seed=1, nodes=args.nodes, qemu=qemu, lxc=args.guests - qemu)
    rows.append(
        (
            f"topology generation ({args.nodes} nodes, {args.guests} guests)",
            f"{(time.perf_counter() - start) * 1000:.0f} ms",
        )
    )

    start = time.perf_counter()
    server = SimServer(profile=args.profile, topology=topo, latency_ms=0)
    server.start()
    rows.append(("server start (certificate + bind)", f"{(time.perf_counter() - start) * 1000:.0f} ms"))
    try:
        cred = server.credentials("reader")
        headers = {"Authorization": f"PVEAPIToken={cred['api_token_id']}={cred['api_token_secret']}"}
        context = ssl.create_default_context(cafile=server.ca_path)
        with httpx.Client(base_url=server.api_url, verify=context, headers=headers, timeout=60) as client:
            t0 = time.perf_counter()
            first = client.get("/cluster/resources")
            first_ms = (time.perf_counter() - t0) * 1000
            entries = len(first.json()["data"])
            rows.append(
                (
                    f"/cluster/resources first (uncached, {entries} entries, {len(first.content)} B, "
                    f"{first.headers.get('content-length', '?')} B on the wire)",
                    f"{first_ms:.1f} ms",
                )
            )
            samples = []
            for _ in range(args.resources_requests):
                t0 = time.perf_counter()
                response = client.get("/cluster/resources")
                response.read()
                samples.append((time.perf_counter() - t0) * 1000)
            rows.append(("/cluster/resources median (cached)", f"{statistics.median(samples):.1f} ms"))
            rows.append(("/cluster/resources p95 (cached)", f"{percentile(samples, 95):.1f} ms"))

            t0 = time.perf_counter()
            topo.touch()
            client.get("/cluster/resources")
            rows.append(
                (
                    "/cluster/resources after a mutation (re-render)",
                    f"{(time.perf_counter() - t0) * 1000:.1f} ms",
                )
            )

            overhead = []
            for _ in range(args.overhead_requests):
                t0 = time.perf_counter()
                client.get("/version")
                overhead.append((time.perf_counter() - t0) * 1000)
            rows.append(
                (
                    "per-request overhead median (GET /version, keep-alive)",
                    f"{statistics.median(overhead):.2f} ms",
                )
            )

        guests = list(topo.guests.values())
        rng = random.Random(1)
        per_client = args.guest_requests // args.clients
        jobs = [
            [f"/nodes/{g.node}/{g.kind}/{g.vmid}/config" for g in rng.choices(guests, k=per_client)]
            for _ in range(args.clients)
        ]
        server.reset_stats()
        t0 = time.perf_counter()
        with ProcessPoolExecutor(max_workers=args.clients) as pool:
            done = sum(
                pool.map(_client_worker, [(server.api_url, server.ca_path, headers, job) for job in jobs])
            )
        rps = done / (time.perf_counter() - t0)
        rows.append((f"per-guest GET …/config, {args.clients} client processes", f"{rps:.0f} req/s"))
        stats = server.stats()
        rows.append(("requests served / max in flight", f"{stats['requests']} / {stats['max_in_flight']}"))
    finally:
        server.stop()

    width = max(len(name) for name, _ in rows)
    print(f"pvesim scale benchmark (profile {args.profile})")
    print("-" * (width + 16))
    for name, value in rows:
        print(f"{name:<{width}}  {value:>12}")


if __name__ == "__main__":
    main()
