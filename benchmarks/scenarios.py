"""The benchmark scenarios and a pvesim server running in its own process.

The simulator runs in a child process so that its event loop does not share the client's interpreter lock:
what is measured is the collector against a server, as in production, not two programs time-slicing one
Python thread. The parent talks to it over a pipe (stats, request log, volatile-counter churn, changes).
"""

from __future__ import annotations

import math
import multiprocessing as mp
import random
import resource
from dataclasses import dataclass
from typing import Any

PROFILE = "8.4"
LATENCY_MS = 20.0
WORKERS = 3


@dataclass(frozen=True)
class Scenario:
    """Issue 6: per 300 guests, 200 QEMU (150 running; 120 with the agent: 100 answer, 15 not running,
    5 time out) and 100 LXC (80 running)."""

    name: str
    nodes: int
    guests: int
    seed: int = 1

    @property
    def qemu(self) -> int:
        return self.guests * 2 // 3

    @property
    def lxc(self) -> int:
        return self.guests - self.qemu

    @property
    def agent_not_running(self) -> int:
        return round(self.qemu * 15 / 200)

    @property
    def agent_timeout(self) -> int:
        return round(self.qemu * 5 / 200)

    @property
    def lxc_running(self) -> int:
        return round(self.lxc * 0.8)

    def describe(self) -> str:
        return (
            f"{self.name}: {self.nodes} nodes, {self.guests} guests ({self.qemu} QEMU, "
            f"{round(self.qemu * 0.75)} running, {round(self.qemu * 0.75 * 0.8)} with the agent "
            f"[{self.agent_not_running} not running, {self.agent_timeout} time out]; {self.lxc} LXC, "
            f"{self.lxc_running} running)"
        )


M = Scenario("M", 4, 300)
L = Scenario("L", 16, 4000)
XL = Scenario("XL", 16, 10_000)
SMOKE = Scenario("smoke", 2, 30)
SMOKE_XL = Scenario("smoke-XL", 2, 60)


def build_topology(scenario: Scenario) -> Any:
    from pvesim import Topology

    topo = Topology.generate(
        seed=scenario.seed,
        nodes=scenario.nodes,
        qemu=scenario.qemu,
        lxc=scenario.lxc,
        running_share=0.75,
        agent_share=0.8,
        agent_not_running=scenario.agent_not_running,
        agent_timeout=scenario.agent_timeout,
    )
    # generate() uses one running share for both kinds; LXC runs at 80 %, QEMU at 75 %.
    lxc = sorted((g for g in topo.guests.values() if g.kind == "lxc"), key=lambda g: g.vmid)
    running = sum(1 for g in lxc if g.state == "running")
    for guest in [g for g in lxc if g.state != "running"][: max(0, scenario.lxc_running - running)]:
        topo.set_state(guest.vmid, "running")
    return topo


#: The churn model (what moves between two polls). Named here so that figure 4 can compute the information
#: the moved values carry (``churn_information_bits``) from the same numbers that move them.
COUNTER_STEP = (10**5, 10**9)  #: each of netin/netout/diskread/diskwrite grows by randrange(*COUNTER_STEP)
GUEST_COUNTERS = 4
GUEST_CPU = (0.0, 0.5)  #: guest cpu: uniform in this range, 4 decimals
MEM_DIVISORS = (2, 3, 4)  #: guest mem used: memory / one of these
NODE_CPU = (0.01, 0.6)  #: node cpu: uniform in this range, 4 decimals
NODE_MEM_GIB = (8, 60)  #: node memory used: randrange(*NODE_MEM_GIB) GiB
NODE_LOAD_MAX = 8.0  #: each of the 3 load averages: uniform(0, NODE_LOAD_MAX), 2 decimals


