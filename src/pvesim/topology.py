"""What the simulated cluster contains: nodes, guests, storages, users, tokens, roles and ACLs.

A :class:`Topology` is plain data plus a lock; the server renders it per profile. It can be generated from a
seed (deterministic), loaded from a YAML/JSON file, and mutated at run time (migrate a guest, take a node
offline, change a run state, add or remove guests). Every mutation bumps :attr:`Topology.generation`, which
invalidates the server's response caches. This module knows nothing about HTTP or PVE versions.
"""

from __future__ import annotations

import ipaddress
import json
import random
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

GuestKind = Literal["qemu", "lxc"]
#: Run states. ``hibernated`` = stopped with ``lock: suspended`` (suspend to disk).
RunState = Literal["running", "stopped", "paused", "suspended", "prelaunch", "hibernated"]
#: What the QEMU guest agent does when asked.
AgentMode = Literal["answering", "not_running", "qga_error", "timeout", "hang"]

RUN_STATES: tuple[str, ...] = ("running", "stopped", "paused", "suspended", "prelaunch", "hibernated")
AGENT_MODES: tuple[str, ...] = ("answering", "not_running", "qga_error", "timeout", "hang")
GIB = 1024**3
MIB = 1024**2

#: Built-in principals every topology has (see docs/pvesim.md "Principals").
DEFAULT_PRINCIPALS: tuple[str, ...] = ("root", "auditor", "reader", "privsep", "novm", "tfa")
READER_ROLE = "LedgerReader"
_TFA_SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"  # noqa: S105 - TOTP seed of the simulated tfa@pve user


@dataclass
class Storage:
    storage: str
    plugintype: str = "dir"
    content: str = "images,rootdir"
    shared: bool = False
    total: int = 500 * GIB
    used: int = 100 * GIB


@dataclass
class Node:
    name: str
    nodeid: int = 1
    ip: str | None = None
    online: bool = True
    #: offline but its guests' RRD data is still younger than pmxcfs' 5-minute expiry (pve-notes §6)
    rrd_fresh: bool = False
    cpus: int = 16
    sockets: int = 2
    cpu_model: str = "Intel(R) Xeon(R) Silver 4214R CPU @ 2.40GHz"
    mhz: str = "2400.000"
    memory_total: int = 128 * GIB
    memory_used: int = 48 * GIB
    swap_total: int = 8 * GIB
    swap_used: int = 0
    rootfs_total: int = 100 * GIB
    rootfs_used: int = 12 * GIB
    uptime: int = 864000
    cpu: float = 0.12
    loadavg: tuple[str, str, str] = ("0.52", "0.61", "0.58")
    level: str = ""
    ssl_fingerprint: str = ""
    serverid: str = ""
    cgroup_mode: int = 2
    boot_mode: str = "efi"
    secureboot: int = 0
    storages: list[Storage] = field(default_factory=list)


@dataclass
class Nic:
    """One guest NIC. ``ip`` is a CIDR, ``"dhcp"`` or None (LXC config ``ip=``; QEMU keeps it None)."""

    name: str
    mac: str
    bridge: str = "vmbr0"
    model: str = "virtio"
    ip: str | None = None
    gw: str | None = None
    ip6: str | None = None
    #: the address the guest really has (static ip, DHCP lease or what a QEMU guest configured)
    address: str | None = None


