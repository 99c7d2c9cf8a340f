"""Helpers for talking to a pvesim server the way a PVE client does: real HTTPS, verified against the CA."""

from __future__ import annotations

import gzip
import json
import ssl
from functools import cache
from pathlib import Path
from typing import Any

import httpx

from pvesim import SimServer, Topology

APIDATA_DIR = Path(__file__).resolve().parents[2] / ".." / "shared" / "pve-apidata"


def tls(server: SimServer) -> ssl.SSLContext:
    return server.ssl_context()


def token_header(server: SimServer, principal: str = "root") -> dict[str, str]:
    cred = server.credentials(principal)
    return {"Authorization": f"PVEAPIToken={cred['api_token_id']}={cred['api_token_secret']}"}


def raw_client(server: SimServer, **kwargs: Any) -> httpx.Client:
    return httpx.Client(base_url=server.api_url, verify=tls(server), timeout=20, **kwargs)


def token_client(server: SimServer, principal: str = "root") -> httpx.Client:
    return raw_client(server, headers=token_header(server, principal))


def login(server: SimServer, username: str, password: str) -> dict[str, Any]:
    with raw_client(server) as client:
        response = client.post("/access/ticket", data={"username": username, "password": password})
    assert response.status_code == 200, response.reason_phrase
    data: dict[str, Any] = response.json()["data"]
    return data


def ticket_client(server: SimServer, principal: str = "root") -> httpx.Client:
    cred = server.credentials(principal, auth="user_password")
    data = login(server, cred["username"], cred["password"])
    return raw_client(
        server,
        cookies={"PVEAuthCookie": data["ticket"]},
        headers={"CSRFPreventionToken": data["CSRFPreventionToken"]},
    )


def client_for(server: SimServer, principal: str = "root") -> httpx.Client:
    """Token auth where the release has tokens, else a ticket (as a collector falls back)."""
    if server.profile.api_tokens and principal not in ("tfa",):
        return token_client(server, principal)
    return ticket_client(server, principal)


def small_topology(**extra: Any) -> Topology:
    """Two nodes, one VM of each interesting kind and two containers — stable ids for shape tests."""
    data: dict[str, Any] = {
        "cluster": {"name": "lab"},
        "nodes": [{"name": "node1", "ip": "10.0.0.11"}, {"name": "node2", "ip": "10.0.0.12"}],
        "guests": [
            {
                "vmid": 100,
                "type": "qemu",
                "node": "node1",
                "name": "web-100",
                "state": "running",
                "agent": "1",
                "cores": 2,
                "sockets": 2,
                "memory": 4096,
                "tags": ["prod", "web"],
                "pool": "prod",
                "docker": True,
                "ips": ["10.10.0.100/24"],
                "mac": "BC:24:11:00:01:00",
            },
            {"vmid": 101, "type": "qemu", "node": "node1", "state": "stopped", "memory": 2048},
            {
                "vmid": 102,
                "type": "qemu",
                "node": "node1",
                "name": "paused-102",
                "state": "paused",
                "agent": "1",
            },
            {"vmid": 103, "type": "qemu", "node": "node2", "name": "hib-103", "state": "hibernated"},
            {
                "vmid": 104,
                "type": "qemu",
                "node": "node1",
                "name": "tmpl-104",
                "state": "stopped",
                "template": True,
            },
            {"vmid": 105, "type": "qemu", "node": "node1", "name": "noagent-105", "state": "running"},
            {
                "vmid": 106,
                "type": "qemu",
                "node": "node1",
                "name": "dead-106",
                "state": "running",
                "agent": "1",
                "agent_mode": "not_running",
            },
            {
                "vmid": 107,
                "type": "qemu",
                "node": "node1",
                "name": "slow-107",
                "state": "running",
                "agent": "enabled=1,type=virtio",
                "agent_mode": "timeout",
            },
            {
                "vmid": 108,
                "type": "qemu",
                "node": "node1",
                "name": "err-108",
                "state": "running",
                "agent": "1",
                "agent_mode": "qga_error",
            },
            {
                "vmid": 109,
                "type": "qemu",
                "node": "node1",
                "name": "mem-109",
                "state": "running",
                "memory": "current=8192",
                "cpulimit": "1.5",
                "tags": "one, two",
            },
            {
                "vmid": 200,
                "type": "lxc",
                "node": "node1",
                "name": "ct-200",
                "state": "running",
                "ip": "10.20.0.200/24",
                "mac": "BC:24:11:00:02:00",
                "cores": 2,
            },
            {"vmid": 201, "type": "lxc", "node": "node1", "name": "ct-201", "state": "stopped", "ip": "dhcp"},
            {"vmid": 202, "type": "lxc", "node": "node2", "name": "ct-202", "state": "running", "ip": "dhcp"},
        ],
        "users": [{"userid": "nobody@pve", "password": "nobody-pass"}],
    }
    data.update(extra)
    return Topology.from_dict(data)


@cache
def apidata(version: str) -> dict[tuple[str, str], dict[str, Any]]:
    """The official schema of one release, flattened to (method, path) -> info."""
    with gzip.open(APIDATA_DIR / f"{version}.json.gz", "rt", encoding="utf-8") as fh:
        tree = json.load(fh)
    out: dict[tuple[str, str], dict[str, Any]] = {}
    stack = list(tree)
    while stack:
        node = stack.pop()
        for method, info in (node.get("info") or {}).items():
            out[(method, node["path"])] = info
        stack.extend(node.get("children") or [])
    return out