def churn_volatile(topo: Any, rng: random.Random, seconds: int = 3600) -> None:
    """What happens between two polls of a real cluster: uptime grows, CPU and memory use move, traffic
    and disk counters grow on every running guest and node. Nothing an inventory cares about changes."""
    with topo.lock:
        for guest in topo.guests.values():
            if guest.state != "running":
                continue
            guest.uptime += seconds
            guest.cpu_usage = round(rng.uniform(*GUEST_CPU), 4)
            guest.mem_used = guest.memory * 1024 * 1024 // rng.choice(MEM_DIVISORS)
            guest.netin += rng.randrange(*COUNTER_STEP)
            guest.netout += rng.randrange(*COUNTER_STEP)
            guest.diskread += rng.randrange(*COUNTER_STEP)
            guest.diskwrite += rng.randrange(*COUNTER_STEP)
        for node in topo.nodes.values():
            node.uptime += seconds
            node.cpu = round(rng.uniform(*NODE_CPU), 4)
            node.memory_used = rng.randrange(*NODE_MEM_GIB) * 1024**3
            node.loadavg = tuple(f"{rng.uniform(0, NODE_LOAD_MAX):.2f}" for _ in range(3))
    topo.touch()


def churn_information_bits(running_guests: int, nodes: int) -> dict[str, float]:
    """Shannon information of one ``churn_volatile`` step, in bits: what any exact encoding of the new
    payloads must store beyond their previous versions (the uptime step is fixed, so it carries none; a value
    that appears twice in a payload carries its information once)."""
    counter = math.log2(COUNTER_STEP[1] - COUNTER_STEP[0])
    guest_cpu = math.log2((GUEST_CPU[1] - GUEST_CPU[0]) * 10**4 + 1)
    guest_mem = math.log2(len(MEM_DIVISORS))
    per_guest = GUEST_COUNTERS * counter + guest_cpu + guest_mem
    node_cpu = math.log2((NODE_CPU[1] - NODE_CPU[0]) * 10**4 + 1)
    node_mem = math.log2(NODE_MEM_GIB[1] - NODE_MEM_GIB[0])
    node_load = 3 * math.log2(NODE_LOAD_MAX * 100 + 1)
    per_node = node_cpu + node_mem + node_load
    return {
        "per_guest_counter": counter,
        "per_guest_cpu": guest_cpu,
        "per_guest_mem": guest_mem,
        "per_guest": per_guest,
        "per_node": per_node,
        "total": running_guests * per_guest + nodes * per_node,
    }


def choice_information_bits(population: int, picked: int) -> float:
    """Bits to name which ``picked`` of ``population`` guests ``change_guests`` changed (the changes
    themselves follow from the choice)."""
    return (
        math.lgamma(population + 1) - math.lgamma(picked + 1) - math.lgamma(population - picked + 1)
    ) / math.log(2)


def change_guests(topo: Any, rng: random.Random, share: float) -> int:
    """Change what an inventory sees on ``share`` of the guests (memory, cores, name); returns how many."""
    guests = sorted(topo.guests.values(), key=lambda g: g.vmid)
    picked = rng.sample(guests, round(len(guests) * share))
    with topo.lock:
        for guest in picked:
            guest.memory = guest.memory * 2 if guest.memory < 65536 else 1024
            guest.cores = 1 + guest.cores % 8
            if guest.name:
                guest.name = guest.name + "-x"
    topo.touch()
    return len(picked)


