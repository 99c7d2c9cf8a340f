"""Pure mapping from PVE JSON (any version 5.0 - 9.x) to normalized-v1 records.

No I/O and no HTTP here. Every function tolerates the type drift PVE shows across versions: numbers as
strings, booleans as 0/1/""/absent, nulls, memory as int / "4096" / "current=4096", agent property strings,
tag separators ``;``/``,``/space, version strings ``x.y`` / ``x.y-N`` / ``x.y.z``. Values an inventory cannot
do without (a guest's vmid and node, a node's name) are checked strictly and fail with ``PVE_PARSE_ERROR``.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from asset_ledger.contract import LedgerError

MIB = 1024 * 1024
GUEST_TYPES = ("qemu", "lxc")
_VERSION_RE = re.compile(r"^\s*(\d+)\.(\d+)")
_MAC_RE = re.compile(r"([0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5})")
_NET_KEY_RE = re.compile(r"^net(\d+)$")
_IPCONFIG_KEY_RE = re.compile(r"^ipconfig(\d+)$")

#: QMP run states (``qmpstatus``) of a VM whose status is ``running`` -> normalized power_state.
QMP_POWER_STATES: dict[str, str] = {
    "running": "running",
    "paused": "paused",
    "suspended": "suspended",
    "prelaunch": "starting",
    "inmigrate": "starting",
    "postmigrate": "paused",
    "finish-migrate": "paused",
    "io-error": "paused",
    "internal-error": "paused",
    "guest-panicked": "paused",
    "watchdog": "paused",
    "shutdown": "paused",
    "save-vm": "paused",
    "restore-vm": "starting",
    "debug": "paused",
    "colo": "running",
}


def parse_error(message: str, **context: Any) -> LedgerError:
    return LedgerError("PVE_PARSE_ERROR", message, context=context or None)


# -- scalar helpers ------------------------------------------------------------------------------------


def to_int(value: Any) -> int | None:
    """An int from an int, an integral float or a numeric string (``"4096"``, ``"2395.000"``); else None."""
    if value is None or isinstance(value, bool):
        return None if value is None else int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if math.isfinite(value) else None
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        try:
            return int(text)
        except ValueError:
            pass
        try:
            number = float(text)
        except ValueError:
            return None
        return int(number) if math.isfinite(number) else None
    return None


def to_bool(value: Any) -> bool | None:
    """True/False from 1/0, ``"1"``/``""``, ``yes``/``no``, ``on``/``off``, true/false; None when absent."""
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("1", "yes", "on", "true"):
            return True
        if text in ("", "0", "no", "off", "false"):
            return False
    return None


def text(value: Any) -> str | None:
    """A non-empty string, or None."""
    if isinstance(value, str):
        stripped = value.strip()
        return stripped or None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def parse_version(value: Any) -> tuple[int, int] | None:
    """(major, minor) from ``"5.4"``, ``"6.4-13"``, ``"8.2.4"``, ``"6.0-0+1"``; None when unparseable."""
    if not isinstance(value, str):
        return None
    match = _VERSION_RE.match(value)
    if not match:
        return None
    return int(match.group(1)), int(match.group(2))


def parse_property_string(value: Any, default_key: str | None = None) -> dict[str, str]:
    """``"1,fstrim_cloned_disks=1"`` -> ``{default_key: "1", "fstrim_cloned_disks": "1"}``."""
    result: dict[str, str] = {}
    if value is None:
        return result
    if isinstance(value, bool | int | float):
        if default_key:
            result[default_key] = str(int(value)) if isinstance(value, bool) else str(value)
        return result
    if not isinstance(value, str):
        return result
    for part in value.split(","):
        item = part.strip()
        if not item:
            continue
        if "=" in item:
            key, _, val = item.partition("=")
            result[key.strip()] = val.strip()
        elif default_key and default_key not in result:
            result[default_key] = item
    return result


def agent_enabled(value: Any) -> bool:
    """Whether a QEMU config's ``agent`` property (``1``, ``"enabled=1,type=virtio"``, ...) enables it."""
    props = parse_property_string(value, "enabled")
    return bool(to_bool(props.get("enabled")))


