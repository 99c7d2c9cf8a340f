"""Privileges, built-in roles and ACL evaluation as PVE's access control does it.

Follows ``pve-access-control`` ``AccessControl.pm`` (``$privgroups``, ``roles``/``permissions``) and
``RPCEnvironment.pm`` (``check``, ``get_effective_permissions``, ``compute_api_permission``): the most
specific path level with a matching ACL wins (user entries over group entries), non-final levels only count
when the ACL propagates, pool ACLs apply to member guests, ``NoAccess`` empties the set, ``root@pam`` has
everything, and a privilege-separated token gets the intersection of its own ACLs and its user's.
"""

from __future__ import annotations

from dataclasses import dataclass

from pvesim.profiles import Profile
from pvesim.topology import Topology, User

#: Role names whose privileges an entry ``@<Role>`` in a custom role's list expands to.
_GROUPS = ("root", "admin", "user", "audit")


def privilege_groups(profile: Profile) -> dict[str, dict[str, list[str]]]:
    """``$privgroups`` of the release: category -> level -> privileges."""
    vm_admin = [
        "VM.Config.Disk",
        "VM.Config.CPU",
        "VM.Config.Memory",
        "VM.Config.Network",
        "VM.Config.HWType",
        "VM.Config.Options",
        "VM.Allocate",
        "VM.Clone",
        "VM.Migrate",
        "VM.Snapshot",
        "VM.Snapshot.Rollback",
    ]
    vm_user = ["VM.Config.CDROM", "VM.Console", "VM.Backup", "VM.PowerMgmt"]
    vm_audit = ["VM.Audit"]
    if profile.guest_agent_privs:
        vm_admin += [
            "VM.GuestAgent.FileRead",
            "VM.GuestAgent.FileWrite",
            "VM.GuestAgent.FileSystemMgmt",
            "VM.GuestAgent.Unrestricted",
            "VM.Replicate",
        ]
        vm_audit.append("VM.GuestAgent.Audit")
    else:
        vm_admin.append("VM.Monitor")
    if profile.at_least(5, 2):
        vm_user.append("VM.Config.Cloudinit")
    groups: dict[str, dict[str, list[str]]] = {
        "VM": {"root": [], "admin": vm_admin, "user": vm_user, "audit": vm_audit},
        "Sys": {
            "root": ["Sys.PowerMgmt", "Sys.Modify"] + (["Sys.Incoming"] if profile.at_least(7, 1) else []),
            "admin": ["Permissions.Modify", "Sys.Console", "Sys.Syslog"]
            + (["Sys.AccessNetwork"] if profile.at_least(8, 1) else []),
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
            "user": [],
            "audit": ["Pool.Audit"] if profile.pool_audit else [],
        },
    }
    if profile.at_least(6, 2):
        groups["SDN"] = {"root": [], "admin": ["SDN.Allocate"], "user": [], "audit": ["SDN.Audit"]}
        if profile.at_least(8, 0):
            groups["SDN"]["user"] = ["SDN.Use"]
    if profile.at_least(8, 0):
        groups["Mapping"] = {
            "root": [],
            "admin": ["Mapping.Modify"],
            "user": ["Mapping.Use"],
            "audit": ["Mapping.Audit"],
        }
    return groups


def all_privileges(profile: Profile) -> frozenset[str]:
    return frozenset(p for cat in privilege_groups(profile).values() for level in cat.values() for p in level)


def builtin_roles(profile: Profile) -> dict[str, frozenset[str]]:
    """Built-in roles of the release (``AccessControl.pm`` ``$special_roles`` and generated PVE* roles)."""
    groups = privilege_groups(profile)

    def levels(cat: str, *names: str) -> set[str]:
        return {p for n in names for p in groups.get(cat, {}).get(n, [])}

    everything = all_privileges(profile)
    roles: dict[str, set[str]] = {
        "NoAccess": set(),
        "Administrator": set(everything),
        "PVEAdmin": {p for cat in groups for p in levels(cat, "admin", "user", "audit")},
        "PVEAuditor": {p for cat in groups for p in levels(cat, "audit")},
        "PVEVMAdmin": levels("VM", "admin", "user", "audit"),
        "PVEVMUser": levels("VM", "user", "audit"),
        "PVESysAdmin": levels("Sys", "admin", "user", "audit"),
        "PVEUserAdmin": levels("User", "admin", "user", "audit"),
        "PVEPoolAdmin": levels("Pool", "admin", "user", "audit"),
        "PVEDatastoreAdmin": levels("Datastore", "admin", "user", "audit"),
        "PVEDatastoreUser": levels("Datastore", "user", "audit"),
        "PVETemplateUser": {"VM.Clone", "VM.Audit"},
    }
    if profile.pool_audit:
        roles["PVEPoolUser"] = {"Pool.Audit"}
    if "SDN" in groups:
        roles["PVESDNAdmin"] = levels("SDN", "admin", "user", "audit")
    if "Mapping" in groups:
        roles["PVEMappingAdmin"] = levels("Mapping", "admin", "user", "audit")
        roles["PVEMappingUser"] = levels("Mapping", "user", "audit")
    # PVEAdmin does not get the root-only Sys.Modify etc.; VM.Monitor lives in the VM admin group (≤8.x)
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
        """role -> propagate for one user/token id on ``path`` (``AccessControl.pm`` ``roles``)."""
        roles: dict[str, bool] = {}
        if path.startswith("/vms/"):
            vmid_s = path[5:]
            if vmid_s.isdigit():
                guest = self.topology.guests.get(int(vmid_s))
                if guest is not None and guest.pool:
                    roles = self._roles_for(ugid, groups, f"/pool/{guest.pool}")
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
        """The ``cap`` map of a ticket response (``compute_api_permission``): category -> privilege -> 1."""
        categories = {
            "vms": ("/vms", ("VM.",)),
            "storage": ("/storage", ("Datastore.",)),
            "access": ("/access/groups", ("User.", "Group.", "Permissions.", "Realm.")),
            "nodes": ("/nodes", ("Sys.",)),
            "dc": ("/", ("Sys.Audit", "Sys.Modify", "Pool.", "SDN.")),
        }
        if self.profile.at_least(6, 2):
            categories["sdn"] = ("/sdn", ("SDN.",))
        acl_paths = {entry.path for entry in self.topology.acl}
        out: dict[str, dict[str, int]] = {}
        for category, (root, prefixes) in categories.items():
            candidates = {root} | {p for p in acl_paths if p.startswith(root + "/") or (root == "/")}
            if category == "vms":
                candidates |= {f"/pool/{pool}" for pool in self.topology.pools}
            privs: dict[str, int] = {}
            for path in candidates:
                for priv in self.permissions(subject, path):
                    if priv.startswith(prefixes):
                        privs[priv] = 1
            out[category] = dict(sorted(privs.items()))
        return out
