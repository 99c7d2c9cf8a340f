"""Proving from effective privileges that a credential may see the whole inventory.

PVE filters lists silently (a guest without ``VM.Audit`` is simply absent), so an empty or short list proves
nothing. This module reads ``/access/permissions`` (PVE 6.2+) or a ticket's ``cap`` (older servers) and says
which privilege on which path is missing, with the ``pveum`` command that grants it. Pure functions only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from asset_ledger.collectors.pve.normalize import to_bool


@dataclass(frozen=True)
class Requirement:
    privilege: str
    path: str
    why: str


#: What a complete inventory needs; PVEAuditor on ``/`` (propagated) grants all of it.
REQUIRED: tuple[Requirement, ...] = (
    Requirement("VM.Audit", "/vms", "list every QEMU VM and LXC container and read their configuration"),
    Requirement("Sys.Audit", "/", "read cluster membership and name (/cluster/status)"),
)
NODE_STATS = Requirement("Sys.Audit", "/nodes", "read node OS, CPU and memory (/nodes/{node}/status)")


def agent_privilege(major_minor: tuple[int, int] | None) -> str:
    """The privilege guest-agent reads need: ``VM.Monitor`` up to 8.x, ``VM.GuestAgent.Audit`` from 9.0."""
    if major_minor is not None and major_minor >= (9, 0):
        return "VM.GuestAgent.Audit"
    return "VM.Monitor"


def _path_chain(path: str) -> list[str]:
    parts = [p for p in path.split("/") if p]
    chain = ["/" + "/".join(parts[:i]) for i in range(len(parts), 0, -1)]
    chain.append("/")
    return chain


def has_privilege(permissions: Mapping[str, Any], privilege: str, path: str) -> bool:
    """Whether ``/access/permissions`` output grants ``privilege`` on ``path`` (exact or propagated)."""
    for index, candidate in enumerate(_path_chain(path)):
        privs = permissions.get(candidate)
        if not isinstance(privs, Mapping) or privilege not in privs:
            continue
        if index == 0:
            return True
        if to_bool(privs.get(privilege)) is not False:
            return True
    return False


def missing_from_permissions(
    permissions: Mapping[str, Any], required: tuple[Requirement, ...] = REQUIRED
) -> list[Requirement]:
    return [req for req in required if not has_privilege(permissions, req.privilege, req.path)]


def missing_from_cap(
    cap: Mapping[str, Any] | None, username: str, required: tuple[Requirement, ...] = REQUIRED
) -> list[Requirement]:
    """Missing requirements judged from a ticket's ``cap`` (coarse, per category; PVE < 6.2)."""
    if username == "root@pam":
        return []
    if not isinstance(cap, Mapping):
        return list(required)
    missing = []
    for req in required:
        if req.privilege.startswith("VM."):
            categories = ["vms"]
        elif req.path == "/":
            categories = ["dc", "nodes"]
        else:
            categories = ["nodes"]
        granted = False
        for category in categories:
            privs = cap.get(category)
            if isinstance(privs, Mapping) and req.privilege in privs:
                granted = granted or to_bool(privs[req.privilege]) is not False
        if not granted:
            missing.append(req)
    return missing


def grant_command(
    principal: str,
    *,
    is_token: bool,
    version: tuple[int, int] | None,
    path: str = "/",
    role: str = "PVEAuditor",
) -> str:
    """The ``pveum`` command that grants ``role`` on ``path`` to a user or token, in this version's syntax."""
    modern = version is None or version >= (7, 0)
    if modern:
        flag = "--tokens" if is_token else "--users"
        return f"pveum acl modify {path} {flag} '{principal}' --roles {role}"
    flag = "-token" if is_token else "-user"
    return f"pveum aclmod {path} {flag} '{principal}' -role {role}"


def agent_role_commands(principal: str, *, is_token: bool, version: tuple[int, int] | None) -> list[str]:
    """Commands that let a principal read guest-agent data (only needed up to PVE 8.x)."""
    if version is not None and version >= (9, 0):
        return [grant_command(principal, is_token=is_token, version=version, path="/vms")]
    modern = version is None or version >= (7, 0)
    create = (
        "pveum role add LedgerAgent --privs VM.Monitor"
        if modern
        else "pveum roleadd LedgerAgent -privs VM.Monitor"
    )
    return [
        create,
        grant_command(principal, is_token=is_token, version=version, path="/vms", role="LedgerAgent"),
    ]


def describe_missing(
    missing: list[Requirement], principal: str, *, is_token: bool, version: tuple[int, int] | None
) -> tuple[str, str]:
    """(message, suggested_action) for missing requirements."""
    parts = [f"{req.privilege} on {req.path} (needed to {req.why})" for req in missing]
    message = f"{principal} lacks " + "; ".join(parts) + ", so a complete inventory cannot be guaranteed"
    action = "Grant the read-only role PVEAuditor on / with propagation: " + grant_command(
        principal, is_token=is_token, version=version
    )
    if is_token:
        action += (
            ". A privilege-separated token needs this ACL on the token itself and its user must hold the "
            "privileges too (or recreate the token with --privsep 0)."
        )
    return message, action