def memory_mib(value: Any) -> int | None:
    """QEMU/LXC config ``memory`` in MiB: ``2048``, ``"2048"``, ``"current=2048"``, ``"2048,..."``."""
    direct = to_int(value)
    if direct is not None:
        return direct
    props = parse_property_string(value, "current")
    return to_int(props.get("current"))


def split_tags(value: Any) -> list[str]:
    """Tags from ``"a;b"``, ``"a, b"``, ``"a b"`` or a list; unique, in order."""
    items: Iterable[Any]
    if isinstance(value, str):
        items = re.split(r"[;,\s]+", value)
    elif isinstance(value, list):
        items = value
    else:
        return []
    seen: list[str] = []
    for item in items:
        tag = text(item)
        if tag and tag not in seen:
            seen.append(tag[:1024])
    return seen


def version_text(pveversion: Any) -> str | None:
    """``"8.2.4"`` from ``"pve-manager/8.2.4/faa8…"``, ``"5.0-23"`` from ``"pve-manager/5.0-23/af42…"``."""
    value = text(pveversion)
    if value is None:
        return None
    parts = value.split("/")
    if len(parts) >= 2 and parts[0] == "pve-manager":
        return text(parts[1])
    return value


# -- IP addresses ----------------------------------------------------------------------------------------


@dataclass
class IpFinding:
    address: str
    source: str
    interface: str | None = None
    kept: bool = True
    reason: str | None = None

    def as_raw(self) -> dict[str, Any]:
        item: dict[str, Any] = {"address": self.address, "source": self.source}
        if self.interface:
            item["interface"] = self.interface
        if not self.kept:
            item["excluded"] = self.reason
        return item


def classify_ip(raw: Any, source: str, interface: str | None = None) -> IpFinding | None:
    """An address (CIDR suffix and zone removed) with whether it belongs in ``ip_addresses``."""
    value = text(raw)
    if value is None:
        return None
    value = value.split("/", 1)[0].split("%", 1)[0]
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        return None
    finding = IpFinding(str(ip), source, interface)
    if ip.is_loopback:
        finding.kept, finding.reason = False, "loopback"
    elif ip.is_link_local:
        finding.kept, finding.reason = False, "link-local"
    elif ip.is_unspecified or ip.is_multicast:
        finding.kept, finding.reason = False, "not a host address"
    return finding


def ips_from_agent(result: Any) -> list[IpFinding]:
    """Addresses from a QGA ``network-get-interfaces`` result list (interfaces may lack any key)."""
    found: list[IpFinding] = []
    if not isinstance(result, list):
        return found
    for iface in result:
        if not isinstance(iface, Mapping):
            continue
        name = text(iface.get("name"))
        addresses = iface.get("ip-addresses")
        if not isinstance(addresses, list):
            continue
        for addr in addresses:
            if isinstance(addr, Mapping):
                finding = classify_ip(addr.get("ip-address"), "qemu_guest_agent", name)
                if finding:
                    found.append(finding)
    return found


def ips_from_lxc_interfaces(data: Any) -> list[IpFinding]:
    """Addresses from ``/lxc/{vmid}/interfaces``: 8.1-8.3 ``inet``/``inet6`` CIDRs, 8.4+ ``ip-addresses``."""
    found: list[IpFinding] = []
    if not isinstance(data, list):
        return found
    for iface in data:
        if not isinstance(iface, Mapping):
            continue
        name = text(iface.get("name"))
        listed = iface.get("ip-addresses")
        if isinstance(listed, list) and listed:
            for addr in listed:
                if isinstance(addr, Mapping):
                    finding = classify_ip(addr.get("ip-address"), "lxc_interfaces", name)
                    if finding:
                        found.append(finding)
            continue
        for key in ("inet", "inet6"):
            finding = classify_ip(iface.get(key), "lxc_interfaces", name)
            if finding:
                found.append(finding)
    return found


