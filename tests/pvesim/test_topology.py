"""Topologies from a seed and from files; the default principals every topology has."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from pvesim import SimServer, Topology, TopologyError
from tests.pvesim.helpers import token_client

Factory = Callable[..., SimServer]

EXAMPLE = """
seed: 3
cluster: {name: lab, config_version: 4}
nodes:
  - {name: pve1, ip: 192.0.2.11, cpus: 32, memory_gb: 256}
  - {name: pve2, ip: 192.0.2.12}
  - {name: pve3, online: false}
guests:
  - {vmid: 100, type: qemu, node: pve1, name: db-1, state: running, cores: 4, sockets: 2, memory: 16384,
     tags: [prod, db], pool: prod, agent: "1", ips: [10.1.0.5/24]}
  - {vmid: 101, type: qemu, node: pve2, name: win-1, state: hibernated, ostype: win10}
  - {vmid: 102, type: qemu, node: pve3, name: gone-1, state: running, tags: [edge]}
  - {vmid: 200, type: lxc, node: pve1, name: ct-1, state: running, ip: 10.2.0.7/24}
  - {vmid: 201, type: lxc, node: pve2, name: ct-2, state: stopped, ip: dhcp}
users:
  - userid: ops@pve
    password: ops-secret
    tokens: [{name: inv, secret: 11111111-2222-3333-4444-555555555555, privsep: true}]
roles:
  Inventory: [VM.Audit, Sys.Audit]
acl:
  - {path: /, ugid: ops@pve, role: PVEAuditor}
  - {path: /vms/100, ugid: "ops@pve!inv", role: Inventory}
