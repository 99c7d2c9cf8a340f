"""The PRD scenarios (T6-01 ... T6-B03) and the version-specific behaviour, against pvesim over real HTTPS,
for every version profile. These tests do not change the simulated cluster, so one server per profile
serves the whole module."""

from __future__ import annotations

import ipaddress
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from asset_ledger.collectors.pve.normalize import parse_version
from pvesim import SimServer
from tests.collectors.pve.pve_sim import (
    ALL_PROFILES,
    assets_by_id,
    auth_for,
    cluster_topology,
    codes,
    has_tokens,
    run,
    sim,
)


@pytest.fixture(scope="module", params=ALL_PROFILES)
def server(request: pytest.FixtureRequest) -> Iterator[SimServer]:
    with sim(request.param) as srv:
        yield srv


def version_of(server: SimServer) -> tuple[int, int]:
    parsed = parse_version(server.profile.name)
    assert parsed is not None
    return parsed


def expected_request_count(server: SimServer, *, auth: str, agent_calls: bool = True) -> int:
    """The request plan: fixed calls + per online node + per guest + per IP source."""
    version = version_of(server)
    topo = server.topology
    count = 1 + 1 + 1  # /version, /cluster/status, /cluster/resources
    if auth == "user_password":
        count += 1  # POST /access/ticket
    if auth == "api_token" or version >= (6, 2):
        count += 1  # /access/permissions
    for node in topo.nodes.values() if isinstance(topo.nodes, dict) else topo.nodes:
        if not node.online:
            continue
        guests = [g for g in topo.guests.values() if g.node == node.name]
        count += 1  # /nodes/{node}/status
        count += 1 if any(g.kind == "qemu" for g in guests) else 0  # /nodes/{node}/qemu?full=1
        count += len(guests)  # .../config
        for g in guests:
            if (
                g.kind == "qemu"
                and g.state == "running"
                and not g.template
                and g.agent_enabled
                and agent_calls
            ):
                count += 1  # agent network-get-interfaces
            if g.kind == "lxc" and g.state == "running" and version >= (8, 1):
                count += 1  # /lxc/{vmid}/interfaces
    return count


# -- T6-01 healthcheck ----------------------------------------------------------------------------------


def test_t6_01_healthcheck_succeeds(server: SimServer) -> None:
    response = run(server, "healthcheck")
    assert response["errors"] == []
    assert response["stats"]["counts"]["nodes"] == 3
    assert "assets" not in response


# -- T6-02 detect --------------------------------------------------------------------------------------


def test_t6_02_detect_reports_version_capabilities_and_driver(server: SimServer) -> None:
    response = run(server, "detect")
    assert response["errors"] == []
    detect = response["detect"]
    version = version_of(server)
    assert detect["target_version"] == f"{version[0]}.{version[1]}"
    caps = detect["capabilities"]
    assert caps["is_cluster"] is True
    assert caps["supports_cluster_resources_endpoint"] is True
    assert caps["guest_agent_supported"] is True
    assert caps["api_tokens"] is (version >= (6, 2))
    assert caps["permissions_endpoint"] is (version >= (6, 2))
    assert caps["agent_get_endpoints"] is (version >= (5, 2))
    assert caps["lxc_interfaces"] is (version >= (8, 1))
    assert caps["agent_privilege"] == ("VM.GuestAgent.Audit" if version >= (9, 0) else "VM.Monitor")
    expected_driver = (
        "pve-cap-v1" if version < (6, 2) else "pve-cap-v3" if version >= (8, 1) else "pve-cap-v2"
    )
    assert detect["driver"] == expected_driver
    assert detect["recommended_scope"] == "cluster"
    assert detect["details"]["cluster_name"] == "pvesim"


def test_detect_reports_scope_mismatch(server: SimServer) -> None:
    response = run(server, "detect", scope="standalone")
    assert response["errors"] == []
    assert codes(response["warnings"]) == ["PVE_SCOPE_MISMATCH"]
    assert "standalone" in response["warnings"][0]["message"]


# -- T6-04 cluster collect (+ T6-B03 LXC, templates, power states) ---------------------------------------