def ips_from_config(config: Mapping[str, Any] | None, guest_type: str) -> list[IpFinding]:
    """Static addresses from a guest config: LXC ``netN: ...,ip=A/N,ip6=...``, QEMU ``ipconfigN: ip=...``."""
    found: list[IpFinding] = []
    if not isinstance(config, Mapping):
        return found
    pattern = _NET_KEY_RE if guest_type == "lxc" else _IPCONFIG_KEY_RE
    for key in sorted(config, key=str):
        if not pattern.match(str(key)):
            continue
        props = parse_property_string(config[key])
        iface = props.get("name") or str(key)
        for prop in ("ip", "ip6"):
            value = props.get(prop)
            if value and value.lower() not in ("dhcp", "auto", "manual"):
                finding = classify_ip(value, "config_static", iface)
                if finding:
                    found.append(finding)
    return found


def macs_from_config(config: Mapping[str, Any] | None, guest_type: str) -> list[str]:
    """MAC addresses of ``netN`` devices (QEMU ``virtio=BC:24:...``, LXC ``hwaddr=...``), lower case."""
    macs: list[str] = []
    if not isinstance(config, Mapping):
        return macs
    for key in sorted(config, key=str):
        if not _NET_KEY_RE.match(str(key)):
            continue
        value = config[key]
        if not isinstance(value, str):
            continue
        props = parse_property_string(value)
        candidate = props.get("hwaddr") if guest_type == "lxc" else None
        if candidate is None:
            match = _MAC_RE.search(value)
            candidate = match.group(1) if match else None
        if candidate and _MAC_RE.fullmatch(candidate):
            mac = candidate.lower()
            if mac not in macs:
                macs.append(mac)
    return macs


def kept_addresses(findings: Iterable[IpFinding]) -> list[str]:
    out: list[str] = []
    seen: set[str] = set()
    for finding in findings:
        if finding.kept and finding.address not in seen:
            seen.add(finding.address)
            out.append(finding.address)
    return out


# -- enumeration payloads (strict) -----------------------------------------------------------------------


@dataclass
class ResourceGuest:
    guest_type: str
    vmid: int
    node: str
    entry: dict[str, Any]

    @property
    def external_id(self) -> str:
        return f"{self.guest_type}/{self.vmid}"


@dataclass
class Resources:
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    guests: list[ResourceGuest] = field(default_factory=list)
    pools: dict[str, list[str]] = field(default_factory=dict)


def parse_resources(data: Any) -> Resources:
    """``GET /cluster/resources`` -> nodes and guests; wrong shapes or types fail with PVE_PARSE_ERROR."""
    if not isinstance(data, list):
        raise parse_error(
            f"/cluster/resources answered {type(data).__name__} instead of a list", path="/cluster/resources"
        )
    result = Resources()
    seen: set[str] = set()
    for index, entry in enumerate(data):
        if not isinstance(entry, Mapping):
            raise parse_error(
                f"/cluster/resources entry {index} is {type(entry).__name__}, not an object",
                path="/cluster/resources",
            )
        kind = entry.get("type")
        if not isinstance(kind, str):
            raise parse_error(
                f"/cluster/resources entry {index} has no string 'type'", path="/cluster/resources"
            )
        if kind == "node":
            name = entry.get("node")
            if not isinstance(name, str) or not name.strip():
                raise parse_error(
                    f"/cluster/resources node entry {entry.get('id')!r} has no node name",
                    path="/cluster/resources",
                )
            result.nodes[name] = dict(entry)
        elif kind in GUEST_TYPES:
            vmid = to_int(entry.get("vmid"))
            if vmid is None and entry.get("vmid") is None:
                ident = entry.get("id")
                if isinstance(ident, str) and "/" in ident:
                    vmid = to_int(ident.rsplit("/", 1)[1])
            node = entry.get("node")
            if vmid is None or vmid <= 0 or not isinstance(node, str) or not node.strip():
                raise parse_error(
                    f"/cluster/resources guest entry {entry.get('id')!r} has no usable vmid/node "
                    f"(vmid={entry.get('vmid')!r}, node={entry.get('node')!r})",
                    path="/cluster/resources",
                )
            guest = ResourceGuest(kind, vmid, node, dict(entry))
            if guest.external_id in seen:
                continue
            seen.add(guest.external_id)
            result.guests.append(guest)
        elif kind == "pool":
            pool = text(entry.get("pool")) or text(str(entry.get("id", "")).removeprefix("/pool/"))
            if pool:
                result.pools.setdefault(pool, [])
    result.guests.sort(key=lambda g: (g.vmid, g.guest_type))
    return result


