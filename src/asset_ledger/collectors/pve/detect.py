"""Capabilities and driver choice from what the server showed (its version is only the fallback).

Drivers (documented in docs/pve/collector.md):

* ``pve-cap-v1`` - no ``/access/permissions`` (PVE < 6.2): completeness proven from the ticket's ``cap``;
  password tickets only; guest IPs from the agent (POST form before 5.2) and static config.
* ``pve-cap-v2`` - ``/access/permissions`` and API tokens (6.2 - 8.0): effective privileges prove
  completeness; LXC IPs from static config only.
* ``pve-cap-v3`` - v2 plus ``/nodes/{node}/lxc/{vmid}/interfaces`` (8.1+) for running containers' IPs.

Pure functions only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from asset_ledger.collectors.pve.normalize import ClusterStatus, parse_version, text
from asset_ledger.collectors.pve.permissions import agent_privilege


@dataclass
class Capabilities:
    version: tuple[int, int] | None
    is_cluster: bool
    permissions_endpoint: bool
    api_tokens: bool
    supports_cluster_resources_endpoint: bool = True

    @property
    def agent_get_endpoints(self) -> bool:
        return self.version is None or self.version >= (5, 2)

    @property
    def lxc_interfaces(self) -> bool:
        return self.version is not None and self.version >= (8, 1)

    @property
    def agent_privilege(self) -> str:
        return agent_privilege(self.version)

    @property
    def driver(self) -> str:
        if not self.permissions_endpoint:
            return "pve-cap-v1"
        if self.lxc_interfaces:
            return "pve-cap-v3"
        return "pve-cap-v2"

    def as_dict(self) -> dict[str, Any]:
        return {
            "is_cluster": self.is_cluster,
            "guest_agent_supported": True,
            "supports_cluster_resources_endpoint": self.supports_cluster_resources_endpoint,
            "api_tokens": self.api_tokens,
            "permissions_endpoint": self.permissions_endpoint,
            "agent_get_endpoints": self.agent_get_endpoints,
            "lxc_interfaces": self.lxc_interfaces,
            "agent_privilege": self.agent_privilege,
        }


def target_version(version_data: Any) -> str | None:
    """``"major.minor"`` from ``/version`` (``version`` field; ``release`` is a package revision on 5.x)."""
    if not isinstance(version_data, Mapping):
        return None
    parsed = parse_version(version_data.get("version"))
    return f"{parsed[0]}.{parsed[1]}" if parsed else None


def detect_section(
    caps: Capabilities,
    version_data: Any,
    cluster: ClusterStatus | None,
    node_names: list[str],
    *,
    auth: str,
) -> dict[str, Any]:
    """The ``detect`` object of collector-response-v1."""
    details: dict[str, Any] = {"auth": auth, "nodes": sorted(node_names)}
    if isinstance(version_data, Mapping):
        for key in ("version", "release", "repoid"):
            value = text(version_data.get(key))
            if value is not None:
                details[f"pve_{key}"] = value
    if cluster is not None and cluster.name:
        details["cluster_name"] = cluster.name
    return {
        "target_version": target_version(version_data),
        "capabilities": caps.as_dict(),
        "driver": caps.driver,
        "recommended_scope": "cluster" if caps.is_cluster else "standalone",
        "details": details,
    }