@pytest.fixture(scope="module")
def collected(server: SimServer) -> dict[str, Any]:
    server.reset_stats()
    response = run(server, "collect")
    response["_server_log"] = [(r.method, r.path) for r in server.request_log]
    return response


def test_t6_04_cluster_collect_is_complete_with_relations(
    server: SimServer, collected: dict[str, Any]
) -> None:
    assert collected["errors"] == []
    assert collected["stats"]["inventory_complete"] is True
    topo = server.topology
    by_id = assets_by_id(collected)
    assert "cluster:pvesim" in by_id
    hosts = {k for k in by_id if k.startswith("host:")}
    assert hosts == {f"host:{n}" for n in ("node1", "node2", "node3")}
    guests = {k for k in by_id if k.startswith("vm:")}
    assert guests == {f"vm:{g.id}" for g in topo.guests.values()}
    member_of = {
        (r["from"]["external_id"], r["to"]["external_id"])
        for r in collected["relations"]
        if r["type"] == "member_of"
    }
    assert member_of == {(n, "pvesim") for n in ("node1", "node2", "node3")}
    runs_on = {
        r["from"]["external_id"]: r["to"]["external_id"]
        for r in collected["relations"]
        if r["type"] == "runs_on"
    }
    assert runs_on == {g.id: g.node for g in topo.guests.values()}
    counts = collected["stats"]["counts"]
    assert counts["clusters"] == 1
    assert counts["hosts"] == 3
    assert counts["vms"] == len(topo.guests)
    cluster = by_id["cluster:pvesim"]["normalized"]
    assert cluster["cluster"] == {"node_count": 3, "quorate": True}


def test_collect_request_plan_and_no_request_twice(server: SimServer, collected: dict[str, Any]) -> None:
    auth = auth_for(server.profile.name)
    assert collected["stats"]["requests"] == expected_request_count(server, auth=auth)
    log = collected["_server_log"]
    assert len(log) == collected["stats"]["requests"]
    assert len(log) == len(set(log)), "a request was made twice"
    agent_calls = {(m, p.rsplit("/agent", 1)[1]) for m, p in log if "/agent" in p}
    if version_of(server) < (5, 2):
        assert agent_calls == {("POST", "")}  # the generic POST form, command=network-get-interfaces
    else:
        assert agent_calls == {("GET", "/network-get-interfaces")}


def test_t6_b03_lxc_are_inventoried_as_vms_and_templates_are_marked(
    server: SimServer, collected: dict[str, Any]
) -> None:
    by_id = assets_by_id(collected)
    for guest in server.topology.guests.values():
        record = by_id[f"vm:{guest.id}"]["normalized"]
        assert record["kind"] == "vm"
        assert record["virtualization"]["type"] == guest.kind
        assert record["virtualization"]["template"] is guest.template
        assert record["identity"]["cloud_native_id"] == str(guest.vmid)
        if guest.name:
            assert record["identity"]["hostname"] == guest.name
        assert record["hardware"]["memory_bytes"] == guest.memory * 1024 * 1024
        if guest.kind == "qemu":
            assert record["hardware"]["cpu_count"] == guest.vcpu_count
    assert collected["stats"]["counts"]["lxc"] == sum(
        1 for g in server.topology.guests.values() if g.kind == "lxc"
    )
    assert collected["stats"]["counts"]["templates"] == 1


EXPECTED_POWER = {
    "running": ("running", None),
    "stopped": ("stopped", None),
    "paused": ("paused", None),
    "suspended": ("suspended", None),
    "prelaunch": ("starting", "prelaunch"),
    "hibernated": ("suspended", "hibernated"),
}


def test_power_states_paused_suspended_prelaunch_hibernated(
    server: SimServer, collected: dict[str, Any]
) -> None:
    by_id = assets_by_id(collected)
    seen = set()
    for guest in server.topology.guests.values():
        runtime = by_id[f"vm:{guest.id}"]["normalized"]["runtime"]
        state = guest.state if guest.kind == "qemu" else ("running" if guest.running else "stopped")
        expected_state, expected_detail = EXPECTED_POWER[state]
        assert runtime["power_state"] == expected_state, guest.id
        assert runtime.get("status_detail") == expected_detail, guest.id
        seen.add(state)
    assert {"paused", "suspended", "prelaunch", "hibernated"} <= seen