@dataclass
class ClusterStatus:
    is_cluster: bool
    name: str | None
    quorate: bool | None
    node_count: int | None
    cluster_entry: dict[str, Any] | None
    nodes: dict[str, dict[str, Any]]


def parse_cluster_status(data: Any) -> ClusterStatus:
    """``GET /cluster/status`` -> cluster name and member nodes; standalone = no ``type: cluster`` entry."""
    if not isinstance(data, list):
        raise parse_error(
            f"/cluster/status answered {type(data).__name__} instead of a list", path="/cluster/status"
        )
    cluster: dict[str, Any] | None = None
    nodes: dict[str, dict[str, Any]] = {}
    for index, entry in enumerate(data):
        if not isinstance(entry, Mapping):
            raise parse_error(f"/cluster/status entry {index} is not an object", path="/cluster/status")
        kind = entry.get("type")
        if kind == "cluster":
            cluster = dict(entry)
        elif kind == "node":
            name = entry.get("name")
            if not isinstance(name, str) or not name.strip():
                raise parse_error(f"/cluster/status node entry {index} has no name", path="/cluster/status")
            nodes[name] = dict(entry)
    if cluster is not None:
        name = text(cluster.get("name"))
        if name is None:
            raise parse_error("/cluster/status cluster entry has no name", path="/cluster/status")
        return ClusterStatus(
            True, name, to_bool(cluster.get("quorate")), to_int(cluster.get("nodes")), cluster, nodes
        )
    return ClusterStatus(False, None, None, None, None, nodes)


def parse_guest_list(data: Any, node: str, guest_type: str) -> dict[int, dict[str, Any]]:
    """``GET /nodes/{node}/qemu|lxc`` -> entries by vmid (vmid may be a string up to PVE 8.1)."""
    path = f"/nodes/{node}/{guest_type}"
    if not isinstance(data, list):
        raise parse_error(f"{path} answered {type(data).__name__} instead of a list", path=path)
    result: dict[int, dict[str, Any]] = {}
    for entry in data:
        if not isinstance(entry, Mapping):
            raise parse_error(f"{path} has an entry that is not an object", path=path)
        vmid = to_int(entry.get("vmid"))
        if vmid is None:
            raise parse_error(f"{path} has an entry without a usable vmid ({entry.get('vmid')!r})", path=path)
        result[vmid] = dict(entry)
    return result


# -- records -------------------------------------------------------------------------------------------


def power_state(
    status: Any, qmpstatus: Any = None, lock: Any = None, *, node_online: bool = True
) -> tuple[str, str | None]:
    """(power_state, status_detail) from PVE ``status``, ``qmpstatus`` and config/list ``lock``."""
    if not node_online:
        return "unknown", "node offline"
    state = text(status)
    qmp = text(qmpstatus)
    lock_text = text(lock)
    if state == "running":
        if qmp is None or qmp == "running":
            return "running", None
        mapped = QMP_POWER_STATES.get(qmp)
        if mapped is None:
            return "running", qmp
        return mapped, (qmp if mapped != qmp else None)
    if state == "stopped":
        if lock_text == "suspended":
            return "suspended", "hibernated"
        if lock_text == "suspending":
            return "stopped", "suspending"
        return "stopped", None
    if state == "paused":  # not emitted by PVE's status, but harmless to accept
        return "paused", None
    return "unknown", state