def _serve(conn: Any, scenario: Scenario, kwargs: dict[str, Any]) -> None:
    from pvesim import SimServer

    topo = build_topology(scenario)
    rng = random.Random(scenario.seed)
    server = SimServer(profile=PROFILE, topology=topo, **kwargs)
    server.start()
    conn.send(
        {
            "url": server.url,
            "ca_path": server.ca_path,
            "credentials": server.credentials("reader"),
            "guests": len(topo.guests),
            "plan": plan_facts(topo),
        }
    )
    try:
        while True:
            cmd, arg = conn.recv()
            if cmd == "stop":
                break
            if cmd == "stats":
                conn.send(server.stats())
            elif cmd == "log":
                conn.send(
                    [
                        (r.method, r.path, r.template, r.node, r.status, r.start, r.duration, r.protected)
                        for r in server.request_log
                    ]
                )
            elif cmd == "cpu":
                usage = resource.getrusage(resource.RUSAGE_SELF)
                conn.send(usage.ru_utime + usage.ru_stime)
            elif cmd == "reset":
                server.reset_stats()
                conn.send(True)
            elif cmd == "churn":
                churn_volatile(topo, rng)
                conn.send(True)
            elif cmd == "change":
                conn.send(change_guests(topo, rng, float(arg)))
            else:
                conn.send(None)
    finally:
        server.stop()
        conn.send(True)


def plan_facts(topo: Any) -> dict[str, Any]:
    """Per node, what the scenario asks of a collector (for the lower-bound model and the request count)."""
    nodes: dict[str, dict[str, int]] = {}
    for name, node in topo.nodes.items():
        nodes[name] = {
            "online": int(node.online),
            "qemu": 0,
            "lxc": 0,
            "qemu_running": 0,
            "agent_calls": 0,
            "agent_dead": 0,
            "lxc_running": 0,
        }
    for g in topo.guests.values():
        n = nodes[g.node]
        n[g.kind] += 1
        running = g.state == "running"
        if g.kind == "qemu" and running and not g.template:
            n["qemu_running"] += 1
            if g.agent_enabled:
                n["agent_calls"] += 1
                if g.agent_mode in ("not_running", "timeout"):
                    n["agent_dead"] += 1
        if g.kind == "lxc" and running:
            n["lxc_running"] += 1
    return {"nodes": nodes, "cluster": topo.cluster_name is not None}


class SimProcess:
    """A pvesim server for ``scenario`` in a child process; a context manager."""

    def __init__(self, scenario: Scenario, **kwargs: Any) -> None:
        kwargs.setdefault("latency_ms", LATENCY_MS)
        kwargs.setdefault("workers", WORKERS)
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(child, scenario, kwargs), daemon=True)
        self._proc.start()
        info = self._conn.recv()
        self.url: str = info["url"]
        self.ca_path: str = info["ca_path"]
        self.credentials: dict[str, str] = info["credentials"]
        self.plan: dict[str, Any] = info["plan"]
        self.latency_ms: float = kwargs["latency_ms"]

    def _ask(self, cmd: str, arg: Any = None) -> Any:
        self._conn.send((cmd, arg))
        return self._conn.recv()

    def stats(self) -> dict[str, Any]:
        return dict(self._ask("stats"))

    def request_log(self) -> list[tuple[Any, ...]]:
        return list(self._ask("log"))

    def reset(self) -> None:
        self._ask("reset")

    def cpu_seconds(self) -> float:
        """CPU time the simulator process has used so far."""
        return float(self._ask("cpu"))

    def churn(self) -> None:
        self._ask("churn")

    def change(self, share: float) -> int:
        return int(self._ask("change", share))

    def source_config(self, max_parallel_nodes: int = 5) -> dict[str, Any]:
        return {
            "endpoint": self.url,
            "tls_verify": True,
            "tls_ca_bundle": self.ca_path,
            "max_parallel_nodes": max_parallel_nodes,
            "timeout_ms": 60000,
        }

    def request(self, max_parallel_nodes: int = 5) -> dict[str, Any]:
        return {
            "schema_version": "collector-request-v1",
            "mode": "collect",
            "source": {"id": "bench", "type": "pve", "config": self.source_config(max_parallel_nodes)},
            "credential": dict(self.credentials),
        }

    def close(self) -> None:
        if self._proc.is_alive():
            try:
                self._conn.send(("stop", None))
                self._conn.recv()
            except (EOFError, OSError):
                pass
            self._proc.join(10)
        if self._proc.is_alive():
            self._proc.kill()

    def __enter__(self) -> SimProcess:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
