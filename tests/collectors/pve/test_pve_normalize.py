"""The pure mapping PVE JSON -> normalized-v1, fed with the shapes each PVE version really emits
(docs: /work/shared/pve-notes.md §7, §8, §10)."""

from __future__ import annotations

from typing import Any

import pytest

from asset_ledger.collectors.pve import normalize as n
from asset_ledger.contract import LedgerError, validate


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (4096, 4096),
        ("4096", 4096),
        ("2395.000", 2395),
        (3.0, 3),
        (None, None),
        ("", None),
        ("x", None),
        (float("nan"), None),
        ([], None),
        (True, 1),
    ],
)
def test_to_int_accepts_numbers_and_numeric_strings(value: Any, expected: int | None) -> None:
    assert n.to_int(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1, True),
        (0, False),
        ("1", True),
        ("", False),
        ("yes", True),
        ("off", False),
        (None, None),
        (True, True),
        ("maybe", None),
    ],
)
def test_to_bool_accepts_every_pve_boolean_spelling(value: Any, expected: bool | None) -> None:
    assert n.to_bool(value) is expected


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("5.4", (5, 4)),
        ("6.4-13", (6, 4)),
        ("8.2.4", (8, 2)),
        ("6.0-0+1", (6, 0)),
        ("9.1.1", (9, 1)),
        ("", None),
        (None, None),
        ("pve", None),
        (15, None),
    ],
)
def test_parse_version_takes_major_minor_from_every_shape(version: Any, expected: Any) -> None:
    assert n.parse_version(version) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1, True),
        (0, False),
        ("1", True),
        ("0", False),
        ("1,fstrim_cloned_disks=1", True),
        ("enabled=1,type=virtio", True),
        ("enabled=0", False),
        ("1,freeze-fs-on-backup=0", True),
        ("yes", True),
        (None, False),
        ("", False),
    ],
)
def test_agent_property_string(value: Any, expected: bool) -> None:
    assert n.agent_enabled(value) is expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [(2048, 2048), ("2048", 2048), ("current=4096", 4096), ("4096,hotplug=1", 4096), (None, None)],
)
def test_memory_in_every_config_shape(value: Any, expected: int | None) -> None:
    assert n.memory_mib(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("a;b", ["a", "b"]),
        ("one, two, three", ["one", "two", "three"]),
        ("x y x", ["x", "y"]),
        (None, []),
        (["p", "q"], ["p", "q"]),
        (";", []),
    ],
)
def test_tags_with_every_separator(value: Any, expected: list[str]) -> None:
    assert n.split_tags(value) == expected


@pytest.mark.parametrize(
    ("status", "qmp", "lock", "expected"),
    [
        ("running", "running", None, ("running", None)),
        ("running", None, None, ("running", None)),
        ("running", "paused", None, ("paused", None)),
        ("running", "suspended", None, ("suspended", None)),
        ("running", "prelaunch", None, ("starting", "prelaunch")),
        ("running", "io-error", None, ("paused", "io-error")),
        ("stopped", "stopped", None, ("stopped", None)),
        ("stopped", None, "suspended", ("suspended", "hibernated")),
        ("unknown", None, None, ("unknown", "unknown")),
        (None, None, None, ("unknown", None)),
    ],
)
def test_power_state_from_status_qmpstatus_and_lock(status: Any, qmp: Any, lock: Any, expected: Any) -> None:
    assert n.power_state(status, qmp, lock) == expected


def test_offline_node_makes_power_state_unknown() -> None:
    assert n.power_state("running", "running", None, node_online=False) == ("unknown", "node offline")