def _put(target: dict[str, Any], key: str, value: Any) -> None:
    if value is None or value in ([], {}):
        return
    if isinstance(value, str):
        value = value[:1024]
    target[key] = value


def _positive(value: Any) -> int | None:
    number = to_int(value)
    return number if number is not None and number > 0 else None


def guest_cpu_count(
    guest_type: str, config: Mapping[str, Any] | None, entry: Mapping[str, Any]
) -> int | None:
    if isinstance(config, Mapping):
        if guest_type == "qemu":
            vcpus = _positive(config.get("vcpus"))
            if vcpus:
                return vcpus
            return (_positive(config.get("sockets")) or 1) * (_positive(config.get("cores")) or 1)
        lxc_cores = _positive(config.get("cores"))
        if lxc_cores:
            return lxc_cores
    maxcpu = to_int(entry.get("maxcpu"))
    if maxcpu is None:
        maxcpu = to_int(entry.get("cpus"))
    return maxcpu if maxcpu is not None and maxcpu >= 0 else None


def guest_memory_bytes(config: Mapping[str, Any] | None, entry: Mapping[str, Any]) -> int | None:
    if isinstance(config, Mapping):
        mib = memory_mib(config.get("memory"))
        if mib is None and config:
            mib = 512  # PVE's default when the key is absent
        if mib is not None and mib >= 0:
            return mib * MIB
    maxmem = to_int(entry.get("maxmem"))
    return maxmem if maxmem is not None and maxmem >= 0 else None


def guest_normalized(
    guest: ResourceGuest,
    *,
    config: Mapping[str, Any] | None,
    list_entry: Mapping[str, Any] | None,
    node_online: bool,
    ip_findings: list[IpFinding],
) -> dict[str, Any]:
    """normalized-v1 for one QEMU VM or LXC container."""
    entry = guest.entry
    cfg: Mapping[str, Any] = config if isinstance(config, Mapping) else {}
    listed: Mapping[str, Any] = list_entry if isinstance(list_entry, Mapping) else {}
    name = (
        text(cfg.get("name"))
        or text(cfg.get("hostname"))
        or text(entry.get("name"))
        or text(listed.get("name"))
    )
    identity: dict[str, Any] = {"cloud_native_id": str(guest.vmid)}
    _put(identity, "hostname", name)
    smbios = parse_property_string(cfg.get("smbios1"))
    _put(identity, "machine_uuid", text(smbios.get("uuid")))

    hardware: dict[str, Any] = {}
    _put(hardware, "cpu_count", guest_cpu_count(guest.guest_type, config, entry))
    _put(hardware, "memory_bytes", guest_memory_bytes(config, entry))

    status = listed.get("status") if node_online and listed.get("status") else entry.get("status")
    qmp = listed.get("qmpstatus") if node_online else None
    lock = cfg.get("lock") or listed.get("lock") or entry.get("lock")
    state, detail = power_state(status, qmp, lock, node_online=node_online)
    runtime: dict[str, Any] = {"power_state": state}
    _put(runtime, "status_detail", detail)
    uptime = to_int(listed.get("uptime") if listed else entry.get("uptime"))
    if uptime is not None and uptime > 0 and state not in ("stopped", "unknown"):
        runtime["uptime_seconds"] = uptime

    network: dict[str, Any] = {}
    _put(network, "ip_addresses", kept_addresses(ip_findings))
    _put(network, "mac_addresses", macs_from_config(cfg, guest.guest_type))

    virtualization: dict[str, Any] = {"type": guest.guest_type}
    template = to_bool(cfg.get("template"))
    if template is None:
        template = to_bool(entry.get("template"))
    if template is None:
        template = to_bool(listed.get("template"))
    virtualization["template"] = bool(template)
    tags = split_tags(cfg.get("tags")) or split_tags(entry.get("tags")) or split_tags(listed.get("tags"))
    _put(virtualization, "tags", tags)
    _put(virtualization, "pool", text(entry.get("pool")))
    hastate = text(entry.get("hastate"))
    if hastate is not None:
        virtualization["ha_managed"] = True

    record: dict[str, Any] = {"kind": "vm", "identity": identity, "runtime": runtime}
    _put(record, "hardware", hardware)
    _put(record, "network", network)
    record["virtualization"] = virtualization
    return record