def test_hosts_carry_os_cpu_memory_and_no_serial(server: SimServer, collected: dict[str, Any]) -> None:
    by_id = assets_by_id(collected)
    for name in ("node1", "node2", "node3"):
        host = by_id[f"host:{name}"]
        record = host["normalized"]
        assert record["identity"] == {"hostname": name}
        assert record["os"]["name"] == "Proxmox VE"
        # pveversion is "pve-manager/<version>[-<package revision on 5.x>]/<repoid>"
        assert record["os"]["version"].startswith(server.profile.version)
        assert record["os"]["kernel"] == server.profile.kernel
        assert record["hardware"]["cpu_count"] > 0
        assert record["hardware"]["memory_bytes"] > 0
        assert record["runtime"]["power_state"] == "running"
        assert set(host["raw_payload"]) == {"cluster_resources", "cluster_status", "node_status"}


def test_raw_payload_is_keyed_by_endpoint(server: SimServer, collected: dict[str, Any]) -> None:
    by_id = assets_by_id(collected)
    for guest in server.topology.guests.values():
        raw = by_id[f"vm:{guest.id}"]["raw_payload"]
        assert raw["cluster_resources"]["id"] == guest.id
        assert "config" in raw
        if guest.kind == "qemu":
            assert raw["qemu_list"]["status"] in ("running", "stopped")


# -- T6-05 agent IPs, T6-B01 agent unavailable, LXC IPs per version ------------------------------------


