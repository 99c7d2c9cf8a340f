"""Helpers for running the pve collector against pvesim over real HTTPS (shared by the PVE test modules and
the compatibility-matrix script)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from asset_ledger.collectors import ProgressCallback
from asset_ledger.collectors.pve import PveCollector
from asset_ledger.collectors.pve.normalize import parse_version
from asset_ledger.contract import validate
from pvesim import PROFILES, SimServer, Topology

ALL_PROFILES = list(PROFILES)


def has_tokens(profile: str) -> bool:
    version = parse_version(profile)
    return version is not None and version >= (6, 2)


def auth_for(profile: str) -> str:
    return "api_token" if has_tokens(profile) else "user_password"


def cluster_topology(**overrides: Any) -> Topology:
    spec: dict[str, Any] = {
        "seed": 7,
        "nodes": 3,
        "qemu": 14,
        "lxc": 4,
        "paused": 1,
        "suspended": 1,
        "prelaunch": 1,
        "hibernated": 1,
        "templates": 1,
        "agent_not_running": 1,
        "agent_qga_error": 1,
    }
    spec.update(overrides)
    return Topology.generate(**spec)


@contextmanager
def sim(profile: str, topology: Topology | None = None, **kwargs: Any) -> Iterator[SimServer]:
    kwargs.setdefault("time_scale", 0.01)
    server = SimServer(profile=profile, topology=topology or cluster_topology(), **kwargs)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def make_request(
    server: SimServer,
    mode: str,
    principal: str = "reader",
    *,
    auth: str | None = None,
    credential: dict[str, Any] | None = None,
    **config: Any,
) -> dict[str, Any]:
    auth = auth or auth_for(server.profile.name)
    cfg: dict[str, Any] = {"endpoint": server.url, "auth_type": auth}
    if "tls_fingerprint" not in config and config.get("tls_verify", True):
        cfg["tls_ca_bundle"] = server.ca_path
    cfg.update(config)
    return {
        "schema_version": "collector-request-v1",
        "mode": mode,
        "run_id": f"test-{mode}",
        "source": {"id": "pve-test", "type": "pve", "name": "test", "config": cfg},
        "credential": credential if credential is not None else server.credentials(principal, auth=auth),  # type: ignore[arg-type]
    }


def run(
    server: SimServer,
    mode: str,
    principal: str = "reader",
    *,
    progress: ProgressCallback | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """Run the collector and check the response against collector-response-v1."""
    response = asyncio.run(PveCollector().run(make_request(server, mode, principal, **kwargs), progress))
    issues = validate("collector-response-v1", response)
    assert issues == [], [str(i) for i in issues]
    return response


def codes(items: list[dict[str, Any]]) -> list[str]:
    return [item["code"] for item in items]


def assets_by_id(response: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f"{a['external_kind']}:{a['external_id']}": a for a in response["assets"]}
