"""The emitted JSON of each release: one test per quirk of pve-notes §1, §4–§8, §10."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from pvesim import SimServer, Topology
from tests.pvesim.helpers import client_for, ticket_client

Get = Callable[[str], SimServer]


def data(server: SimServer, path: str, principal: str = "root", **params: Any) -> Any:
    with client_for(server, principal) as client:
        response = client.get(path, params=params)
    assert response.status_code == 200, (path, response.status_code, response.reason_phrase)
    return response.json()["data"]


# --- /version -------------------------------------------------------------------------------------
def test_version_5_4_release_is_the_package_revision_with_datacenter_keys(profile_server: Get) -> None:
    version = data(profile_server("5.4"), "/version")
    assert (version["version"], version["release"]) == ("5.4", "15")
    assert re.fullmatch(r"[0-9a-f]{8}", version["repoid"])
    assert version["keyboard"] == "en-us"
    assert version["migration"] == {"type": "secure"}


def test_version_6_4_has_package_version_and_point_release(profile_server: Get) -> None:
    version = data(profile_server("6.4"), "/version")
    assert (version["version"], version["release"]) == ("6.4-13", "6.4")
    assert "keyboard" in version


def test_version_7_4_only_console_from_datacenter(profile_server: Get) -> None:
    version = data(profile_server("7.4"), "/version")
    assert set(version) == {"version", "release", "repoid", "console"}
    assert version["version"] == "7.4-16"


@pytest.mark.parametrize(("profile", "expected"), [("8.4", "8.4.1"), ("9.0", "9.0.4")])
def test_version_8_plus_three_part_version_and_16_hex_repoid(
    profile_server: Get, profile: str, expected: str
) -> None:
    version = data(profile_server(profile), "/version")
    assert version["version"] == expected
    assert re.fullmatch(r"[0-9a-f]{16}", version["repoid"])
    node_version = data(profile_server(profile), "/nodes/node1/version")
    assert set(node_version) == {"version", "release", "repoid"}


# --- node status ----------------------------------------------------------------------------------
def test_node_status_5_x_cpuinfo_hvm_int_no_flags_no_cores(profile_server: Get) -> None:
    status = data(profile_server("5.4"), "/nodes/node1/status")
    cpuinfo = status["cpuinfo"]
    assert cpuinfo["hvm"] == 1
    assert "flags" not in cpuinfo
    assert "cores" not in cpuinfo
    assert isinstance(cpuinfo["mhz"], str)
    assert all(isinstance(x, str) for x in status["loadavg"])
    assert re.fullmatch(r"pve-manager/5\.4-15/[0-9a-f]{8}", status["pveversion"])
    assert "current-kernel" not in status


def test_node_status_6_1_hvm_string_flags_but_no_cores(profile_server: Get) -> None:
    cpuinfo = data(profile_server("6.1"), "/nodes/node1/status")["cpuinfo"]
    assert cpuinfo["hvm"] == "1"
    assert "flags" in cpuinfo
    assert "cores" not in cpuinfo


def test_node_status_6_4_has_cores(profile_server: Get) -> None:
    status = data(profile_server("6.4"), "/nodes/node1/status")
    assert isinstance(status["cpuinfo"]["cores"], int)
    assert re.fullmatch(r"pve-manager/6\.4-13/[0-9a-f]{8}", status["pveversion"])


def test_node_status_boot_info_from_8_1(profile_server: Get) -> None:
    assert "current-kernel" not in data(profile_server("8.0"), "/nodes/node1/status")
    status = data(profile_server("8.1"), "/nodes/node1/status")
    assert status["current-kernel"]["sysname"] == "Linux"
    assert status["boot-info"]["mode"] in ("efi", "legacy-bios")
    assert re.fullmatch(r"pve-manager/8\.1\.4/[0-9a-f]{16}", status["pveversion"])
    assert status["kversion"].startswith("Linux 6.5")


def test_node_status_memory_available_from_9_0(profile_server: Get) -> None:
    assert "available" not in data(profile_server("8.4"), "/nodes/node1/status")["memory"]
    assert isinstance(data(profile_server("9.0"), "/nodes/node1/status")["memory"]["available"], int)


# --- /cluster/status ------------------------------------------------------------------------------
def test_cluster_status_cluster_entry_then_nodes(profile_server: Get) -> None:
    entries = data(profile_server("8.4"), "/cluster/status")
    assert entries[0] == {
        "type": "cluster",
        "id": "cluster",
        "name": "lab",
        "nodes": 2,
        "quorate": 1,
        "version": 7,
    }
    nodes = {e["name"]: e for e in entries[1:]}
    assert nodes["node1"]["local"] == 1
    assert nodes["node2"]["local"] == 0
    assert [n["nodeid"] for n in nodes.values()] == [1, 2]


def test_cluster_status_standalone_single_entry_nodeid_0(pvesim_server: Callable[..., SimServer]) -> None:
    server = pvesim_server(profile="5.0", topology=Topology.generate(seed=3, nodes=1, qemu=1, lxc=0))
    entries = data(server, "/cluster/status")
    assert len(entries) == 1
    assert entries[0]["type"] == "node"
    assert entries[0]["nodeid"] == 0
    assert entries[0]["local"] == 1


@pytest.mark.parametrize(
    ("profile", "null_ip"), [("5.4", True), ("6.0", True), ("6.1", False), ("8.4", False)]
)
def test_cluster_status_unknown_ip_null_until_6_0_then_omitted(
    pvesim_server: Callable[..., SimServer], profile: str, null_ip: bool
) -> None:
    topo = Topology.generate(seed=3, nodes=2, qemu=1, lxc=0)
    topo.nodes["node2"].ip = None
    entries = data(pvesim_server(profile=profile, topology=topo), "/cluster/status")
    node2 = next(e for e in entries if e.get("name") == "node2")
    if null_ip:
        assert "ip" in node2
        assert node2["ip"] is None
    else:
        assert "ip" not in node2


# --- /cluster/resources ---------------------------------------------------------------------------
def resources(server: SimServer, **params: Any) -> dict[str, dict[str, Any]]:
    return {e["id"]: e for e in data(server, "/cluster/resources", **params)}


def test_resources_type_filter_enum_per_version(profile_server: Get) -> None:
    with client_for(profile_server("6.0"), "root") as client:
        response = client.get("/cluster/resources", params={"type": "sdn"})
    assert response.status_code == 400
    assert response.reason_phrase == "Parameter verification failed."
    assert response.json()["errors"] == {
        "type": "value 'sdn' does not have a value in the enumeration 'vm, storage, node'"
    }
    assert data(profile_server("6.1"), "/cluster/resources", type="sdn") == []


def test_resources_type_vm_lists_qemu_and_lxc_without_pools(profile_server: Get) -> None:
    entries = resources(profile_server("8.4"), type="vm")
    assert {e["type"] for e in entries.values()} == {"qemu", "lxc"}
    assert all(isinstance(e["vmid"], int) for e in entries.values())


def test_resources_lock_from_6_0_tags_and_cgroup_mode_from_7_3(profile_server: Get) -> None:
    old = resources(profile_server("5.4"))
    assert "lock" not in old["qemu/103"]
    assert "tags" not in old["qemu/100"]
    mid = resources(profile_server("7.2"))
    assert mid["qemu/103"]["lock"] == "suspended"
    assert "tags" not in mid["qemu/100"]
    assert "cgroup-mode" not in mid["node/node1"]
    new = resources(profile_server("7.3"))
    assert new["qemu/100"]["tags"] == "prod;web"
    assert new["node/node1"]["cgroup-mode"] == 2


def test_resources_memhost_from_9_0(profile_server: Get) -> None:
    assert "memhost" not in resources(profile_server("8.4"))["qemu/100"]
    assert isinstance(resources(profile_server("9.0"))["qemu/100"]["memhost"], int)


def test_resources_pool_and_storage_entries(profile_server: Get) -> None:
    entries = resources(profile_server("6.2"))
    assert entries["/pool/prod"] == {  # sums over the running members (here only web-100)
        "id": "/pool/prod",
        "type": "pool",
        "pool": "prod",
        "uptime": entries["qemu/100"]["uptime"],
        "mem": entries["qemu/100"]["mem"],
        "maxmem": entries["qemu/100"]["maxmem"],
        "cpu": entries["qemu/100"]["cpu"],
        "maxcpu": entries["qemu/100"]["maxcpu"],
    }
    assert entries["qemu/100"]["pool"] == "prod"
    storage = resources(profile_server("6.2"))["storage/node1/local"]
    assert "content" not in storage
    assert "plugintype" not in storage
    assert storage["shared"] == 0
    assert "shared" not in resources(profile_server("5.2"))["storage/node1/local"]
    storage = resources(profile_server("6.3"))["storage/node1/local"]
    assert storage["content"]
    assert storage["plugintype"] == "dir"


def test_resources_template_is_0_or_1(profile_server: Get) -> None:
    entries = resources(profile_server("8.4"))
    assert entries["qemu/104"]["template"] == 1
    assert entries["qemu/100"]["template"] == 0


# --- guest lists ----------------------------------------------------------------------------------
def test_qemu_list_5_x_pid_null_and_template_empty_string(profile_server: Get) -> None:
    vms = {v["vmid"]: v for v in data(profile_server("5.4"), "/nodes/node1/qemu")}
    assert vms[101]["pid"] is None
    assert vms[101]["template"] == ""
    assert vms[104]["template"] == 1
    assert isinstance(vms[100]["pid"], int)


def test_qemu_list_7_0_omits_pid_and_template_unless_set(profile_server: Get) -> None:
    vms = {v["vmid"]: v for v in data(profile_server("7.0"), "/nodes/node1/qemu")}
    assert "pid" not in vms[101]
    assert "template" not in vms[101]
    assert vms[104]["template"] == 1


def test_qemu_list_full_shows_qmpstatus_of_paused_vm(profile_server: Get) -> None:
    vms = {v["vmid"]: v for v in data(profile_server("8.4"), "/nodes/node1/qemu", full=1)}
    assert vms[102]["status"] == "running"
    assert vms[102]["qmpstatus"] == "paused"
    assert "qmpstatus" not in {v["vmid"]: v for v in data(profile_server("8.4"), "/nodes/node1/qemu")}[102]


@pytest.mark.parametrize(("profile", "vmid_type"), [("5.0", str), ("8.1", str), ("8.2", int), ("9.1", int)])
def test_lxc_list_vmid_string_until_8_1(profile_server: Get, profile: str, vmid_type: type) -> None:
    cts = data(profile_server(profile), "/nodes/node1/lxc")
    assert cts
    assert all(isinstance(c["vmid"], vmid_type) for c in cts)


def test_lxc_list_running_disk_strings_until_7_0(profile_server: Get) -> None:
    old = {int(c["vmid"]): c for c in data(profile_server("6.4"), "/nodes/node1/lxc")}
    assert isinstance(old[200]["disk"], str)
    assert isinstance(old[200]["maxdisk"], str)
    assert isinstance(old[201]["maxdisk"], int)
    new = {int(c["vmid"]): c for c in data(profile_server("7.0"), "/nodes/node1/lxc")}
    assert isinstance(new[200]["disk"], int)


# --- guest status / config ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("vmid", "status", "qmp"),
    [
        (100, "running", "running"),
        (102, "running", "paused"),
        (101, "stopped", "stopped"),
        (103, "stopped", "stopped"),
    ],
)
def test_qemu_status_current_qmpstatus(profile_server: Get, vmid: int, status: str, qmp: str) -> None:
    node = "node2" if vmid == 103 else "node1"
    current = data(profile_server("8.4"), f"/nodes/{node}/qemu/{vmid}/status/current")
    assert (current["status"], current["qmpstatus"]) == (status, qmp)


def test_qemu_status_agent_flag_and_clipboard(profile_server: Get) -> None:
    current = data(profile_server("8.1"), "/nodes/node1/qemu/100/status/current")
    assert current["agent"] == 1
    assert "clipboard" in current
    assert current["clipboard"] is None
    assert "agent" not in data(profile_server("8.1"), "/nodes/node1/qemu/105/status/current")
    assert "clipboard" not in data(profile_server("8.0"), "/nodes/node1/qemu/100/status/current")


def test_qemu_status_5_0_stopped_vm_has_no_vmid(profile_server: Get) -> None:
    assert "vmid" not in data(profile_server("5.0"), "/nodes/node1/qemu/101/status/current")
    assert data(profile_server("5.0"), "/nodes/node1/qemu/100/status/current")["vmid"] == 100
    assert data(profile_server("5.1"), "/nodes/node1/qemu/101/status/current")["vmid"] == 101


def test_qemu_config_memory_int_until_8_0_then_property_string(profile_server: Get) -> None:
    assert data(profile_server("8.0"), "/nodes/node1/qemu/100/config")["memory"] == 4096
    assert data(profile_server("8.1"), "/nodes/node1/qemu/100/config")["memory"] == "4096"
    assert data(profile_server("8.1"), "/nodes/node1/qemu/109/config")["memory"] == "current=8192"


def test_qemu_config_types_and_optional_keys(profile_server: Get) -> None:
    server = profile_server("8.4")
    cfg = data(server, "/nodes/node1/qemu/109/config")
    assert cfg["cpulimit"] == "1.5"
    assert cfg["tags"] == "one, two"
    assert (cfg["cores"], cfg["sockets"]) == (1, 1)
    assert "name" not in data(server, "/nodes/node1/qemu/101/config")
    assert data(server, "/nodes/node2/qemu/103/config")["lock"] == "suspended"
    assert data(server, "/nodes/node1/qemu/104/config")["template"] == 1
    cfg = data(server, "/nodes/node1/qemu/100/config")
    assert re.fullmatch(r"uuid=[0-9a-f-]{36}", cfg["smbios1"])
    assert cfg["agent"] == "1"
    assert cfg["net0"].startswith("virtio=BC:24:11:00:01:00,")
    assert "agent" not in data(server, "/nodes/node1/qemu/105/config")
    assert data(server, "/nodes/node1/qemu/107/config")["agent"] == "enabled=1,type=virtio"


def test_qemu_config_of_vm_on_another_node_is_500(profile_server: Get) -> None:
    with client_for(profile_server("8.4"), "root") as client:
        response = client.get("/nodes/node2/qemu/100/config")
    assert response.status_code == 500
    assert response.reason_phrase == "Configuration file 'nodes/node2/qemu-server/100.conf' does not exist"


def test_lxc_config_static_and_dhcp_addresses(profile_server: Get) -> None:
    server = profile_server("7.4")
    static = data(server, "/nodes/node1/lxc/200/config")
    assert "ip=10.20.0.200/24" in static["net0"]
    assert static["hostname"] == "ct-200"
    assert isinstance(static["memory"], int)
    assert "ip=dhcp" in data(server, "/nodes/node1/lxc/201/config")["net0"]
    status = data(server, "/nodes/node1/lxc/200/status/current")
    assert status["status"] == "running"
    assert status["vmid"] == "200"


def test_lxc_interfaces_8_1_single_cidr_per_family(profile_server: Get) -> None:
    ifaces = {i["name"]: i for i in data(profile_server("8.1"), "/nodes/node1/lxc/200/interfaces")}
    assert ifaces["eth0"]["inet"] == "10.20.0.200/24"
    assert ifaces["eth0"]["inet6"].startswith("fe80::")
    assert ifaces["eth0"]["hwaddr"] == "bc:24:11:00:02:00"
    assert "ip-addresses" not in ifaces["eth0"]
    assert "lo" in ifaces


def test_lxc_interfaces_8_4_ip_addresses_with_inet_types(profile_server: Get) -> None:
    ifaces = {i["name"]: i for i in data(profile_server("8.4"), "/nodes/node1/lxc/200/interfaces")}
    eth0 = ifaces["eth0"]
    assert eth0["hardware-address"] == "bc:24:11:00:02:00"
    assert {"ip-address": "10.20.0.200", "ip-address-type": "inet", "prefix": 24} in eth0["ip-addresses"]
    assert {a["ip-address-type"] for a in eth0["ip-addresses"]} == {"inet", "inet6"}
    assert eth0["inet"] == "10.20.0.200/24"


def test_lxc_interfaces_null_for_stopped_container(profile_server: Get) -> None:
    assert data(profile_server("8.4"), "/nodes/node1/lxc/201/interfaces") is None


# --- guest agent ----------------------------------------------------------------------------------
def agent(server: SimServer, vmid: int, command: str = "network-get-interfaces") -> Any:
    with client_for(server, "root") as client:
        if server.profile.agent_get_endpoints:
            return client.get(f"/nodes/node1/qemu/{vmid}/agent/{command}")
        return client.post(f"/nodes/node1/qemu/{vmid}/agent", data={"command": command})


def test_agent_5_0_is_post_only(profile_server: Get) -> None:
    server = profile_server("5.0")
    with ticket_client(server, "root") as client:
        get = client.get("/nodes/node1/qemu/100/agent/network-get-interfaces")
        assert get.status_code == 501
        post = client.post("/nodes/node1/qemu/100/agent", data={"command": "network-get-interfaces"})
    assert post.status_code == 200
    assert isinstance(post.json()["data"]["result"], list)


def test_agent_answers_with_loopback_link_local_and_docker(profile_server: Get) -> None:
    response = agent(profile_server("8.4"), 100)
    assert response.status_code == 200
    ifaces = {i["name"]: i for i in response.json()["data"]["result"]}
    assert set(ifaces) == {"lo", "ens18", "docker0", "veth0064a1"}
    assert "ip-addresses" not in ifaces["veth0064a1"]
    addrs = {a["ip-address"]: a for a in ifaces["ens18"]["ip-addresses"]}
    assert addrs["10.10.0.100"] == {"ip-address": "10.10.0.100", "ip-address-type": "ipv4", "prefix": 24}
    assert any(a.startswith("fe80::") and v["ip-address-type"] == "ipv6" for a, v in addrs.items())
    assert ifaces["ens18"]["hardware-address"] == "bc:24:11:00:01:00"
    assert ifaces["lo"]["ip-addresses"][0]["ip-address"] == "127.0.0.1"


def test_agent_osinfo_and_hostname(profile_server: Get) -> None:
    server = profile_server("8.4")
    assert agent(server, 100, "get-host-name").json()["data"]["result"] == {"host-name": "web-100"}
    assert "pretty-name" in agent(server, 100, "get-osinfo").json()["data"]["result"]


@pytest.mark.parametrize(
    ("vmid", "reason"),
    [
        (105, "No QEMU guest agent configured"),
        (101, "No QEMU guest agent configured"),
        (106, "QEMU guest agent is not running"),
        (102, "QEMU guest agent is not running"),
        (107, "VM 107 qmp command 'guest-network-get-interfaces' failed - got timeout"),
    ],
)
def test_agent_host_side_failures_are_500_with_text(profile_server: Get, vmid: int, reason: str) -> None:
    response = agent(profile_server("8.4"), vmid)
    assert (response.status_code, response.reason_phrase) == (500, reason)
    assert response.json() == {"data": None, "message": reason + "\n"}


def test_agent_vm_not_running(pvesim_server: Callable[..., SimServer]) -> None:
    topo = Topology.from_dict(
        {"nodes": ["node1"], "guests": [{"vmid": 100, "state": "stopped", "agent": "1"}]}
    )
    server = pvesim_server(profile="8.4", topology=topo, time_scale=0.01)
    response = agent(server, 100)
    assert (response.status_code, response.reason_phrase) == (500, "VM 100 is not running")
    old = pvesim_server(profile="5.1", topology=topo, time_scale=0.01)
    response = agent(old, 100)
    assert (response.status_code, response.reason_phrase) == (500, "VM 100 is not running")


@pytest.mark.parametrize(
    ("vmid", "reason"),
    [
        (105, "No Qemu Guest Agent"),
        (106, "VM 106 qmp command 'guest-network-get-interfaces' failed - got timeout"),
    ],
)
def test_agent_texts_before_5_3(profile_server: Get, vmid: int, reason: str) -> None:
    for profile in ("5.0", "5.2"):
        response = agent(profile_server(profile), vmid)
        assert (response.status_code, response.reason_phrase) == (500, reason)


def test_agent_qga_error_inside_http_200(profile_server: Get) -> None:
    response = agent(profile_server("8.4"), 108)
    assert response.status_code == 200
    assert response.json()["data"]["result"]["error"]["class"] == "Unsupported"


def test_agent_not_running_costs_the_agent_delay(pvesim_server: Callable[..., SimServer]) -> None:
    import time

    topo = Topology.from_dict(
        {"nodes": ["node1"], "guests": [{"vmid": 100, "agent": "1", "agent_mode": "not_running"}]}
    )
    server = pvesim_server(profile="8.4", topology=topo, agent_delay=0.3)
    start = time.perf_counter()
    assert agent(server, 100).status_code == 500
    assert time.perf_counter() - start >= 0.3


def test_agent_privilege_vm_monitor_until_8_and_guest_agent_audit_on_9(profile_server: Get) -> None:
    with client_for(profile_server("8.4"), "auditor") as client:
        response = client.get("/nodes/node1/qemu/100/agent/network-get-interfaces")
    assert (response.status_code, response.reason_phrase) == (
        403,
        "Permission check failed (/vms/100, VM.Monitor)",
    )
    with client_for(profile_server("8.4"), "reader") as client:
        assert client.get("/nodes/node1/qemu/100/agent/network-get-interfaces").status_code == 200
    with client_for(profile_server("9.0"), "auditor") as client:
        assert client.get("/nodes/node1/qemu/100/agent/network-get-interfaces").status_code == 200


# --- envelope -------------------------------------------------------------------------------------
def test_error_message_in_body_only_from_8_4(profile_server: Get) -> None:
    with client_for(profile_server("8.3"), "root") as client:
        old = client.get("/nodes/node1/qemu/999/config")
    with client_for(profile_server("8.4"), "root") as client:
        new = client.get("/nodes/node1/qemu/999/config")
    assert (
        old.reason_phrase
        == new.reason_phrase
        == "Configuration file 'nodes/node1/qemu-server/999.conf' does not exist"
    )
    assert old.json() == {"data": None}
    assert new.json()["message"] == "Configuration file 'nodes/node1/qemu-server/999.conf' does not exist\n"


def test_nodes_list_has_ssl_fingerprint_of_the_server_from_5_2(profile_server: Get) -> None:
    server = profile_server("8.4")
    nodes = {n["node"]: n for n in data(server, "/nodes")}
    assert nodes["node1"]["ssl_fingerprint"] == server.fingerprint
    assert "ssl_fingerprint" not in data(profile_server("5.1"), "/nodes")[0]


def test_resources_order_pools_guests_as_strings_nodes_storages(
    pvesim_server: Callable[..., SimServer],
) -> None:
    topo = Topology.from_dict(
        {"nodes": ["n1", "n2"], "guests": [{"vmid": v, "node": "n1"} for v in (99999, 1000, 101, 100)]}
    )
    server = pvesim_server(profile="8.4", topology=topo, time_scale=0.01)
    ids = [e["id"] for e in data(server, "/cluster/resources")]
    assert ids[:4] == ["qemu/100", "qemu/1000", "qemu/101", "qemu/99999"]
    assert ids[4:6] == ["node/n1", "node/n2"]
    assert ids[6:] == ["storage/n1/local", "storage/n2/local", "storage/n1/local-lvm", "storage/n2/local-lvm"]