@dataclass
class Guest:
    vmid: int
    kind: GuestKind
    node: str
    name: str | None = None
    state: RunState = "running"
    cores: int = 1
    sockets: int = 1
    vcpus: int | None = None
    cpulimit: str | None = None
    memory: int = 512
    memory_style: Literal["plain", "current"] = "plain"
    balloon: int | None = None
    swap: int = 512
    disk: int = 32 * GIB
    disk_used: int = 4 * GIB
    tags: list[str] = field(default_factory=list)
    tag_separator: str = ";"
    pool: str | None = None
    template: bool = False
    lock: str | None = None
    smbios_uuid: str = ""
    vmgenid: str = ""
    nics: list[Nic] = field(default_factory=list)
    ostype: str = "l26"
    agent: str | None = None
    agent_mode: AgentMode = "answering"
    docker: bool = False
    ipv6: bool = False
    cpu_usage: float = 0.03
    mem_used: int = 256 * MIB
    uptime: int = 3600
    netin: int = 0
    netout: int = 0
    diskread: int = 0
    diskwrite: int = 0
    hastate: str | None = None

    @property
    def id(self) -> str:
        return f"{self.kind}/{self.vmid}"

    @property
    def running(self) -> bool:
        """``status: running`` in lists (paused/suspended/prelaunch VMs have a live QEMU process)."""
        return self.state in ("running", "paused", "suspended", "prelaunch")

    @property
    def effective_lock(self) -> str | None:
        return "suspended" if self.state == "hibernated" and self.lock is None else self.lock

    @property
    def agent_enabled(self) -> bool:
        """First positional value / ``enabled=`` of the ``agent`` property string."""
        if self.agent is None:
            return False
        for part in self.agent.split(","):
            key, sep, value = part.partition("=")
            if not sep:
                value = key
            elif key != "enabled":
                continue
            return value.strip().lower() in ("1", "yes", "on", "true")
        return False

    @property
    def vcpu_count(self) -> int:
        return self.vcpus or self.sockets * self.cores


@dataclass
class Token:
    name: str
    secret: str
    privsep: bool = True
    expire: int = 0
    comment: str = ""


@dataclass
class User:
    userid: str
    password: str | None = None
    enable: bool = True
    expire: int = 0
    groups: list[str] = field(default_factory=list)
    totp_secret: str | None = None
    tokens: dict[str, Token] = field(default_factory=dict)
    email: str = ""
    comment: str = ""


@dataclass
class Acl:
    """One ACL entry: ``ugid`` is a user id, ``@group`` or a full token id ``user@realm!name``."""

    path: str
    ugid: str
    role: str
    propagate: bool = True


class TopologyError(ValueError):
    """A topology request that cannot be satisfied (unknown guest or node, bad value)."""


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _mac(rng: random.Random) -> str:
    return "BC:24:11:" + ":".join(f"{rng.randrange(256):02X}" for _ in range(3))


def _fingerprint(rng: random.Random) -> str:
    return ":".join(f"{rng.randrange(256):02X}" for _ in range(32))


def link_local(mac: str) -> str:
    """EUI-64 link-local IPv6 address of a MAC."""
    octets = [int(x, 16) for x in mac.split(":")]
    octets[0] ^= 0x02
    eui = [*octets[:3], 0xFF, 0xFE, *octets[3:]]
    groups = [f"{eui[i] << 8 | eui[i + 1]:x}" for i in range(0, 8, 2)]
    return str(ipaddress.IPv6Address("fe80::" + ":".join(groups)))