AGENT_RESULT = [
    {
        "name": "lo",
        "hardware-address": "00:00:00:00:00:00",
        "ip-addresses": [
            {"ip-address": "127.0.0.1", "ip-address-type": "ipv4", "prefix": 8},
            {"ip-address": "::1", "ip-address-type": "ipv6", "prefix": 128},
        ],
    },
    {
        "name": "eth0",
        "hardware-address": "bc:24:11:00:00:01",
        "ip-addresses": [
            {"ip-address": "10.1.2.3", "ip-address-type": "ipv4", "prefix": 24},
            {"ip-address": "fe80::be24:11ff:fe00:1%eth0", "ip-address-type": "ipv6", "prefix": 64},
            {"ip-address": "fd8c::3", "ip-address-type": "ipv6", "prefix": 64},
        ],
        "statistics": {"rx-bytes": 1},
    },
    {"name": "docker0"},
]


def test_agent_addresses_exclude_loopback_and_link_local_but_keep_their_source() -> None:
    found = n.ips_from_agent(AGENT_RESULT)
    assert n.kept_addresses(found) == ["10.1.2.3", "fd8c::3"]
    excluded = {f.address: f.reason for f in found if not f.kept}
    assert excluded == {"127.0.0.1": "loopback", "::1": "loopback", "fe80::be24:11ff:fe00:1": "link-local"}
    assert {f.source for f in found} == {"qemu_guest_agent"}


def test_agent_error_result_gives_no_addresses() -> None:
    assert n.ips_from_agent({"error": {"class": "Unsupported", "desc": "x"}}) == []


def test_lxc_interfaces_81_format() -> None:
    data = [
        {"name": "lo", "hwaddr": "00:00:00:00:00:00", "inet": "127.0.0.1/8", "inet6": "::1/128"},
        {
            "name": "eth0",
            "hwaddr": "bc:24:11:89:67:07",
            "inet": "192.168.3.95/22",
            "inet6": "fe80::be24:11ff:fe89:6707/64",
        },
    ]
    assert n.kept_addresses(n.ips_from_lxc_interfaces(data)) == ["192.168.3.95"]


def test_lxc_interfaces_84_format_prefers_the_address_list() -> None:
    data = [
        {
            "name": "eth0",
            "hwaddr": "bc:24:11:89:67:07",
            "hardware-address": "bc:24:11:89:67:07",
            "inet": "192.168.3.95/22",
            "ip-addresses": [
                {"ip-address": "192.168.3.95", "ip-address-type": "inet", "prefix": 22},
                {"ip-address": "192.168.3.96", "ip-address-type": "inet", "prefix": 22},
                {"ip-address": "2001:db8::5", "ip-address-type": "inet6", "prefix": 64},
            ],
        }
    ]
    assert n.kept_addresses(n.ips_from_lxc_interfaces(data)) == [
        "192.168.3.95",
        "192.168.3.96",
        "2001:db8::5",
    ]


def test_lxc_interfaces_of_a_stopped_container_are_null() -> None:
    assert n.ips_from_lxc_interfaces(None) == []


def test_static_addresses_from_lxc_and_qemu_config() -> None:
    lxc = {
        "net0": "name=eth0,bridge=vmbr0,hwaddr=BC:24:11:AA:BB:CC,ip=10.1.1.3/24,gw=10.1.1.1,type=veth",
        "net1": "name=eth1,bridge=vmbr1,ip=dhcp,ip6=2001:db8::7/64",
    }
    found = n.ips_from_config(lxc, "lxc")
    assert n.kept_addresses(found) == ["10.1.1.3", "2001:db8::7"]
    assert {f.source for f in found} == {"config_static"}
    assert n.macs_from_config(lxc, "lxc") == ["bc:24:11:aa:bb:cc"]
    qemu = {"ipconfig0": "ip=192.0.2.10/24,gw=192.0.2.1", "net0": "virtio=BC:24:11:00:00:09,bridge=vmbr0"}
    assert n.kept_addresses(n.ips_from_config(qemu, "qemu")) == ["192.0.2.10"]
    assert n.macs_from_config(qemu, "qemu") == ["bc:24:11:00:00:09"]