"""


def test_generate_is_deterministic_and_honours_counts() -> None:
    a = Topology.generate(
        seed=9,
        nodes=4,
        qemu=30,
        lxc=10,
        paused=2,
        suspended=1,
        prelaunch=1,
        hibernated=2,
        templates=1,
        agent_not_running=2,
        agent_timeout=1,
        agent_qga_error=1,
        agent_hang=1,
        offline_nodes=1,
        unnamed=2,
    )
    b = Topology.generate(
        seed=9,
        nodes=4,
        qemu=30,
        lxc=10,
        paused=2,
        suspended=1,
        prelaunch=1,
        hibernated=2,
        templates=1,
        agent_not_running=2,
        agent_timeout=1,
        agent_qga_error=1,
        agent_hang=1,
        offline_nodes=1,
        unnamed=2,
    )
    assert [(g.id, g.node, g.state, g.name, g.agent, g.agent_mode) for g in a.guests.values()] == [
        (g.id, g.node, g.state, g.name, g.agent, g.agent_mode) for g in b.guests.values()
    ]
    qemu = [g for g in a.guests.values() if g.kind == "qemu"]
    assert len(qemu) == 30
    assert len(a.guests) == 40
    states = [g.state for g in qemu]
    assert (states.count("paused"), states.count("suspended"), states.count("prelaunch")) == (2, 1, 1)
    assert states.count("hibernated") == 2
    assert sum(g.template for g in qemu) == 1
    modes = [g.agent_mode for g in qemu if g.agent is not None and g.state == "running"]
    assert (
        modes.count("not_running"),
        modes.count("timeout"),
        modes.count("qga_error"),
        modes.count("hang"),
    ) == (2, 1, 1, 1)
    assert sum(1 for g in qemu if g.name is None) == 2
    assert [n.online for n in a.nodes.values()] == [True, True, True, False]
    lxc = [g for g in a.guests.values() if g.kind == "lxc"]
    assert {g.nics[0].ip == "dhcp" for g in lxc} == {True, False}
    assert a.users["root@pam"].tokens["ledger"].secret == b.users["root@pam"].tokens["ledger"].secret


def test_generate_standalone_and_different_seeds_differ() -> None:
    solo = Topology.generate(seed=1, nodes=1, qemu=2, lxc=1)
    assert solo.standalone
    assert solo.cluster_name is None
    assert next(iter(solo.nodes.values())).nodeid == 0
    assert (
        Topology.generate(seed=1).users["root@pam"].password
        != Topology.generate(seed=2).users["root@pam"].password
    )
    with pytest.raises(TopologyError):
        Topology.generate(seed=1, nodes=2, standalone=True)


def test_ten_thousand_guests_generate_in_seconds() -> None:
    start = time.perf_counter()
    topo = Topology.generate(seed=1, nodes=16, qemu=7000, lxc=3000)
    assert len(topo.guests) == 10_000
    assert time.perf_counter() - start < 20


def test_load_yaml_file_and_serve_it(tmp_path: Path, pvesim_server: Factory) -> None:
    path = tmp_path / "lab.yaml"
    path.write_text(EXAMPLE, encoding="utf-8")
    topo = Topology.load(path)
    assert topo.cluster_name == "lab"
    assert list(topo.nodes) == ["pve1", "pve2", "pve3"]
    server = pvesim_server(profile="8.4", topology=topo, time_scale=0.01)
    with token_client(server, "root") as client:
        status = client.get("/cluster/status").json()["data"]
        entries = {e["id"]: e for e in client.get("/cluster/resources").json()["data"]}
        config = client.get("/nodes/pve1/qemu/100/config").json()["data"]
    assert status[0]["version"] == 4
    assert entries["qemu/102"] == {
        "id": "qemu/102",
        "type": "qemu",
        "vmid": 102,
        "node": "pve3",
        "status": "unknown",
        "tags": "edge",
    }
    assert entries["qemu/101"]["lock"] == "suspended"
    assert (config["cores"], config["sockets"], config["memory"]) == (4, 2, "16384")
    headers = {"Authorization": "PVEAPIToken=ops@pve!inv=11111111-2222-3333-4444-555555555555"}
    with httpx.Client(
        base_url=server.api_url,
        headers=headers,
        verify=__import__("ssl").create_default_context(cafile=server.ca_path),
    ) as client:
        vms = [e["id"] for e in client.get("/cluster/resources", params={"type": "vm"}).json()["data"]]
    assert vms == ["qemu/100"]


def test_load_json_file(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    path.write_text(
        json.dumps({"standalone": True, "nodes": [{"name": "pve"}], "guests": [{"vmid": 100, "name": "a"}]}),
        encoding="utf-8",
    )
    topo = Topology.load(path)
    assert topo.standalone
    assert topo.guests[100].node == "pve"


def test_default_principals_and_credentials(pvesim_server: Factory) -> None:
    server = pvesim_server(profile="8.4", topology=Topology.generate(seed=1, nodes=1, qemu=1, lxc=0))
    assert server.credentials("root")["api_token_id"] == "root@pam!ledger"
    assert server.credentials("auditor")["api_token_id"] == "auditor@pve!ro"
    assert server.credentials("reader")["api_token_id"] == "reader@pve!ro"
    assert server.credentials("privsep")["api_token_id"] == "auditor@pve!bare"
    assert server.credentials("novm")["api_token_id"] == "novm@pve!ro"
    assert server.credentials("root", auth="user_password")["username"] == "root@pam"
    assert server.credentials("tfa", auth="user_password")["username"] == "tfa@pve"
    with pytest.raises(ValueError, match="no API token"):
        server.credentials("tfa")


def test_mutation_errors_are_clear() -> None:
    topo = Topology.generate(seed=1, nodes=2, qemu=2, lxc=1)
    with pytest.raises(TopologyError):
        topo.migrate("qemu/999", "node1")
    with pytest.raises(TopologyError):
        topo.set_node_online("node1", False)
    with pytest.raises(TopologyError):
        topo.set_state("lxc/102", "paused")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_cli_serve_starts_prints_credentials_and_answers(tmp_path: Path) -> None:
    port = _free_port()
    cmd = [
        sys.executable,
        "-m",
        "pvesim.cli",
        "serve",
        "--profile",
        "7.4",
        "--port",
        str(port),
        "--seed",
        "4",
        "--nodes",
        "2",
        "--guests",
        "6",
        "--tls-dir",
        str(tmp_path),
        "--fault",
        "status:path=/nodes,status=503",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines: list[str] = []
        assert proc.stdout is not None
        while not any(line.startswith("Ctrl-C") for line in lines):
            line = proc.stdout.readline()
            assert line, proc.stderr.read() if proc.stderr else ""
            lines.append(line)
        text = "".join(lines)
        assert f"url:         https://127.0.0.1:{port}" in text
        token_line = next(line for line in lines if line.startswith("root "))
        token = token_line.split("token=")[1].split()[0]
        ca = next(line for line in lines if line.startswith("ca:")).split()[1]
        context = __import__("ssl").create_default_context(cafile=ca)
        with httpx.Client(
            base_url=f"https://127.0.0.1:{port}/api2/json",
            verify=context,
            headers={"Authorization": f"PVEAPIToken={token}"},
        ) as client:
            assert client.get("/version").json()["data"]["version"] == "7.4-16"
            assert client.get("/nodes").status_code == 503
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0
    assert "stopped" in out


def test_module_scoped_fixture_shares_one_server(pvesim_module_server: Callable[..., SimServer]) -> None:
    first = pvesim_module_server(profile="7.4", topology=Topology.generate(seed=8, nodes=1, qemu=1, lxc=0))
    with token_client(first) as client:
        assert client.get("/version").json()["data"]["version"] == "7.4-16"


def test_cli_serve_with_a_topology_file(tmp_path: Path) -> None:
    path = tmp_path / "lab.yaml"
    path.write_text(EXAMPLE, encoding="utf-8")
    port = _free_port()
    cmd = [
        sys.executable,
        "-m",
        "pvesim.cli",
        "serve",
        "--profile",
        "9.0",
        "--port",
        str(port),
        "--topology",
        str(path),
        "--time-scale",
        "0.01",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        while not any(line.startswith("Ctrl-C") for line in lines):
            line = proc.stdout.readline()
            assert line, proc.stderr.read() if proc.stderr else ""
            lines.append(line)
        assert any("3 node(s), 5 guest(s), cluster=lab" in line for line in lines)
    finally:
        proc.terminate()
        proc.communicate(timeout=20)
    assert proc.returncode == 0
