"""Privileges, built-in roles and ACL evaluation as PVE's access control does it.

Follows ``pve-access-control`` ``AccessControl.pm`` (``$privgroups``, ``roles``/``permissions``) and
``RPCEnvironment.pm`` (``check``, ``get_effective_permissions``, ``compute_api_permission``): the most
specific path level with a matching ACL wins (user entries over group entries), non-final levels only count
when the ACL propagates, pool ACLs apply to member guests, ``NoAccess`` empties the set, ``root@pam`` has
everything, and a privilege-separated token gets the intersection of its own ACLs and its user's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pvesim.profiles import Profile
from pvesim.topology import Topology, User

#: Role names whose privileges an entry ``@<Role>`` in a custom role's list expands to.
_GROUPS = ("root", "admin", "user", "audit")


def privilege_groups(profile: Profile) -> dict[str, dict[str, list[str]]]:
    """``$privgroups`` of the release (``AccessControl.pm`` of pve-access-control stable-5 … master)."""
    nine = profile.guest_agent_privs
    vm_admin = [
        "VM.Config.Disk",
        "VM.Config.CPU",
        "VM.Config.Memory",
        "VM.Config.Network",
        "VM.Config.HWType",
        "VM.Config.Options",
        "VM.Allocate",
        "VM.Clone",
        *(["VM.GuestAgent.Unrestricted"] if nine else []),
        "VM.Migrate",
        *([] if nine else ["VM.Monitor"]),
        *(["VM.Replicate"] if nine else []),
        "VM.Snapshot",
        "VM.Snapshot.Rollback",
    ]
    vm_user = [
        "VM.Config.CDROM",
        *(["VM.Config.Cloudinit"] if profile.at_least(6, 0) else []),
        "VM.Console",
        "VM.Backup",
        *(
            ["VM.GuestAgent.FileRead", "VM.GuestAgent.FileSystemMgmt", "VM.GuestAgent.FileWrite"]
            if nine
            else []
        ),
        "VM.PowerMgmt",
    ]
    vm_audit = ["VM.Audit", *(["VM.GuestAgent.Audit"] if nine else [])]
    sys_root = ["Sys.PowerMgmt", "Sys.Modify"]
    if profile.at_least(7, 3):
        sys_root.append("Sys.Incoming")  # 881dce1, 2022-09
    if profile.at_least(8, 2):
        sys_root.append("Sys.AccessNetwork")  # 36c1814, 2024-02
    groups: dict[str, dict[str, list[str]]] = {
        "VM": {
            "root": [],
            "admin": vm_admin,
            "user": vm_user,
            "audit": vm_audit,
        },
        "Sys": {
            "root": sys_root,
            "admin": ([] if profile.at_least(8, 0) else ["Permissions.Modify"])
            + ["Sys.Console", "Sys.Syslog"],
            "user": [],
            "audit": ["Sys.Audit"],
        },
        "Datastore": {
            "root": [],
            "admin": ["Datastore.Allocate", "Datastore.AllocateTemplate"],
            "user": ["Datastore.AllocateSpace"],
            "audit": ["Datastore.Audit"],
        },
        "User": {
            "root": ["Realm.Allocate"],
            "admin": ["User.Modify", "Group.Allocate", "Realm.AllocateUser"],
            "user": [],
            "audit": [],
        },
        "Pool": {
            "root": [],
            "admin": ["Pool.Allocate"],
            "user": ["Pool.Audit"] if profile.pool_audit else [],
            "audit": ["Pool.Audit"] if profile.pool_audit else [],
        },
    }
    if profile.at_least(6, 2):
        groups["SDN"] = {
            "root": [],
            "admin": ["SDN.Allocate", "SDN.Audit"],
            "user": ["SDN.Use"] if profile.at_least(8, 0) else [],
            "audit": ["SDN.Audit"],
        }
    if profile.at_least(8, 0):
        groups["Mapping"] = {
            "root": [],
            "admin": ["Mapping.Modify"],
            "user": ["Mapping.Use"],
            "audit": ["Mapping.Audit"],
        }
    return groups


def all_privileges(profile: Profile) -> frozenset[str]:
    """``$valid_privs``: every grouped privilege (plus ``Permissions.Modify``, ungrouped from 8.0)."""
    privs = {p for cat in privilege_groups(profile).values() for level in cat.values() for p in level}
    privs.add("Permissions.Modify")
    return frozenset(privs)


def builtin_roles(profile: Profile) -> dict[str, frozenset[str]]:
    """``create_roles``: NoAccess, Administrator, PVEAdmin, PVEAuditor, PVE<cat>Admin, PVE<cat>User, …"""
    roles: dict[str, set[str]] = {"NoAccess": set(), "Administrator": set(all_privileges(profile))}
    admin: set[str] = set()
    auditor: set[str] = set()
    for cat, levels in privilege_groups(profile).items():
        grouped = set(levels["admin"]) | set(levels["user"]) | set(levels["audit"])
        roles[f"PVE{cat}Admin"] = grouped
        admin |= grouped
        if levels["user"]:
            roles[f"PVE{cat}User"] = set(levels["user"]) | set(levels["audit"])
        auditor |= set(levels["audit"])
    admin.discard("Mapping.Modify")  # only Administrator, root@pam and PVEMappingAdmin (8.x)
    roles["PVEAdmin"] = admin
    roles["PVEAuditor"] = auditor
    roles["PVETemplateUser"] = {"VM.Clone", "VM.Audit"}
    return {name: frozenset(privs) for name, privs in roles.items()}


@dataclass(frozen=True)
class Subject:
    """Who a request runs as: a user, optionally through one of its tokens."""

    user: User
    tokenname: str | None = None
    privsep: bool = False
    tfa_pending: bool = False  #: authenticated by a TFA half-ticket (only good for ``POST /access/tfa``)

    @property
    def userid(self) -> str:
        return self.user.userid

    @property
    def auth_id(self) -> str:
        return f"{self.userid}!{self.tokenname}" if self.tokenname else self.userid


class PermissionEngine:
    """Effective privileges of users and tokens on ACL paths, for one topology and profile."""

    def __init__(self, topology: Topology, profile: Profile) -> None:
        self.topology = topology
        self.profile = profile
        self.known = all_privileges(profile)
        self.roles = builtin_roles(profile)
        self._cache: dict[tuple[str, str, int], dict[str, bool]] = {}
        self._acl_gen = -1
        self._acl_by_path: dict[str, list[tuple[str, str, bool]]] = {}
        self._shape_cache: dict[tuple[object, ...], dict[str, bool]] = {}

    def role_privs(self, role: str) -> frozenset[str]:
        if role in self.roles:
            return self.roles[role]
        custom = self.topology.roles.get(role)
        if custom is None:
            return frozenset()
        out: set[str] = set()
        for entry in custom:
            if entry.startswith("@"):
                out |= self.roles.get(entry[1:], frozenset())
            elif entry in self.known:
                out.add(entry)
        return frozenset(out)

    def _roles_for(self, ugid: str, groups: list[str], path: str) -> dict[str, bool]:
        """role -> propagate for one user/token id on ``path``.

        ``AccessControl.pm`` ``roles`` (the most specific level with an applicable entry wins, user
        entries over group entries) plus ``RPCEnvironment.pm`` ``compile_acl_path`` for pool members: the
        pool's roles are added without propagation unless the path has NoAccess; a pool NoAccess wins.
        """
        roles: dict[str, bool] = {}
        levels = ["/"]
        parts = [p for p in path.split("/") if p]
        for i in range(len(parts)):
            levels.append("/" + "/".join(parts[: i + 1]))
        acl_by_path = self._acl_index()
        for level in levels:
            final = level == path
            entries = acl_by_path.get(level, [])
            new = {r: p for u, r, p in entries if u == ugid and (final or p)}
            if new:
                roles = new
                continue
            new = {r: p for u, r, p in entries if u.startswith("@") and u[1:] in groups and (final or p)}
            if new:
                roles = new
        if "NoAccess" in roles:
            return {"NoAccess": roles["NoAccess"]}
        if path.startswith("/vms/") and path[5:].isdigit():
            guest = self.topology.guests.get(int(path[5:]))
            if guest is not None and guest.pool:
                pool_roles = self._roles_for(ugid, groups, f"/pool/{guest.pool}")
                if "NoAccess" in pool_roles:
                    return {"NoAccess": False}
                for role in pool_roles:
                    roles.setdefault(role, False)
        return roles

    def _acl_index(self) -> dict[str, list[tuple[str, str, bool]]]:
        """ACL entries by path, rebuilt when the topology changes."""
        if self._acl_gen != self.topology.generation:
            index: dict[str, list[tuple[str, str, bool]]] = {}
            for entry in self.topology.acl:
                index.setdefault(entry.path, []).append((entry.ugid, entry.role, entry.propagate))
            self._acl_by_path = index
            self._shape_cache = {}
            self._acl_gen = self.topology.generation
        return self._acl_by_path

    def _privs_of(self, ugid: str, groups: list[str], path: str) -> dict[str, bool]:
        """Privileges of one user/token id; paths with the same ACL "shape" share one evaluation."""
        acl = self._acl_index()
        parts = [p for p in path.split("/") if p]
        ancestors = tuple(
            level
            for level in ["/"] + ["/" + "/".join(parts[: i + 1]) for i in range(len(parts) - 1)]
            if level in acl
        )
        pool = None
        if path.startswith("/vms/") and path[5:].isdigit():
            guest = self.topology.guests.get(int(path[5:]))
            pool = guest.pool if guest is not None else None
        key = (ugid, tuple(groups), ancestors, path if path in acl else None, pool)
        cached = self._shape_cache.get(key)
        if cached is None:
            cached = self._shape_cache[key] = self._evaluate(ugid, groups, path)
        return cached

    def _evaluate(self, ugid: str, groups: list[str], path: str) -> dict[str, bool]:
        roles = self._roles_for(ugid, groups, path)
        if "NoAccess" in roles:
            return {}
        privs: dict[str, bool] = {}
        for role, propagate in roles.items():
            for priv in self.role_privs(role):
                privs[priv] = privs.get(priv, False) or propagate
        return privs

    def permissions(self, subject: Subject, path: str) -> dict[str, bool]:
        """privilege -> propagate on ``path`` (``AccessControl.pm`` ``permissions``)."""
        key = (subject.auth_id, path, self.topology.generation)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        user = subject.user
        if not user.enable:
            result: dict[str, bool] = {}
        elif user.userid == "root@pam":
            result = dict.fromkeys(self.known, True)
        else:
            result = self._privs_of(user.userid, user.groups, path)
        if subject.tokenname and subject.privsep and result:
            token_privs = self._privs_of(subject.auth_id, [], path)
            result = {p: prop and token_privs[p] for p, prop in result.items() if p in token_privs}
        if len(self._cache) > 200_000:
            self._cache.clear()
        self._cache[key] = result
        return result

    def check(self, subject: Subject, path: str, privs: list[str], *, any_of: bool = False) -> str | None:
        """None when allowed, else the 403 detail ``"/path, Priv"`` (``Priv1|Priv2`` for any-of checks)."""
        have = self.permissions(subject, path)
        if any_of:
            return None if any(p in have for p in privs) else f"{path}, {'|'.join(privs)}"
        for priv in privs:
            if priv not in have:
                return f"{path}, {priv}"
        return None

    def has(self, subject: Subject, path: str, priv: str) -> bool:
        return priv in self.permissions(subject, path)

    def effective_paths(self, subject: Subject) -> dict[str, dict[str, int]]:
        """``GET /access/permissions``: evaluated paths -> privilege -> propagate, empty paths dropped."""
        paths = {"/", "/access", "/access/groups", "/nodes", "/pool", "/sdn", "/storage", "/vms"}
        paths |= {entry.path for entry in self.topology.acl}
        for pool, members in self.topology.pools.items():
            paths.add(f"/pool/{pool}")
            paths |= {f"/vms/{vmid}" for vmid in members}
        out: dict[str, dict[str, int]] = {}
        for path in sorted(paths):
            privs = self.permissions(subject, path)
            if privs:
                out[path] = {p: int(v) for p, v in sorted(privs.items())}
        return out

    def cap(self, subject: Subject) -> dict[str, dict[str, int]]:
        """The ``cap`` map of a ticket response (``RPCEnvironment.pm`` ``compute_api_permission``)."""
        patterns: dict[str, tuple[str, ...]] = {
            "vms": ("VM.", "Permissions.Modify"),
            "access": ("User.", "Group.", "Permissions.Modify"),
            "storage": ("Datastore.", "Permissions.Modify"),
            "nodes": ("Sys.", "Permissions.Modify"),
            "dc": ("Sys.Audit", "Sys.Modify", "SDN."),
        }
        required = ["/", "/nodes", "/access/groups", "/vms", "/storage"]
        if self.profile.at_least(6, 2):
            patterns["sdn"] = ("SDN.", "Permissions.Modify")
            required.append("/sdn")
        if self.profile.at_least(8, 0):
            patterns["mapping"] = ("Mapping.", "Permissions.Modify")
            required.append("/mapping")
        out: dict[str, dict[str, int]] = {category: {} for category in patterns}
        for path in dict.fromkeys([*required, *(entry.path for entry in self.topology.acl)]):
            privs = self.permissions(subject, path)
            match = re.match(r"^/(\w+)", path)
            toplevel = match.group(1) if match else "dc"
            if toplevel == "pool":
                for priv in privs:
                    if priv.startswith("VM."):
                        out["vms"][priv] = 1
                    elif priv.startswith("Datastore."):
                        out["storage"][priv] = 1
                    elif priv == "Permissions.Modify":
                        out["storage"][priv] = 1
                        out["vms"][priv] = 1
            elif toplevel in patterns:
                for priv in privs:
                    if priv.startswith(patterns[toplevel]):
                        out[toplevel][priv] = 1
        return {category: dict(sorted(privs.items())) for category, privs in out.items()}