# -- per-version guest shapes -------------------------------------------------------------------------

#: (label, /cluster/resources entry, /nodes/{n}/qemu?full=1 entry, config) as the versions emit them.
QEMU_SHAPES: list[tuple[str, dict[str, Any], dict[str, Any] | None, dict[str, Any]]] = [
    (
        "5.0",
        {
            "id": "qemu/101",
            "type": "qemu",
            "vmid": 101,
            "node": "pve",
            "status": "running",
            "name": "web",
            "maxmem": 2147483648,
            "maxcpu": 2,
            "template": 0,
            "uptime": 99,
        },
        {
            "vmid": 101,
            "name": "web",
            "status": "running",
            "pid": "1234",
            "template": "",
            "qmpstatus": "running",
            "uptime": 99,
        },
        {
            "name": "web",
            "memory": 2048,
            "sockets": 1,
            "cores": 2,
            "agent": "1",
            "ostype": "l26",
            "net0": "virtio=BC:24:11:00:00:01,bridge=vmbr0",
            "smbios1": "uuid=0a1b2c3d-0000-4000-8000-000000000001",
        },
    ),
    (
        "6.4",
        {
            "id": "qemu/101",
            "type": "qemu",
            "vmid": 101,
            "node": "pve",
            "status": "running",
            "name": "web",
            "maxmem": 2147483648,
            "maxcpu": 2,
            "template": 0,
            "lock": "backup",
        },
        {"vmid": 101, "status": "running", "qmpstatus": "running", "tags": "one, two"},
        {
            "name": "web",
            "memory": 2048,
            "sockets": 2,
            "cores": 2,
            "vcpus": 3,
            "agent": "enabled=1,type=virtio",
            "tags": "one, two",
        },
    ),
    (
        "8.1",
        {
            "id": "qemu/101",
            "type": "qemu",
            "vmid": 101,
            "node": "pve",
            "status": "running",
            "name": "web",
            "maxmem": 2147483648,
            "maxcpu": 2,
            "template": 0,
            "tags": "a;b",
        },
        {"vmid": 101, "status": "running", "qmpstatus": "running"},
        {
            "name": "web",
            "memory": "current=2048",
            "sockets": 1,
            "cores": 2,
            "agent": "1,freeze-fs-on-backup=0",
            "tags": "a;b",
            "clipboard": None,
        },
    ),
    (
        "9.0",
        {
            "id": "qemu/101",
            "type": "qemu",
            "vmid": 101,
            "node": "pve",
            "status": "running",
            "name": "web",
            "maxmem": 2147483648,
            "maxcpu": 2,
            "template": 0,
            "memhost": 1,
            "pool": "prod",
            "hastate": "started",
        },
        {"vmid": 101, "status": "running", "qmpstatus": "running", "pressurecpusome": 0.1},
        {"name": "web", "memory": "2048", "cores": 2, "agent": "1,freeze-fs=0"},
    ),
]


@pytest.mark.parametrize(("label", "entry", "listed", "config"), QEMU_SHAPES, ids=[s[0] for s in QEMU_SHAPES])
def test_qemu_guest_from_every_version_shape_is_valid_normalized_v1(
    label: str, entry: dict[str, Any], listed: dict[str, Any] | None, config: dict[str, Any]
) -> None:
    resources = n.parse_resources(
        [entry, {"id": "node/pve", "type": "node", "node": "pve", "status": "online"}]
    )
    guest = resources.guests[0]
    found = n.ips_from_agent(AGENT_RESULT)
    record = n.guest_normalized(guest, config=config, list_entry=listed, node_online=True, ip_findings=found)
    assert validate("normalized-v1", record) == []
    assert record["identity"]["hostname"] == "web"
    assert record["identity"]["cloud_native_id"] == "101"
    assert record["hardware"]["memory_bytes"] == 2048 * n.MIB
    expected_cpus = 3 if label == "6.4" else 2
    assert record["hardware"]["cpu_count"] == expected_cpus
    assert record["runtime"]["power_state"] == "running"
    assert record["network"]["ip_addresses"] == ["10.1.2.3", "fd8c::3"]
    assert record["virtualization"]["type"] == "qemu"
    assert record["virtualization"]["template"] is False
    if label == "9.0":
        assert record["virtualization"]["pool"] == "prod"
        assert record["virtualization"]["ha_managed"] is True


