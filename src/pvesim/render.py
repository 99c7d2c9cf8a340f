"""JSON shapes of the served endpoints, per release (the emitted-type quirks of pve-notes §1, §4–§8, §10).

Every method returns what ``data`` holds for one endpoint; callers hold the topology lock. Numbers that PVE
sends as strings are strings here, keys that a release does not send are absent, and the list filters of §3
(``VM.Audit``, ``Sys.Audit``, ``Datastore.Audit``, ``Pool.Audit``/``Pool.Allocate``) are applied.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pvesim.perms import PermissionEngine, Subject
from pvesim.profiles import Profile
from pvesim.topology import GIB, MIB, Guest, Node, Topology, link_local

_AGENT_OS = {
    "l26": {
        "id": "debian",
        "kernel-release": "6.1.0-18-amd64",
        "kernel-version": "#1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 (2024-02-01)",
        "machine": "x86_64",
        "name": "Debian GNU/Linux",
        "pretty-name": "Debian GNU/Linux 12 (bookworm)",
        "version": "12 (bookworm)",
        "version-id": "12",
    },
    "win10": {
        "id": "mswindows",
        "kernel-release": "19045",
        "kernel-version": "10.0",
        "machine": "x86_64",
        "name": "Microsoft Windows",
        "pretty-name": "Windows 10 Pro",
        "variant": "client",
        "variant-id": "client",
        "version": "Microsoft Windows 10",
        "version-id": "10",
    },
}


def _digest(text: str) -> str:
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()


class Renderer:
    """Builds endpoint payloads for one profile from the topology."""

    def __init__(self, profile: Profile, topology: Topology, perms: PermissionEngine) -> None:
        self.p = profile
        self.t = topology
        self.perms = perms
        self._resources_cache: dict[tuple[str, str | None, int], bytes] = {}
        self._resources_base: tuple[int, list[tuple[str, dict[str, Any], str | None]]] | None = None

    # --- /version ---------------------------------------------------------------------------------
    def version(self, *, datacenter: bool) -> dict[str, Any]:
        data: dict[str, Any] = {"version": self.p.version, "release": self.p.release, "repoid": self.p.repoid}
        if datacenter:
            if self.p.version_has_datacenter_keys:
                data.update(self.t.datacenter)
            elif "console" in self.t.datacenter:
                data["console"] = self.t.datacenter["console"]
        return data

    # --- /cluster/status --------------------------------------------------------------------------
    def cluster_status(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        entry = self.t.entry_node
        if not self.t.standalone:
            out.append(
                {
                    "type": "cluster",
                    "id": "cluster",
                    "name": self.t.cluster_name,
                    "nodes": len(self.t.nodes),
                    "quorate": int(self.t.quorate),
                    "version": self.t.config_version,
                }
            )
        for node in self.t.nodes.values():
            item: dict[str, Any] = {
                "type": "node",
                "id": f"node/{node.name}",
                "name": node.name,
                "nodeid": node.nodeid,
                "local": int(node.name == entry),
                "online": int(node.online),
                "level": node.level,
            }
            if node.ip is not None:
                item["ip"] = node.ip
            elif self.p.cluster_status_null_ip:
                item["ip"] = None
            out.append(item)
        return out

    # --- nodes ------------------------------------------------------------------------------------
    def _node_stats(self, node: Node) -> dict[str, Any]:
        return {
            "maxcpu": node.cpus,
            "cpu": node.cpu,
            "maxmem": node.memory_total,
            "mem": node.memory_used,
            "maxdisk": node.rootfs_total,
            "disk": node.rootfs_used,
            "uptime": node.uptime,
        }

    def node_entry(self, node: Node, *, with_stats: bool) -> dict[str, Any]:
        """``API2Tools::extract_node_stats``: ``level`` and maxima need RRD data (fresh < 5 min), current
        values need the node online, stats need ``Sys.Audit``."""
        entry: dict[str, Any] = {"id": f"node/{node.name}", "node": node.name, "type": "node"}
        if node.online or node.rrd_fresh:
            entry["status"] = "online" if node.online else "offline"
            entry["level"] = node.level
            if with_stats:
                stats = self._node_stats(node)
                entry.update(
                    stats if node.online else {k: v for k, v in stats.items() if k.startswith("max")}
                )
        else:
            entry["status"] = "offline"
        return entry

    def nodes(self, subject: Subject, local_fingerprint: str) -> list[dict[str, Any]]:
        out = []
        for node in self.t.nodes.values():
            entry = self.node_entry(
                node, with_stats=self.perms.has(subject, f"/nodes/{node.name}", "Sys.Audit")
            )
            if self.p.ssl_fingerprint:
                fingerprint = local_fingerprint if node.name == self.t.entry_node else node.ssl_fingerprint
                entry["ssl_fingerprint"] = fingerprint or node.ssl_fingerprint
            out.append(entry)
        return out

    def node_status(self, node: Node) -> dict[str, Any]:
        p = self.p
        cpuinfo: dict[str, Any] = {
            "user_hz": 100,
            "model": node.cpu_model,
            "mhz": node.mhz,
            "cpus": node.cpus,
            "sockets": node.sockets,
        }
        if p.cpuinfo_hvm_string:
            cpuinfo["hvm"] = "1"
        else:
            cpuinfo["hvm"] = 1
        if p.cpuinfo_flags:
            cpuinfo["flags"] = (
                "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush dts acpi "
                "mmx fxsr sse sse2 ss ht tm pbe syscall nx pdpe1gb rdtscp lm constant_tsc vmx smx est tm2 "
                "ssse3 fma cx16 xtpr pdcm pcid dca sse4_1 sse4_2 x2apic movbe popcnt aes xsave avx f16c"
            )
        if p.cpuinfo_cores:
            cpuinfo["cores"] = max(1, node.cpus // 2)
        memory: dict[str, Any] = {
            "total": node.memory_total,
            "used": node.memory_used,
            "free": node.memory_total - node.memory_used,
        }
        if p.memory_available:
            memory["available"] = node.memory_total - node.memory_used + 4 * GIB
        data: dict[str, Any] = {
            "uptime": node.uptime,
            "idle": 0,
            "loadavg": list(node.loadavg),
            "kversion": f"Linux {p.kernel} {p.kernel_version}",
            "cpu": node.cpu,
            "wait": 0.0012,
            "memory": memory,
            "swap": {
                "total": node.swap_total,
                "used": node.swap_used,
                "free": node.swap_total - node.swap_used,
            },
            "ksm": {"shared": 0},
            "rootfs": {
                "total": node.rootfs_total,
                "avail": node.rootfs_total - node.rootfs_used,
                "used": node.rootfs_used,
                "free": node.rootfs_total - node.rootfs_used,
            },
            "pveversion": p.pveversion,
            "cpuinfo": cpuinfo,
        }
        if p.node_boot_info:
            data["current-kernel"] = {
                "sysname": "Linux",
                "release": p.kernel,
                "version": p.kernel_version,
                "machine": "x86_64",
            }
            boot: dict[str, Any] = {"mode": node.boot_mode}
            if node.boot_mode == "efi":
                boot["secureboot"] = node.secureboot
            data["boot-info"] = boot
        return data

    # --- /cluster/resources -----------------------------------------------------------------------
    def _guest_resource(self, g: Guest, node_online: bool) -> dict[str, Any]:
        p = self.p
        entry: dict[str, Any] = {"id": g.id, "type": g.kind, "vmid": g.vmid, "node": g.node}
        if not node_online:
            entry["status"] = "unknown"
        else:
            running = g.running
            entry.update(
                {
                    "status": "running" if running else "stopped",
                    "name": g.name or f"VM {g.vmid}" if g.kind == "qemu" else g.name or f"CT{g.vmid}",
                    "uptime": g.uptime if running else 0,
                    "template": int(g.template),
                    "maxcpu": min(g.vcpu_count, self.t.nodes[g.node].cpus),
                    "cpu": g.cpu_usage if running else 0,
                    "maxmem": g.memory * MIB,
                    "mem": g.mem_used if running else 0,
                    "maxdisk": g.disk,
                    "disk": g.disk_used if g.kind == "lxc" and running else 0,
                    "netin": g.netin if running else 0,
                    "netout": g.netout if running else 0,
                    "diskread": g.diskread if running else 0,
                    "diskwrite": g.diskwrite if running else 0,
                }
            )
            if p.memhost and g.kind == "qemu":
                entry["memhost"] = g.mem_used if running else 0
        if g.hastate:
            entry["hastate"] = g.hastate
        lock = g.effective_lock
        if lock and p.resources_lock:
            entry["lock"] = lock
        if g.tags and p.resources_tags:
            entry["tags"] = ";".join(g.tags)
        return entry

    def _resources_all(self) -> list[tuple[str, dict[str, Any], str | None]]:
        """Every entry once per topology generation: (kind, entry, acl path needed or None).

        Order and fields as ``PVE/API2/Cluster.pm`` builds them: pools (with stats summed over running
        members), guests sorted by vmid *as strings*, nodes in node-list order, then storages by id × node.
        """
        gen = self.t.generation
        if self._resources_base is not None and self._resources_base[0] == gen:
            return self._resources_base[1]
        p = self.p
        out: list[tuple[str, dict[str, Any], str | None]] = []
        pool_entries: dict[str, dict[str, Any]] = {}
        for pool in sorted(self.t.pools):
            pool_entry: dict[str, Any] = {"id": f"/pool/{pool}", "pool": pool, "type": "pool"}
            pool_entries[pool] = pool_entry
            out.append(("pool", pool_entry, f"/pool/{pool}"))
        for vmid in sorted(self.t.guests, key=str):
            g = self.t.guests[vmid]
            node = self.t.nodes[g.node]
            entry = self._guest_resource(g, node.online or node.rrd_fresh)
            member_of = pool_entries.get(g.pool) if g.pool else None
            if member_of is not None and entry.get("uptime"):
                self._add_pool_stats(member_of, entry)
            out.append(("vm", entry, f"/vms/{vmid}"))
        for node in self.t.nodes.values():
            entry = self.node_entry(node, with_stats=True)
            if p.cgroup_mode and node.online:
                entry["cgroup-mode"] = node.cgroup_mode
            out.append(("node", entry, f"/nodes/{node.name}"))
        storage_ids = sorted({st.storage for node in self.t.nodes.values() for st in node.storages})
        for sid in storage_ids:
            for node in self.t.nodes.values():
                st = next((x for x in node.storages if x.storage == sid), None)
                if st is None:
                    continue
                entry = {
                    "id": f"storage/{node.name}/{sid}",
                    "storage": sid,
                    "node": node.name,
                    "type": "storage",
                }
                if p.storage_plugintype:
                    entry["plugintype"] = st.plugintype
                entry["status"] = "unknown"
                if p.storage_shared:
                    entry["shared"] = int(st.shared)
                if p.storage_content:
                    entry["content"] = st.content
                if node.online:
                    entry["maxdisk"] = st.total
                    entry["disk"] = st.used
                    entry["status"] = "available"
                out.append(("storage", entry, f"/storage/{sid}"))
        self._resources_base = (gen, out)
        return out

    @staticmethod
    def _add_pool_stats(pe: dict[str, Any], entry: dict[str, Any]) -> None:
        """Pool entries sum the stats of their running members (Cluster.pm, since 2012)."""
        pe["uptime"] = max(pe.get("uptime", 0), entry["uptime"])
        pe["mem"] = pe.get("mem", 0) + entry["mem"]
        pe["maxmem"] = pe.get("maxmem", 0) + entry["maxmem"]
        cpu, maxcpu = pe.get("cpu", 0), pe.get("maxcpu", 0)
        total = maxcpu + entry["maxcpu"]
        pe["cpu"] = (cpu * maxcpu + entry["cpu"] * entry["maxcpu"]) / total if total else 0
        pe["maxcpu"] = total

    def cluster_resources(self, subject: Subject, kind: str | None) -> list[dict[str, Any]]:
        pool_priv = "Pool.Audit" if self.p.pool_audit else "Pool.Allocate"
        out: list[dict[str, Any]] = []
        for entry_kind, entry, acl_path in self._resources_all():
            if kind is not None and entry_kind != kind:
                continue
            if entry_kind == "pool":
                if kind is None and acl_path and self.perms.has(subject, acl_path, pool_priv):
                    out.append(entry)
            elif entry_kind == "vm":
                if acl_path and self.perms.has(subject, acl_path, "VM.Audit"):
                    pool = self.t.guests[entry["vmid"]].pool
                    if pool is not None and (
                        not self.p.pool_audit or self.perms.has(subject, f"/pool/{pool}", "Pool.Audit")
                    ):
                        out.append({**entry, "pool": pool})
                    else:
                        out.append(entry)
            elif entry_kind == "node":
                if acl_path and self.perms.has(subject, acl_path, "Sys.Audit"):
                    out.append(entry)
                else:
                    out.append(
                        {k: v for k, v in entry.items() if k in ("id", "type", "node", "status", "level")}
                    )
            elif (
                entry_kind == "storage" and acl_path and self.perms.has(subject, acl_path, "Datastore.Audit")
            ):
                out.append(entry)
        return out

    def cluster_resources_body(self, subject: Subject, kind: str | None) -> bytes:
        """The whole response body, cached per subject, filter and topology generation."""
        with self.t.lock:
            key = (subject.auth_id, kind, self.t.generation)
            body = self._resources_cache.get(key)
            if body is None:
                if len(self._resources_cache) > 256:
                    self._resources_cache.clear()
                data = self.cluster_resources(subject, kind)
                body = json.dumps({"data": data}, separators=(",", ":")).encode()
                self._resources_cache[key] = body
            return body

    # --- guest lists ------------------------------------------------------------------------------
    def _visible(self, node: str, kind: str, subject: Subject) -> list[Guest]:
        return [
            g
            for g in sorted(self.t.guests_on(node), key=lambda g: g.vmid)
            if g.kind == kind and self.perms.has(subject, f"/vms/{g.vmid}", "VM.Audit")
        ]

    def _qemu_vmstatus(self, g: Guest) -> dict[str, Any]:
        p = self.p
        running = g.running
        item: dict[str, Any] = {
            "vmid": g.vmid,
            "name": g.name or f"VM {g.vmid}",
            "status": "running" if running else "stopped",
            "uptime": g.uptime if running else 0,
            "cpus": min(g.vcpu_count, self.t.nodes[g.node].cpus),
            "cpu": g.cpu_usage if running else 0,
            "maxmem": g.memory * MIB,
            "mem": g.mem_used if running else 0,
            "maxdisk": g.disk,
            "disk": 0,
            "netin": g.netin if running else 0,
            "netout": g.netout if running else 0,
            "diskread": g.diskread if running else 0,
            "diskwrite": g.diskwrite if running else 0,
        }
        if running:
            item["pid"] = 10000 + g.vmid
        elif p.qemu_list_legacy_types:
            item["pid"] = None
        if g.template:
            item["template"] = 1
        elif p.qemu_list_legacy_types:
            item["template"] = ""
        lock = g.effective_lock
        if lock and p.guest_lock_in_lists:
            item["lock"] = lock
        if g.tags and p.guest_tags:
            item["tags"] = g.tag_separator.join(g.tags)
        if p.memhost:
            item["memhost"] = g.mem_used if running else 0
        return item

    @staticmethod
    def qmpstatus(g: Guest) -> str:
        return g.state if g.running else "stopped"

    def _running_machine(self, item: dict[str, Any]) -> None:
        if self.p.running_machine:
            item["running-machine"] = "pc-i440fx-8.1+pve0" if self.p.at_least(8, 0) else "pc-i440fx-5.2+pve0"
            item["running-qemu"] = "8.1.5" if self.p.at_least(8, 0) else "5.2.0"

    def qemu_list(self, node: str, subject: Subject, *, full: bool) -> list[dict[str, Any]]:
        out = []
        for g in self._visible(node, "qemu", subject):
            item = self._qemu_vmstatus(g)
            if full and g.running:
                item["qmpstatus"] = self.qmpstatus(g)
                self._running_machine(item)
            out.append(item)
        return out

    def _lxc_vmstatus(self, g: Guest) -> dict[str, Any]:
        p = self.p
        running = g.running
        disk: int | str = g.disk_used if running else 0
        maxdisk: int | str = g.disk
        if running and p.lxc_disk_string:
            disk, maxdisk = str(disk), str(maxdisk)
        item: dict[str, Any] = {
            "vmid": str(g.vmid) if p.lxc_vmid_string else g.vmid,
            "name": g.name or f"CT{g.vmid}",
            "status": "running" if running else "stopped",
            "type": "lxc",
            "cpus": g.cores,
            "cpu": g.cpu_usage if running else 0,
            "maxmem": g.memory * MIB,
            "mem": g.mem_used if running else 0,
            "maxswap": g.swap * MIB,
            "swap": 0,
            "maxdisk": maxdisk,
            "disk": disk,
            "netin": g.netin if running else 0,
            "netout": g.netout if running else 0,
            "diskread": g.diskread if running else 0,
            "diskwrite": g.diskwrite if running else 0,
            "uptime": g.uptime if running else 0,
        }
        if running:
            item["pid"] = 20000 + g.vmid
        if g.template:
            item["template"] = 1
        lock = g.effective_lock
        if lock and p.guest_lock_in_lists:
            item["lock"] = lock
        if g.tags and p.guest_tags:
            item["tags"] = g.tag_separator.join(g.tags)
        return item

    def lxc_list(self, node: str, subject: Subject) -> list[dict[str, Any]]:
        return [self._lxc_vmstatus(g) for g in self._visible(node, "lxc", subject)]

    # --- guest status / config --------------------------------------------------------------------
    def qemu_status(self, g: Guest) -> dict[str, Any]:
        p = self.p
        item = self._qemu_vmstatus(g)
        item["qmpstatus"] = self.qmpstatus(g)
        item["ha"] = {"managed": 1 if g.hastate else 0}
        if g.hastate:
            item["ha"]["state"] = g.hastate
        if g.agent_enabled:
            item["agent"] = 1
        if p.status_clipboard:
            item["clipboard"] = None
        if g.running:
            self._running_machine(item)
            item["balloon"] = g.memory * MIB
            item["freemem"] = g.memory * MIB - g.mem_used
        if not g.running and p.stopped_status_without_vmid:
            del item["vmid"]
        return item

    def qemu_config(self, g: Guest) -> dict[str, Any]:
        p = self.p
        cfg: dict[str, Any] = {}
        if g.name:
            cfg["name"] = g.name
        if p.qemu_memory_string:
            cfg["memory"] = f"current={g.memory}" if g.memory_style == "current" else str(g.memory)
        else:
            cfg["memory"] = g.memory
        cfg["cores"] = g.cores
        cfg["sockets"] = g.sockets
        if g.vcpus:
            cfg["vcpus"] = g.vcpus
        if g.cpulimit is not None:
            cfg["cpulimit"] = str(g.cpulimit)
        if g.balloon is not None:
            cfg["balloon"] = g.balloon
        cfg["cpu"] = "x86-64-v2-AES" if p.at_least(8, 0) else "kvm64"
        cfg["ostype"] = g.ostype
        cfg["scsihw"] = "virtio-scsi-pci"
        cfg["scsi0"] = f"local-lvm:vm-{g.vmid}-disk-0,size={g.disk // GIB}G"
        cfg["boot"] = "order=scsi0;net0" if p.at_least(6, 3) else "cdn"
        for index, nic in enumerate(g.nics):
            cfg[f"net{index}"] = f"{nic.model}={nic.mac},bridge={nic.bridge},firewall=1"
        cfg["numa"] = 0
        cfg["onboot"] = 1
        cfg["smbios1"] = f"uuid={g.smbios_uuid}"
        if g.vmgenid:
            cfg["vmgenid"] = g.vmgenid
        if g.agent is not None:
            cfg["agent"] = g.agent
        if g.tags and p.guest_tags:
            cfg["tags"] = g.tag_separator.join(g.tags)
        if g.template:
            cfg["template"] = 1
        lock = g.effective_lock
        if lock:
            cfg["lock"] = lock
        if p.at_least(7, 0):
            cfg["meta"] = (
                "creation-qemu=8.1.5,ctime=1700000000"
                if p.at_least(8, 0)
                else "creation-qemu=6.0.0,ctime=1625000000"
            )
        cfg["digest"] = _digest(json.dumps(cfg, sort_keys=True))
        return cfg

    def lxc_status(self, g: Guest) -> dict[str, Any]:
        item = self._lxc_vmstatus(g)
        item["ha"] = {"managed": 1 if g.hastate else 0}
        return item

    def _lxc_net(self, index: int, g: Guest) -> str:
        nic = g.nics[index]
        parts = [f"name={nic.name}", f"bridge={nic.bridge}", f"hwaddr={nic.mac}"]
        if nic.ip:
            parts.append(f"ip={nic.ip}")
        if nic.gw:
            parts.append(f"gw={nic.gw}")
        if nic.ip6:
            parts.append(f"ip6={nic.ip6}")
        parts.append("type=veth")
        return ",".join(parts)

    def lxc_config(self, g: Guest) -> dict[str, Any]:
        p = self.p
        cfg: dict[str, Any] = {
            "arch": "amd64",
            "ostype": g.ostype,
            "memory": g.memory,
            "swap": g.swap,
            "cores": g.cores,
            "rootfs": f"local-lvm:vm-{g.vmid}-disk-0,size={g.disk // GIB}G",
            "unprivileged": 1,
        }
        if g.name:
            cfg["hostname"] = g.name
        if g.cpulimit is not None:
            cfg["cpulimit"] = str(g.cpulimit)
        for index in range(len(g.nics)):
            cfg[f"net{index}"] = self._lxc_net(index, g)
        if g.tags and p.guest_tags:
            cfg["tags"] = g.tag_separator.join(g.tags)
        if g.template:
            cfg["template"] = 1
        if g.lock:
            cfg["lock"] = g.lock
        cfg["digest"] = _digest(json.dumps(cfg, sort_keys=True))
        return cfg

    def lxc_interfaces(self, g: Guest) -> list[dict[str, Any]] | None:
        if not g.running:
            return None
        ifaces: list[tuple[str, str, list[tuple[str, str, int]]]] = [
            ("lo", "00:00:00:00:00:00", [("127.0.0.1", "inet", 8), ("::1", "inet6", 128)])
        ]
        for nic in g.nics:
            addrs: list[tuple[str, str, int]] = []
            if nic.address:
                ip, _, prefix = nic.address.partition("/")
                addrs.append((ip, "inet", int(prefix or 24)))
            addrs.append((link_local(nic.mac), "inet6", 64))
            ifaces.append((nic.name, nic.mac.lower(), addrs))
        out = []
        for name, mac, addrs in ifaces:
            item: dict[str, Any] = {"name": name, "hwaddr": mac}
            for address, family, plen in addrs:
                item[family] = f"{address}/{plen}"  # only the last address per family survives (8.1–8.3)
            if self.p.lxc_interfaces_ip_addresses:
                item["hardware-address"] = mac
                item["ip-addresses"] = [
                    {"ip-address": a, "ip-address-type": fam, "prefix": n} for a, fam, n in addrs
                ]
            out.append(item)
        return out

    # --- guest agent ------------------------------------------------------------------------------
    def agent_result(self, g: Guest, command: str) -> Any:
        if command == "network-get-interfaces":
            return self._agent_interfaces(g)
        if command == "get-osinfo":
            return dict(_AGENT_OS.get(g.ostype, _AGENT_OS["l26"]))
        if command == "get-host-name":
            return {"host-name": g.name or f"vm{g.vmid}"}
        if command == "ping":
            return {}
        if command == "info":
            return {"version": "7.2.0", "supported_commands": []}
        return {}

    def _agent_interfaces(self, g: Guest) -> list[dict[str, Any]]:
        windows = g.ostype.startswith("win")
        stats = self.p.qga_statistics

        def iface(
            name: str, mac: str | None, addrs: list[tuple[str, str, int]], traffic: int
        ) -> dict[str, Any]:
            item: dict[str, Any] = {"name": name}
            if mac is not None:
                item["hardware-address"] = mac
            item["ip-addresses"] = [
                {"ip-address": ip, "ip-address-type": family, "prefix": prefix}
                for ip, family, prefix in addrs
            ]
            if stats:
                item["statistics"] = {
                    "rx-bytes": traffic,
                    "rx-dropped": 0,
                    "rx-errs": 0,
                    "rx-packets": traffic // 1000,
                    "tx-bytes": traffic // 2,
                    "tx-dropped": 0,
                    "tx-errs": 0,
                    "tx-packets": traffic // 2000,
                }
            return item

        loop = [("127.0.0.1", "ipv4", 8), ("::1", "ipv6", 128)]
        out = [
            iface(
                "Loopback Pseudo-Interface 1" if windows else "lo",
                None if windows else "00:00:00:00:00:00",
                loop,
                4096,
            )
        ]
        for index, nic in enumerate(g.nics):
            addrs: list[tuple[str, str, int]] = []
            if nic.address:
                ip, _, prefix = nic.address.partition("/")
                addrs.append((ip, "ipv4", int(prefix or 24)))
            if g.ipv6:
                addrs.append((f"fd00:10:{g.vmid // 65536:x}:{g.vmid % 65536:x}::{index + 10:x}", "ipv6", 64))
            addrs.append((link_local(nic.mac), "ipv6", 64))
            name = ("Ethernet" if index == 0 else f"Ethernet {index + 1}") if windows else f"ens{18 + index}"
            out.append(iface(name, nic.mac.lower(), addrs, g.netin))
        if g.docker and not windows:
            mac = "02:42:" + ":".join(f"{(g.vmid >> s) & 0xFF:02x}" for s in (24, 16, 8, 0))
            out.append(
                iface("docker0", mac, [("172.17.0.1", "ipv4", 16), (link_local(mac), "ipv6", 64)], 1024)
            )
            # a container's host-side veth: QGA reports it without any "ip-addresses" (pve-notes §8a)
            veth = iface(f"veth{g.vmid % 0xFFFF:04x}a1", "6a:" + mac[3:], [], 512)
            del veth["ip-addresses"]
            out.append(veth)
        return out