def _is_reachable(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    return not (ip.is_loopback or ip.is_link_local)


def test_t6_05_agent_ips_for_running_vms(server: SimServer, collected: dict[str, Any]) -> None:
    by_id = assets_by_id(collected)
    answering = [
        g
        for g in server.topology.guests.values()
        if g.kind == "qemu" and g.state == "running" and g.agent_enabled and g.agent_mode == "answering"
    ]
    assert answering, "the topology must contain a VM with an answering agent"
    for guest in answering:
        asset = by_id[f"vm:{guest.id}"]
        ips = asset["normalized"]["network"]["ip_addresses"]
        assert ips
        assert all(_is_reachable(ip) for ip in ips)
        sources = asset["raw_payload"]["ip_sources"]
        assert {s["source"] for s in sources if "excluded" not in s} == {"qemu_guest_agent"}
        assert "agent_network" in asset["raw_payload"]


def test_t6_b01_agent_unavailable_is_a_warning_per_vm(server: SimServer, collected: dict[str, Any]) -> None:
    assert collected["errors"] == []
    broken = {
        g.vmid: g
        for g in server.topology.guests.values()
        if g.kind == "qemu"
        and g.state == "running"
        and not g.template
        and (not g.agent_enabled or g.agent_mode != "answering")
    }
    warned = {
        w["context"]["vm_id"]: w for w in collected["warnings"] if w["code"] == "PVE_GUEST_AGENT_UNAVAILABLE"
    }
    assert set(warned) == set(broken)
    for vmid, warning in warned.items():
        assert warning["context"]["reason"]
        guest = broken[vmid]
        if guest.agent_mode == "not_running" and guest.agent_enabled:
            # qemu-server added the guest-ping pre-check ("... is not running") after PVE 5.2; before it a
            # dead agent shows up as the QMP command's timeout
            expected = "got timeout" if version_of(server) <= (5, 2) else "not running"
            assert expected in warning["context"]["reason"].lower()
    counts = collected["stats"]["counts"]
    assert counts["agent_unavailable"] == len(broken)


def test_lxc_ips_per_version(server: SimServer, collected: dict[str, Any]) -> None:
    by_id = assets_by_id(collected)
    version = version_of(server)
    for guest in server.topology.guests.values():
        if guest.kind != "lxc":
            continue
        asset = by_id[f"vm:{guest.id}"]
        sources = {s["source"] for s in asset["raw_payload"].get("ip_sources", []) if "excluded" not in s}
        ips = asset["normalized"].get("network", {}).get("ip_addresses", [])
        static = [n for n in guest.nics if n.ip and n.ip != "dhcp"]
        if guest.running and version >= (8, 1):
            assert "lxc_interfaces" in asset["raw_payload"]
            assert sources == {"lxc_interfaces"}
            assert ips
        elif static:
            assert sources == {"config_static"}
            assert ips == [n.ip.split("/")[0] for n in static]
        else:
            assert ips == []


# -- T6-E01 / T6-E02 and auth/permission variants ------------------------------------------------------


def test_t6_e01_wrong_credentials_fail_auth(server: SimServer) -> None:
    auth = auth_for(server.profile.name)
    good = server.credentials("reader", auth=auth)  # type: ignore[arg-type]
    if auth == "api_token":
        bad = {**good, "api_token_secret": "00000000-0000-0000-0000-000000000000"}
    else:
        bad = {**good, "password": "definitely-wrong"}
    response = run(server, "healthcheck", credential=bad)
    assert codes(response["errors"]) == ["PVE_AUTH_FAILED"]
    assert response["errors"][0]["retryable"] is False


def test_t6_e02_no_vm_audit_fails_collect_naming_the_privilege(server: SimServer) -> None:
    response = run(server, "collect", "novm")
    assert codes(response["errors"]) == ["PVE_PERMISSION_DENIED"]
    error = response["errors"][0]
    assert "VM.Audit on /vms" in error["message"]
    assert "pveum" in error["suggested_action"]
    assert "PVEAuditor" in error["suggested_action"]
    assert error["retryable"] is False
    assert "assets" not in response


def test_healthcheck_also_refuses_missing_vm_audit(server: SimServer) -> None:
    response = run(server, "healthcheck", "novm")
    assert codes(response["errors"]) == ["PVE_PERMISSION_DENIED"]


@pytest.mark.parametrize("profile", [p for p in ALL_PROFILES if has_tokens(p)])
def test_privsep_token_without_acl_is_refused(profile: str) -> None:
    with sim(profile) as server:
        response = run(server, "collect", "privsep")
    assert codes(response["errors"]) == ["PVE_PERMISSION_DENIED"]
    error = response["errors"][0]
    assert "auditor@pve!bare" in error["message"]
    assert "--tokens" in error["suggested_action"] or "-token" in error["suggested_action"]
    assert "privilege-separated" in error["suggested_action"]


@pytest.mark.parametrize("profile", [p for p in ALL_PROFILES if not has_tokens(p)])
def test_token_on_pve_before_62_says_tokens_need_62(profile: str) -> None:
    credential = {"api_token_id": "reader@pve!ro", "api_token_secret": "0b8e9c7a-1111-2222-3333-444455556666"}
    with sim(profile) as server:
        response = run(server, "healthcheck", auth="api_token", credential=credential)
    assert codes(response["errors"]) == ["PVE_AUTH_FAILED"]
    assert "6.2" in response["errors"][0]["message"]
    assert "user_password" in response["errors"][0]["suggested_action"]


def test_password_auth_works_on_every_version(server: SimServer) -> None:
    response = run(server, "collect", "auditor", auth="user_password")
    assert response["errors"] == []
    assert response["stats"]["inventory_complete"] is True
    assert response["detect"]["details"]["auth"] == "ticket"


def test_tfa_user_fails_with_a_hint_to_use_a_token(server: SimServer) -> None:
    response = run(server, "healthcheck", "tfa", auth="user_password")
    assert codes(response["errors"]) == ["PVE_AUTH_FAILED"]
    if version_of(server) >= (5, 4):
        assert "two-factor" in response["errors"][0]["message"]
        assert "token" in response["errors"][0]["suggested_action"].lower()


def test_agent_privilege_auditor_8x_forbidden_9x_allowed(server: SimServer) -> None:
    auth = auth_for(server.profile.name)
    response = run(server, "collect", "auditor", auth=auth)
    assert response["errors"] == []
    forbidden = [
        w
        for w in response["warnings"]
        if w["code"] == "PVE_GUEST_AGENT_UNAVAILABLE" and "forbidden" in w["context"]["reason"]
    ]
    answering = [
        g
        for g in server.topology.guests.values()
        if g.kind == "qemu" and g.state == "running" and g.agent_enabled and not g.template
    ]
    if version_of(server) >= (9, 0):
        assert forbidden == []
    else:
        assert len(forbidden) == len(answering)
        reason = forbidden[0]["context"]["reason"]
        assert "VM.Monitor" in reason
        assert "LedgerAgent" in reason


# -- secrets -------------------------------------------------------------------------------------------


def test_secrets_never_appear_in_responses_or_logs(
    server: SimServer, caplog: pytest.LogCaptureFixture
) -> None:
    auth = auth_for(server.profile.name)
    credential = server.credentials("auditor", auth=auth)  # type: ignore[arg-type]
    secret = credential.get("api_token_secret") or credential["password"]
    caplog.set_level(logging.DEBUG)
    texts = []
    for mode in ("healthcheck", "detect", "collect"):
        texts.append(json.dumps(run(server, mode, credential=credential)))
    wrong = {
        **credential,
        **({"api_token_secret": secret[::-1]} if auth == "api_token" else {"password": secret[::-1]}),
    }
    texts.append(json.dumps(run(server, "collect", credential=wrong)))
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    for text in [*texts, logged]:
        assert secret not in text
        assert secret[::-1] not in text
    assert any(getattr(r, "event", None) == "pve.guest_agent_unavailable" for r in caplog.records)


# -- T6-03 standalone and T6-B02 empty cluster ---------------------------------------------------------


@pytest.mark.parametrize("profile", ALL_PROFILES)
def test_t6_03_standalone_collect(profile: str) -> None:
    with sim(
        profile,
        cluster_topology(
            nodes=1,
            qemu=3,
            lxc=1,
            paused=0,
            suspended=0,
            prelaunch=0,
            hibernated=0,
            templates=0,
            agent_not_running=0,
            agent_qga_error=0,
        ),
    ) as server:
        detect = run(server, "detect")
        assert detect["detect"]["capabilities"]["is_cluster"] is False
        assert detect["detect"]["recommended_scope"] == "standalone"
        response = run(server, "collect", scope="standalone")
    assert response["errors"] == []
    kinds = sorted(a["external_kind"] for a in response["assets"])
    assert kinds == ["host", "vm", "vm", "vm", "vm"]
    assert {r["type"] for r in response["relations"]} == {"runs_on"}
    assert len(response["relations"]) == 4
    assert all(r["to"] == {"external_kind": "host", "external_id": "pve"} for r in response["relations"])
    assert "PVE_SCOPE_MISMATCH" not in codes(response["warnings"])


@pytest.mark.parametrize("profile", ALL_PROFILES)
def test_t6_b02_empty_cluster(profile: str) -> None:
    topo = cluster_topology(
        nodes=2,
        qemu=0,
        lxc=0,
        paused=0,
        suspended=0,
        prelaunch=0,
        hibernated=0,
        templates=0,
        agent_not_running=0,
        agent_qga_error=0,
    )
    with sim(profile, topo) as server:
        response = run(server, "collect")
    assert response["errors"] == []
    assert sorted(a["external_kind"] for a in response["assets"]) == ["cluster", "host", "host"]
    assert [r["type"] for r in response["relations"]] == ["member_of", "member_of"]
    assert response["stats"]["inventory_complete"] is True


@pytest.mark.parametrize("profile", ALL_PROFILES)
def test_t6_e04_guests_without_any_visible_node_fail_with_relations_empty(profile: str) -> None:
    """PVE always lists node entries; a proxy or filter that strips them leaves guests no host to run on."""
    with sim(profile) as server:
        guests_only = [
            {"id": g.id, "type": g.kind, "vmid": g.vmid, "node": g.node, "status": "running"}
            for g in server.topology.guests.values()
        ]
        server.add_fault(path="/cluster/resources", kind="wrong_type", value=guests_only)
        server.add_fault(path="/cluster/status", kind="wrong_type", value=[])
        response = run(server, "collect")
    assert codes(response["errors"]) == ["INVENTORY_RELATIONS_EMPTY"]
    assert response["errors"][0]["retryable"] is False
    assert response["stats"]["inventory_complete"] is False
    assert "assets" not in response