def test_lxc_with_string_vmid_and_string_disk_from_old_versions() -> None:
    resources = n.parse_resources(
        [
            {
                "id": "lxc/106",
                "type": "lxc",
                "vmid": "106",
                "node": "pve",
                "status": "stopped",
                "template": "",
                "disk": "744189952",
            }
        ]
    )
    listed = n.parse_guest_list([{"vmid": "106", "status": "stopped", "type": "lxc"}], "pve", "lxc")
    assert 106 in listed
    config = {
        "hostname": "ct1",
        "memory": 512,
        "cores": 1,
        "template": 1,
        "net0": "name=eth0,bridge=vmbr0,hwaddr=BC:24:11:AA:BB:CC,ip=10.1.1.3/24,type=veth",
    }
    record = n.guest_normalized(
        resources.guests[0],
        config=config,
        list_entry=listed[106],
        node_online=True,
        ip_findings=n.ips_from_config(config, "lxc"),
    )
    assert validate("normalized-v1", record) == []
    assert record["virtualization"] == {"type": "lxc", "template": True}
    assert record["runtime"]["power_state"] == "stopped"
    assert record["network"]["ip_addresses"] == ["10.1.1.3"]
    assert record["hardware"] == {"cpu_count": 1, "memory_bytes": 512 * n.MIB}


def test_guest_of_offline_node_keeps_what_resources_said() -> None:
    resources = n.parse_resources(
        [{"id": "qemu/200", "type": "qemu", "vmid": 200, "node": "n3", "status": "unknown"}]
    )
    record = n.guest_normalized(
        resources.guests[0], config=None, list_entry=None, node_online=False, ip_findings=[]
    )
    assert validate("normalized-v1", record) == []
    assert record["runtime"] == {"power_state": "unknown", "status_detail": "node offline"}
    assert "hostname" not in record["identity"]


def test_hibernated_vm_is_suspended_with_detail() -> None:
    resources = n.parse_resources(
        [{"id": "qemu/300", "type": "qemu", "vmid": 300, "node": "pve", "status": "stopped"}]
    )
    record = n.guest_normalized(
        resources.guests[0],
        config={"lock": "suspended", "memory": 1024},
        list_entry={"status": "stopped", "qmpstatus": "stopped"},
        node_online=True,
        ip_findings=[],
    )
    assert record["runtime"] == {"power_state": "suspended", "status_detail": "hibernated"}


@pytest.mark.parametrize(
    ("label", "status", "expected"),
    [
        (
            "5.0",
            {
                "uptime": 5,
                "kversion": "Linux 4.10.15-1-pve #1 SMP PVE 4.10.15-15",
                "cpuinfo": {
                    "hvm": 1,
                    "cpus": 16,
                    "mhz": "2395.000",
                    "user_hz": 100,
                    "model": "Intel(R) Xeon(R) CPU E5620 @ 2.40GHz",
                    "sockets": 2,
                },
                "memory": {"total": 67108864000, "used": 1, "free": 2},
                "loadavg": ["0.16", "0.21", "0.17"],
                "pveversion": "pve-manager/5.0-23/af4267bf",
            },
            {"version": "5.0-23", "kernel": "4.10.15-1-pve", "cpus": 16},
        ),
        (
            "8.2",
            {
                "uptime": 5,
                "kversion": "Linux 6.8.4-2-pve #1 SMP",
                "cpuinfo": {
                    "cpus": "8",
                    "sockets": 1,
                    "cores": 8,
                    "model": "AMD EPYC",
                    "hvm": "1",
                    "flags": "fpu",
                },
                "current-kernel": {"release": "6.8.4-2-pve", "sysname": "Linux"},
                "memory": {"total": "34359738368"},
                "pveversion": "pve-manager/8.2.4/faa83925c9641325",
            },
            {"version": "8.2.4", "kernel": "6.8.4-2-pve", "cpus": 8},
        ),
    ],
)
def test_host_from_node_status_shapes(label: str, status: dict[str, Any], expected: dict[str, Any]) -> None:
    record = n.host_normalized("pve", resource={"node": "pve", "maxcpu": 4}, node_status=status, online=True)
    assert validate("normalized-v1", record) == []
    assert record["os"] == {
        "name": "Proxmox VE",
        "version": expected["version"],
        "kernel": expected["kernel"],
    }
    assert record["hardware"]["cpu_count"] == expected["cpus"]
    assert "serial_number" not in record["identity"]