def host_normalized(
    name: str,
    *,
    resource: Mapping[str, Any] | None,
    node_status: Mapping[str, Any] | None,
    online: bool,
) -> dict[str, Any]:
    """normalized-v1 for one PVE node. No serial number: the PVE API has no reliable source for one."""
    res: Mapping[str, Any] = resource if isinstance(resource, Mapping) else {}
    status: Mapping[str, Any] = node_status if isinstance(node_status, Mapping) else {}
    cpuinfo = status.get("cpuinfo") if isinstance(status.get("cpuinfo"), Mapping) else {}
    memory = status.get("memory") if isinstance(status.get("memory"), Mapping) else {}
    assert isinstance(cpuinfo, Mapping)
    assert isinstance(memory, Mapping)

    hardware: dict[str, Any] = {}
    cpus = to_int(cpuinfo.get("cpus"))
    if cpus is None:
        cpus = to_int(res.get("maxcpu"))
    _put(hardware, "cpu_count", cpus if cpus is not None and cpus >= 0 else None)
    sockets = to_int(cpuinfo.get("sockets"))
    _put(hardware, "cpu_sockets", sockets if sockets is not None and sockets >= 0 else None)
    _put(hardware, "cpu_model", text(cpuinfo.get("model")))
    mem = to_int(memory.get("total"))
    if mem is None:
        mem = to_int(res.get("maxmem"))
    _put(hardware, "memory_bytes", mem if mem is not None and mem >= 0 else None)

    os_info: dict[str, Any] = {"name": "Proxmox VE"}
    _put(os_info, "version", version_text(status.get("pveversion")))
    kernel = status.get("current-kernel")
    kernel_text = text(kernel.get("release")) if isinstance(kernel, Mapping) else None
    if kernel_text is None:
        kversion = text(status.get("kversion"))
        if kversion:
            parts = kversion.split()
            kernel_text = parts[1] if len(parts) > 1 and parts[0] == "Linux" else kversion
    _put(os_info, "kernel", kernel_text)

    runtime: dict[str, Any]
    if online:
        runtime = {"power_state": "running"}
        uptime = to_int(status.get("uptime"))
        if uptime is None:
            uptime = to_int(res.get("uptime"))
        if uptime is not None and uptime > 0:
            runtime["uptime_seconds"] = uptime
    else:
        runtime = {"power_state": "unknown", "status_detail": "offline"}

    record: dict[str, Any] = {"kind": "host", "identity": {"hostname": name[:1024]}}
    _put(record, "hardware", hardware)
    record["os"] = os_info
    record["runtime"] = runtime
    return record


def cluster_normalized(status: ClusterStatus, node_count: int) -> dict[str, Any]:
    """normalized-v1 for the cluster (caption = cluster name)."""
    cluster: dict[str, Any] = {
        "node_count": status.node_count if status.node_count is not None else node_count
    }
    if status.quorate is not None:
        cluster["quorate"] = status.quorate
    return {"kind": "cluster", "identity": {"caption": str(status.name)[:1024]}, "cluster": cluster}
