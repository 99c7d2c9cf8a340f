"""The lowest collect wall time any client could reach, and the fewest requests it could make.

The model is the server's limits only (what pvesim enforces, as PVE does):

* every request costs one round trip ``L`` (the added latency; served outside the worker slots);
* protected calls (guest lists, agent calls, LXC interfaces, ...) run in ``W`` (3) pvedaemon worker slots per
  node; a dead guest agent (not running, or timing out) holds its slot for ``D`` (3 s, pve-notes §8);
  answering calls hold a slot for a negligible time;
* data dependencies: a node's calls need the guest list (``/cluster/resources``, 1 round trip); an agent call
  needs the guest's config (is the agent enabled?), so a dead agent costs at least ``L + L + D`` after the
  inventory, and ``k`` dead agents on one node need at least ``ceil(k / W)`` rounds of ``D`` in its slots;
* at most ``P`` = ``max_parallel_nodes`` nodes are worked on at once (the client's setting, part of the
  scenario): node jobs of lengths ``T_i`` on ``P`` lanes take at least
  ``max(max T_i, sum T_i / P, sum of the ceil(N / P) smallest T_i)`` (one lane carries at least that many).

The model leaves out the server's own CPU time, TLS handshakes and the client's CPU time, so it is a true
lower bound: no client, however clever, finishes a collect of the scenario faster on this server.
"""

from __future__ import annotations

import math
from typing import Any


def node_time(node: dict[str, int], *, latency_s: float, agent_delay_s: float, workers: int) -> float:
    """Lower bound for one online node's enrichment after the inventory is known."""
    if not node.get("online", 1):
        return 0.0
    dead = node["agent_dead"]
    if dead:
        return 2 * latency_s + math.ceil(dead / workers) * agent_delay_s
    if node["agent_calls"]:
        return 2 * latency_s  # config, then the agent call
    return latency_s  # configs, lists, status, interfaces all in one round trip


def lanes(times: list[float], parallel: int) -> float:
    """Lower bound of running jobs ``times`` on ``parallel`` lanes."""
    if not times:
        return 0.0
    parallel = max(1, min(parallel, len(times)))
    per_lane = math.ceil(len(times) / parallel)
    return max(*times, sum(times) / parallel, sum(sorted(times)[:per_lane]))


def collect_bound(
    plan: dict[str, Any], *, latency_s: float, agent_delay_s: float, workers: int, parallel: int
) -> dict[str, float]:
    """Lower bound of one collect's wall time, and its parts."""
    times = [
        node_time(n, latency_s=latency_s, agent_delay_s=agent_delay_s, workers=workers)
        for n in plan["nodes"].values()
    ]
    inventory = latency_s  # /cluster/resources (version, permissions and status can overlap it)
    nodes = lanes(times, parallel)
    return {
        "bound_s": inventory + nodes,
        "inventory_s": inventory,
        "nodes_s": nodes,
        "node_max_s": max(times),
    }


def minimum_requests(plan: dict[str, Any], *, token: bool = True) -> dict[str, int]:
    """The fewest requests that fill every field the collector fills (see docs/performance.md)."""
    nodes = [n for n in plan["nodes"].values() if n.get("online", 1)]
    classes = {
        "GET /version": 1,
        "GET /access/permissions": 1 if token else 0,
        "POST /access/ticket": 0 if token else 1,
        "GET /cluster/status": 1,
        "GET /cluster/resources": 1,
        "GET /nodes/{node}/status": len(nodes),
        "GET /nodes/{node}/qemu": sum(1 for n in nodes if n["qemu"]),
        "GET /nodes/{node}/{type}/{vmid}/config": sum(n["qemu"] + n["lxc"] for n in nodes),
        "GET …/agent/network-get-interfaces": sum(n["agent_calls"] for n in nodes),
        "GET /nodes/{node}/lxc/{vmid}/interfaces": sum(n["lxc_running"] for n in nodes),
    }
    return {k: v for k, v in classes.items() if v}