def test_host_without_sys_audit_or_offline() -> None:
    hidden = n.host_normalized(
        "pve2",
        resource={"id": "node/pve2", "node": "pve2", "status": "online"},
        node_status=None,
        online=True,
    )
    assert validate("normalized-v1", hidden) == []
    offline = n.host_normalized("pve3", resource=None, node_status=None, online=False)
    assert offline["runtime"] == {"power_state": "unknown", "status_detail": "offline"}
    assert validate("normalized-v1", offline) == []


def test_cluster_status_clustered_and_standalone() -> None:
    clustered = n.parse_cluster_status(
        [
            {"type": "cluster", "id": "cluster", "name": "lab", "nodes": 3, "quorate": 1, "version": 3},
            {"type": "node", "id": "node/a", "name": "a", "nodeid": 1, "online": 1, "local": 1, "ip": None},
        ]
    )
    assert clustered.is_cluster
    assert clustered.name == "lab"
    assert clustered.quorate is True
    record = n.cluster_normalized(clustered, 1)
    assert record == {
        "kind": "cluster",
        "identity": {"caption": "lab"},
        "cluster": {"node_count": 3, "quorate": True},
    }
    assert validate("normalized-v1", record) == []
    standalone = n.parse_cluster_status(
        [{"type": "node", "id": "node/pve", "name": "pve", "nodeid": 0, "online": 1, "local": 1, "level": ""}]
    )
    assert not standalone.is_cluster
    assert list(standalone.nodes) == ["pve"]


@pytest.mark.parametrize(
    "data",
    [
        {"not": "a list"},
        [1, 2],
        [{"type": "qemu", "id": "qemu/x", "vmid": "abc", "node": "pve"}],
        [{"type": "qemu", "id": "qemu/100", "vmid": 100, "node": 7}],
        [{"type": "node", "id": "node/", "node": None}],
        [{"id": "qemu/1"}],
    ],
)
def test_wrongly_typed_resources_fail_with_parse_error(data: Any) -> None:
    with pytest.raises(LedgerError) as info:
        n.parse_resources(data)
    assert info.value.code == "PVE_PARSE_ERROR"


def test_resources_ignore_storage_sdn_network_and_unknown_types() -> None:
    parsed = n.parse_resources(
        [
            {"id": "storage/pve/local", "type": "storage", "storage": "local", "node": "pve"},
            {"id": "sdn/pve/localnetwork", "type": "sdn", "sdn": "localnetwork", "node": "pve"},
            {"id": "network/pve/vmbr0", "type": "network", "network": "vmbr0"},
            {"id": "/pool/prod", "type": "pool", "pool": "prod"},
            {"id": "lxc/5", "type": "lxc", "node": "pve", "status": "running"},
        ]
    )
    assert [g.external_id for g in parsed.guests] == ["lxc/5"]
    assert list(parsed.pools) == ["prod"]