class Topology:
    """Nodes, guests and principals of one simulated PVE installation."""

    def __init__(
        self,
        *,
        cluster_name: str | None = "pvesim",
        nodes: list[Node] | None = None,
        guests: list[Guest] | None = None,
        users: list[User] | None = None,
        roles: dict[str, list[str]] | None = None,
        acl: list[Acl] | None = None,
        datacenter: dict[str, Any] | None = None,
        config_version: int = 7,
        seed: int = 0,
        default_principals: bool = True,
    ) -> None:
        self.lock = threading.RLock()
        self.generation = 0
        self.cluster_name = cluster_name
        self.config_version = config_version
        self.seed = seed
        self.nodes: dict[str, Node] = {}
        for node in nodes or []:
            self.nodes[node.name] = node
        if not self.nodes:
            raise TopologyError("a topology needs at least one node")
        self.guests: dict[int, Guest] = {}
        for guest in guests or []:
            self._check_guest(guest)
            self.guests[guest.vmid] = guest
        self.users: dict[str, User] = {u.userid: u for u in users or []}
        self.roles: dict[str, list[str]] = dict(roles or {})
        self.acl: list[Acl] = list(acl or [])
        self.datacenter: dict[str, Any] = (
            dict(datacenter)
            if datacenter is not None
            else {"keyboard": "en-us", "console": "html5", "migration": {"type": "secure"}}
        )
        if default_principals:
            self._add_default_principals(random.Random(f"principals-{seed}"))  # noqa: S311 - reproducible

    # --- construction -----------------------------------------------------------------------------
    @property
    def standalone(self) -> bool:
        return self.cluster_name is None

    @property
    def entry_node(self) -> str:
        """The node clients talk to (pveproxy answering ``/cluster/resources`` etc.): the first node."""
        return next(iter(self.nodes))

    def _check_guest(self, guest: Guest) -> None:
        if guest.node not in self.nodes:
            raise TopologyError(f"guest {guest.vmid} is on unknown node {guest.node!r}")
        if guest.vmid in self.guests:
            raise TopologyError(f"duplicate vmid {guest.vmid}")
        if guest.state not in RUN_STATES:
            raise TopologyError(f"unknown run state {guest.state!r}")
        if guest.kind == "lxc" and guest.state not in ("running", "stopped"):
            raise TopologyError("containers are only running or stopped")
        if guest.agent_mode not in AGENT_MODES:
            raise TopologyError(f"unknown agent mode {guest.agent_mode!r}")

    def _add_default_principals(self, rng: random.Random) -> None:
        def secret() -> str:
            return _uuid(rng)

        defaults = [
            User("root@pam", password=secret(), tokens={"ledger": Token("ledger", secret(), privsep=False)}),
            User("auditor@pve", password=secret(), tokens={"ro": Token("ro", secret(), privsep=False)}),
            User("reader@pve", password=secret(), tokens={"ro": Token("ro", secret(), privsep=False)}),
            User("novm@pve", password=secret(), tokens={"ro": Token("ro", secret(), privsep=False)}),
            User("tfa@pve", password=secret(), totp_secret=_TFA_SECRET),
        ]
        defaults[1].tokens["bare"] = Token("bare", secret(), privsep=True)
        for user in defaults:
            self.users.setdefault(user.userid, user)
        self.roles.setdefault(READER_ROLE, ["@PVEAuditor", "VM.Monitor", "VM.GuestAgent.Audit"])
        self.roles.setdefault("SysAuditOnly", ["Sys.Audit"])
        self.acl.extend(
            [
                Acl("/", "auditor@pve", "PVEAuditor"),
                Acl("/", "reader@pve", READER_ROLE),
                Acl("/", "novm@pve", "SysAuditOnly"),
                Acl("/", "tfa@pve", "PVEAuditor"),
            ]
        )

    def principal(self, name: str) -> tuple[User, Token | None]:
        """The user (and token) behind a default principal name or a full user/token id."""
        aliases = {
            "root": ("root@pam", "ledger"),
            "auditor": ("auditor@pve", "ro"),
            "reader": ("reader@pve", "ro"),
            "privsep": ("auditor@pve", "bare"),
            "novm": ("novm@pve", "ro"),
            "tfa": ("tfa@pve", None),
        }
        if name in aliases:
            userid, tokenname = aliases[name]
        else:
            userid, _, tokenname_s = name.partition("!")
            tokenname = tokenname_s or None
        user = self.users.get(userid)
        if user is None:
            raise TopologyError(f"unknown principal {name!r}")
        token = user.tokens.get(tokenname) if tokenname else None
        if tokenname and token is None:
            raise TopologyError(f"user {userid} has no token {tokenname!r}")
        return user, token

    # --- queries ----------------------------------------------------------------------------------
    def guest(self, ref: str | int) -> Guest:
        """A guest by vmid or ``"qemu/100"``/``"lxc/200"``."""
        if isinstance(ref, str) and "/" in ref:
            kind, _, vmid_s = ref.partition("/")
            guest = self.guests.get(int(vmid_s))
            if guest is None or guest.kind != kind:
                raise TopologyError(f"no guest {ref}")
            return guest
        guest = self.guests.get(int(ref))
        if guest is None:
            raise TopologyError(f"no guest {ref}")
        return guest

    def guests_on(self, node: str) -> Iterator[Guest]:
        return (g for g in self.guests.values() if g.node == node)

    @property
    def pools(self) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        for guest in self.guests.values():
            if guest.pool:
                out.setdefault(guest.pool, []).append(guest.vmid)
        return out

    @property
    def quorate(self) -> bool:
        online = sum(1 for n in self.nodes.values() if n.online)
        return online * 2 > len(self.nodes)

    # --- mutation ---------------------------------------------------------------------------------
    def _bump(self) -> None:
        self.generation += 1

    def migrate(self, ref: str | int, node: str) -> None:
        with self.lock:
            guest = self.guest(ref)
            if node not in self.nodes:
                raise TopologyError(f"unknown node {node!r}")
            guest.node = node
            self._bump()

    def set_node_online(self, node: str, online: bool, *, rrd_fresh: bool = False) -> None:
        """Take a node off/on line. ``rrd_fresh=True``: the first 5 minutes after the failure, while
        ``/cluster/resources`` still shows its guests with their last-known values (see :meth:`expire_rrd`);
        otherwise they are already stubs ``{id, vmid, node, type, status: "unknown"}``."""
        with self.lock:
            if node not in self.nodes:
                raise TopologyError(f"unknown node {node!r}")
            if node == self.entry_node and not online:
                raise TopologyError(f"{node} is the node clients talk to; take another node offline")
            self.nodes[node].online = online
            self.nodes[node].rrd_fresh = rrd_fresh and not online
            self._bump()

    def expire_rrd(self, node: str) -> None:
        """The 5 minutes are over: the offline node's guests become stubs."""
        with self.lock:
            if node not in self.nodes:
                raise TopologyError(f"unknown node {node!r}")
            self.nodes[node].rrd_fresh = False
            self._bump()

    def set_state(self, ref: str | int, state: RunState) -> None:
        with self.lock:
            guest = self.guest(ref)
            if state not in RUN_STATES or (guest.kind == "lxc" and state not in ("running", "stopped")):
                raise TopologyError(f"state {state!r} is not possible for {guest.id}")
            guest.state = state
            self._bump()

    def set_agent(self, ref: str | int, mode: AgentMode, agent: str | None = "1") -> None:
        with self.lock:
            guest = self.guest(ref)
            if mode not in AGENT_MODES:
                raise TopologyError(f"unknown agent mode {mode!r}")
            guest.agent_mode = mode
            guest.agent = agent
            self._bump()

    def add_guest(self, guest: Guest) -> Guest:
        with self.lock:
            self._check_guest(guest)
            self.guests[guest.vmid] = guest
            self._bump()
            return guest

    def remove_guest(self, ref: str | int) -> Guest:
        with self.lock:
            guest = self.guest(ref)
            del self.guests[guest.vmid]
            self._bump()
            return guest

    def add_user(self, user: User) -> User:
        with self.lock:
            if user.userid in self.users:
                raise TopologyError(f"user {user.userid} exists")
            self.users[user.userid] = user
            self._bump()
            return user

    def set_user_enabled(self, userid: str, enabled: bool) -> None:
        with self.lock:
            if userid not in self.users:
                raise TopologyError(f"unknown user {userid!r}")
            self.users[userid].enable = enabled
            self._bump()

    def add_token(self, userid: str, token: Token) -> Token:
        with self.lock:
            if userid not in self.users:
                raise TopologyError(f"unknown user {userid!r}")
            self.users[userid].tokens[token.name] = token
            self._bump()
            return token

    def grant(self, path: str, ugid: str, role: str, *, propagate: bool = True) -> Acl:
        """Add an ACL entry (user id, ``@group`` or token id) — like ``pveum acl modify``."""
        with self.lock:
            entry = Acl(path, ugid, role, propagate)
            self.acl.append(entry)
            self._bump()
            return entry

    def revoke(self, path: str, ugid: str, role: str | None = None) -> int:
        """Remove the ACL entries of ``ugid`` on ``path`` (only ``role`` if given); returns how many."""
        with self.lock:
            keep = [a for a in self.acl if not (a.path == path and a.ugid == ugid and role in (None, a.role))]
            removed = len(self.acl) - len(keep)
            self.acl[:] = keep
            self._bump()
            return removed

    def touch(self) -> None:
        """Mark the topology changed after editing its objects directly (invalidates caches)."""
        with self.lock:
            self._bump()

    # --- generation -------------------------------------------------------------------------------
    @classmethod
    def generate(
        cls,
        seed: int = 0,
        nodes: int = 3,
        qemu: int = 10,
        lxc: int = 5,
        *,
        standalone: bool | None = None,
        cluster_name: str = "pvesim",
        node_prefix: str = "node",
        offline_nodes: int = 0,
        running_share: float = 0.7,
        paused: int = 0,
        suspended: int = 0,
        prelaunch: int = 0,
        hibernated: int = 0,
        templates: int = 0,
        ha_share: float = 0.0,
        unnamed: int = 0,
        agent_share: float = 0.8,
        agent_not_running: int = 0,
        agent_qga_error: int = 0,
        agent_timeout: int = 0,
        agent_hang: int = 0,
        docker_share: float = 0.2,
        dhcp_share: float = 0.3,
        pools: int = 2,
        pool_share: float = 0.3,
        tag_share: float = 0.5,
        first_vmid: int = 100,
    ) -> Topology:
        """A deterministic topology; the counts (``paused``, ``agent_timeout``, …) are taken from ``qemu``.

        ``standalone`` defaults to ``nodes == 1``. Agent counts apply to running VMs with the agent enabled
        (``agent_share`` of the ordinary running VMs); the rest of those answer.
        """
        rng = random.Random(seed)  # noqa: S311 - deterministic generation, not security
        if standalone is None:
            standalone = nodes == 1
        if standalone and nodes != 1:
            raise TopologyError("a standalone topology has exactly one node")
        special = paused + suspended + prelaunch + hibernated + templates
        agents_special = agent_not_running + agent_qga_error + agent_timeout + agent_hang
        if special > qemu:
            raise TopologyError("more special-state VMs requested than qemu guests")
        node_list: list[Node] = []
        for i in range(nodes):
            name = "pve" if standalone else f"{node_prefix}{i + 1}"
            storages = [
                Storage(
                    "local", "dir", "iso,vztmpl,backup", total=100 * GIB, used=rng.randrange(5, 60) * GIB
                ),
                Storage(
                    "local-lvm",
                    "lvmthin",
                    "images,rootdir",
                    total=900 * GIB,
                    used=rng.randrange(50, 800) * GIB,
                ),
            ]
            if not standalone:
                storages.append(
                    Storage(
                        "cephpool", "rbd", "images,rootdir", shared=True, total=8192 * GIB, used=3000 * GIB
                    )
                )
            node_list.append(
                Node(
                    name=name,
                    nodeid=0 if standalone else i + 1,
                    ip=f"10.0.0.{11 + i}" if i < 240 else f"10.0.1.{i - 229}",
                    online=i < nodes - offline_nodes or i == 0,
                    cpus=rng.choice((8, 16, 32, 48, 64)),
                    sockets=rng.choice((1, 2)),
                    memory_total=rng.choice((64, 128, 256, 512)) * GIB,
                    memory_used=rng.randrange(8, 60) * GIB,
                    uptime=rng.randrange(3600, 90 * 86400),
                    cpu=round(rng.uniform(0.01, 0.6), 4),
                    loadavg=tuple(f"{rng.uniform(0, 8):.2f}" for _ in range(3)),  # type: ignore[arg-type]
                    ssl_fingerprint=_fingerprint(rng),
                    serverid=f"{rng.getrandbits(128):032X}",
                    storages=storages,
                )
            )
        node_names = [n.name for n in node_list]
        pool_names = [f"pool{i + 1}" for i in range(pools)]
        vocab = ["prod", "dev", "web", "db", "backup", "k8s", "monitoring", "legacy", "ci"]
        prefixes = ["web", "db", "app", "ci", "k8s", "mon", "proxy", "cache", "mail", "build"]
        guests: list[Guest] = []
        vmid = first_vmid
        qemu_states: list[str] = (
            ["paused"] * paused
            + ["suspended"] * suspended
            + ["prelaunch"] * prelaunch
            + ["hibernated"] * hibernated
            + ["template"] * templates
        )
        ordinary = qemu - len(qemu_states)
        running_ordinary = round(ordinary * running_share)
        qemu_states += ["running"] * running_ordinary + ["stopped"] * (ordinary - running_ordinary)
        with_agent = round(running_ordinary * agent_share)
        if agents_special > with_agent:
            with_agent = min(running_ordinary, agents_special)
            if agents_special > with_agent:
                raise TopologyError("more special agent modes requested than running VMs")
        agent_modes = (
            ["not_running"] * agent_not_running
            + ["qga_error"] * agent_qga_error
            + ["timeout"] * agent_timeout
            + ["hang"] * agent_hang
        )
        agent_modes += ["answering"] * (with_agent - len(agent_modes))
        agent_variants = [
            "1",
            "1",
            "enabled=1,type=virtio",
            "1,fstrim_cloned_disks=1",
            "1,freeze-fs-on-backup=0",
        ]
        unnamed_left = unnamed
        running_seen = 0
        for index, kind_state in enumerate(qemu_states):
            node = node_names[index % len(node_names)]
            state = "stopped" if kind_state == "template" else kind_state
            guest = cls._random_guest(
                rng, vmid, "qemu", node, prefixes, vocab, pool_names, pool_share, tag_share
            )
            guest.state = state  # type: ignore[assignment]
            guest.template = kind_state == "template"
            if unnamed_left and kind_state in ("running", "stopped"):
                guest.name = None
                unnamed_left -= 1
            if kind_state == "running":
                if running_seen < len(agent_modes):
                    guest.agent = rng.choice(agent_variants)
                    guest.agent_mode = agent_modes[running_seen]  # type: ignore[assignment]
                running_seen += 1
            elif rng.random() < agent_share:
                guest.agent = "1"
            guest.docker = rng.random() < docker_share
            if ha_share and rng.random() < ha_share:
                guest.hastate = "started" if guest.running else "stopped"
            guests.append(guest)
            vmid += 1
        running_ct = round(lxc * running_share)
        for index in range(lxc):
            node = node_names[(index + qemu) % len(node_names)]
            guest = cls._random_guest(
                rng, vmid, "lxc", node, prefixes, vocab, pool_names, pool_share, tag_share
            )
            guest.state = "running" if index < running_ct else "stopped"
            nic = guest.nics[0]
            if rng.random() < dhcp_share:
                nic.ip = "dhcp"
                nic.address = f"192.168.{100 + vmid // 250 % 100}.{vmid % 250 + 2}/24"
            else:
                nic.ip = f"10.{20 + vmid // 62500 % 200}.{vmid // 250 % 250}.{vmid % 250 + 2}/24"
                nic.gw = nic.ip.rsplit(".", 1)[0] + ".1"
                nic.address = nic.ip
            guests.append(guest)
            vmid += 1
        return cls(
            cluster_name=None if standalone else cluster_name,
            nodes=node_list,
            guests=guests,
            seed=seed,
        )

    @staticmethod
    def _random_guest(  # noqa: PLR0917 - internal helper of generate()
        rng: random.Random,
        vmid: int,
        kind: GuestKind,
        node: str,
        prefixes: list[str],
        vocab: list[str],
        pool_names: list[str],
        pool_share: float,
        tag_share: float,
    ) -> Guest:
        cores = rng.choice((1, 2, 2, 4, 4, 8))
        memory = rng.choice((512, 1024, 2048, 4096, 8192, 16384))
        mac = _mac(rng)
        tags = sorted(rng.sample(vocab, rng.randrange(1, 3))) if rng.random() < tag_share else []
        guest = Guest(
            vmid=vmid,
            kind=kind,
            node=node,
            name=f"{rng.choice(prefixes)}-{vmid}",
            cores=cores,
            sockets=rng.choice((1, 1, 1, 2)) if kind == "qemu" else 1,
            memory=memory,
            memory_style="current" if kind == "qemu" and rng.random() < 0.2 else "plain",
            swap=512 if kind == "lxc" else 0,
            disk=rng.choice((8, 16, 32, 64, 128)) * GIB,
            tags=tags,
            pool=rng.choice(pool_names) if pool_names and rng.random() < pool_share else None,
            smbios_uuid=_uuid(rng) if kind == "qemu" else "",
            vmgenid=_uuid(rng) if kind == "qemu" else "",
            nics=[Nic(name="eth0" if kind == "lxc" else "net0", mac=mac)],
            ostype=rng.choice(("l26", "l26", "l26", "win10")) if kind == "qemu" else "debian",
            cpu_usage=round(rng.uniform(0, 0.5), 4),
            uptime=rng.randrange(60, 200 * 86400),
            netin=rng.randrange(10**6, 10**11),
            netout=rng.randrange(10**6, 10**11),
            diskread=rng.randrange(10**6, 10**11),
            diskwrite=rng.randrange(10**6, 10**11),
        )
        guest.disk_used = guest.disk // rng.choice((2, 3, 4, 8))
        guest.mem_used = memory * MIB // rng.choice((2, 3, 4))
        if kind == "qemu":
            third = vmid // 250 % 250
            guest.nics[0].address = f"10.{10 + vmid // 62500 % 200}.{third}.{vmid % 250 + 2}/24"
            guest.ipv6 = rng.random() < 0.3
        return guest

    # --- files ------------------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path) -> Topology:
        """Read a topology from a YAML or JSON file (format: docs/pvesim.md "Topology files")."""
        text = Path(path).read_text(encoding="utf-8")
        data = json.loads(text) if str(path).endswith(".json") else yaml.safe_load(text)
        if not isinstance(data, dict):
            raise TopologyError(f"{path}: expected a mapping at the top level")
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Topology:
        seed = int(data.get("seed", 0))
        rng = random.Random(f"file-{seed}")  # noqa: S311 - reproducible defaults
        standalone = bool(data.get("standalone", False))
        raw_nodes = data.get("nodes") or [{"name": "pve"}]
        nodes: list[Node] = []
        for i, raw_node in enumerate(raw_nodes):
            raw: dict[str, Any] = {"name": raw_node} if isinstance(raw_node, str) else dict(raw_node)
            storages = [Storage(**s) for s in raw.pop("storages", [])] or [
                Storage("local", "dir", "iso,vztmpl,backup"),
                Storage("local-lvm", "lvmthin", "images,rootdir"),
            ]
            if "loadavg" in raw:
                raw["loadavg"] = tuple(str(x) for x in raw["loadavg"])
            if "memory_gb" in raw:
                raw["memory_total"] = int(raw.pop("memory_gb")) * GIB
            raw.setdefault("nodeid", 0 if standalone else i + 1)
            raw.setdefault("ip", f"10.0.0.{11 + i}")
            raw.setdefault("ssl_fingerprint", _fingerprint(rng))
            raw.setdefault("serverid", f"{rng.getrandbits(128):032X}")
            nodes.append(Node(storages=storages, **raw))
        guests: list[Guest] = []
        for raw in data.get("guests") or []:
            guests.append(cls._guest_from_dict(dict(raw), rng, nodes[0].name))
        users: list[User] = []
        for raw_user in data.get("users") or []:
            raw = dict(raw_user)
            tokens = {}
            for raw_token in raw.pop("tokens", []):
                t = dict(raw_token)
                t.setdefault("secret", _uuid(rng))
                tokens[t["name"]] = Token(**t)
            users.append(User(tokens=tokens, **raw))
        acl = [Acl(**a) for a in data.get("acl") or []]
        cluster = data.get("cluster") or {}
        return cls(
            cluster_name=None if standalone else str(cluster.get("name", "pvesim")),
            config_version=int(cluster.get("config_version", 7)),
            nodes=nodes,
            guests=guests,
            users=users,
            roles={k: list(v) for k, v in (data.get("roles") or {}).items()},
            acl=acl,
            datacenter=data.get("datacenter"),
            seed=seed,
            default_principals=bool(data.get("default_principals", True)),
        )

    @staticmethod
    def _guest_from_dict(raw: dict[str, Any], rng: random.Random, default_node: str) -> Guest:
        kind = raw.pop("type", raw.pop("kind", "qemu"))
        raw.setdefault("node", default_node)
        nics_raw = raw.pop("nics", None)
        ip = raw.pop("ip", None)
        ips = raw.pop("ips", None)
        mac = raw.pop("mac", None) or _mac(rng)
        if "memory_style" not in raw and isinstance(raw.get("memory"), str):
            raw["memory"] = int(str(raw["memory"]).removeprefix("current="))
            raw["memory_style"] = "current"
        if isinstance(raw.get("tags"), str):
            raw.setdefault("tag_separator", ", " if ", " in raw["tags"] else ";")
            raw["tags"] = [t for t in raw["tags"].replace(",", ";").replace(" ", ";").split(";") if t]
        guest = Guest(kind=kind, **raw)
        if nics_raw:
            guest.nics = [Nic(**n) for n in nics_raw]
        else:
            nic = Nic(name="eth0" if kind == "lxc" else "net0", mac=mac)
            if kind == "lxc":
                nic.ip = ip or "dhcp"
                if nic.ip == "dhcp":
                    nic.address = f"192.168.{100 + guest.vmid // 250 % 100}.{guest.vmid % 250 + 2}/24"
                else:
                    nic.address = nic.ip
            else:
                nic.address = (
                    ips[0] if ips else ip
                ) or f"10.10.{guest.vmid // 250 % 250}.{guest.vmid % 250 + 2}/24"
            guest.nics = [nic]
        if kind == "qemu" and not guest.smbios_uuid:
            guest.smbios_uuid = _uuid(rng)
        return guest
