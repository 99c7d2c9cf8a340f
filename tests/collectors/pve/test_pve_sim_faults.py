"""Faults, TLS trust, offline nodes, migration and load limits against pvesim over real HTTPS. Each test
changes its server (faults, topology, clock), so each gets its own."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest
from prometheus_client import generate_latest

from asset_ledger.collectors.pve import metrics
from asset_ledger.collectors.pve.client import pvedaemon_call
from pvesim import SimServer
from tests.collectors.pve.pve_sim import (
    ALL_PROFILES,
    assets_by_id,
    auth_for,
    cluster_topology,
    codes,
    run,
    sim,
)


def settled_request_count(server: SimServer) -> int:
    """The server's request count once it stopped changing (it records a request just after answering)."""
    last = server.stats()["requests"]
    for _ in range(30):
        time.sleep(0.1)
        now = server.stats()["requests"]
        if now == last:
            return int(now)
        last = now
    return int(last)


#: A spread of releases for the slower checks: oldest, each major's last, and the newest.
SPREAD = ["5.0", "6.1", "6.4", "7.4", "8.4", "9.1-latest"]


# -- T6-E03 rate limiting ---------------------------------------------------------------------------------


@pytest.mark.parametrize("profile", ALL_PROFILES)
def test_t6_e03_rate_limit_that_does_not_clear_fails_retryable(
    profile: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="asset_ledger.collectors.pve")
    before = metrics.RATE_LIMIT_COUNT.labels(source_id="pve-test")._value.get()
    with sim(profile) as server:
        server.add_fault(path="/cluster/resources", status=429, retry_after=0)
        response = run(server, "collect")
    assert codes(response["errors"]) == ["PVE_RATE_LIMIT"]
    assert response["errors"][0]["retryable"] is True
    assert response["errors"][0]["category"] == "rate_limit"
    assert response["stats"]["rate_limited"] == 4  # the first answer and three retries
    events = [r for r in caplog.records if getattr(r, "event", None) == "pve.rate_limited"]
    assert len(events) == 4
    assert {(e.source_id, e.region, e.retry_after) for e in events} == {("pve-test", "127.0.0.1", 0.0)}  # type: ignore[attr-defined]
    after = metrics.RATE_LIMIT_COUNT.labels(source_id="pve-test")._value.get()
    assert after - before == 4


@pytest.mark.parametrize(("profile", "status"), [(p, 429) for p in ALL_PROFILES] + [(p, 503) for p in SPREAD])
def test_transient_rate_limit_is_retried_and_the_run_succeeds(profile: str, status: int) -> None:
    with sim(profile) as server:
        server.add_fault(path="/cluster/resources", status=status, retry_after=0, count=2)
        response = run(server, "collect")
    assert response["errors"] == []
    assert response["stats"]["rate_limited"] == 2


def test_retry_after_is_honoured() -> None:
    with sim("8.4") as server:
        server.add_fault(path="/cluster/status", status=429, retry_after=1, count=1)
        started = time.monotonic()
        response = run(server, "collect")
        elapsed = time.monotonic() - started
    assert response["errors"] == []
    assert elapsed >= 1.0


# -- transport and payload faults on enumeration calls ------------------------------------------------


ENUMERATION_FAULTS: list[tuple[str, dict[str, Any], str]] = [
    ("500", {"status": 500, "reason": "cluster not ready - no quorum (500)"}, "INVENTORY_INCOMPLETE"),
    ("502", {"status": 502}, "PVE_NETWORK_ERROR"),
    ("reset", {"kind": "reset"}, "PVE_NETWORK_ERROR"),
    ("reset_mid_body", {"kind": "reset_mid_body"}, "PVE_NETWORK_ERROR"),
    ("truncate", {"kind": "truncate"}, "PVE_NETWORK_ERROR"),
    ("malformed_json", {"kind": "malformed_json"}, "PVE_PARSE_ERROR"),
    ("wrong_type", {"kind": "wrong_type", "value": {"qemu/100": "x"}}, "PVE_PARSE_ERROR"),
    ("wrong_type_string", {"kind": "wrong_type"}, "PVE_PARSE_ERROR"),
]


@pytest.mark.parametrize("profile", SPREAD)
@pytest.mark.parametrize(
    ("label", "fault", "code"), ENUMERATION_FAULTS, ids=[f[0] for f in ENUMERATION_FAULTS]
)
def test_enumeration_faults_fail_with_the_mapped_code(
    profile: str, label: str, fault: dict[str, Any], code: str
) -> None:
    with sim(profile) as server:
        server.add_fault(path="/cluster/resources", **fault)
        response = run(server, "collect")
    assert codes(response["errors"]) == [code], response["errors"]
    assert response["stats"]["inventory_complete"] is False
    assert "assets" not in response


@pytest.mark.parametrize("path", ["/cluster/status", "/access/permissions", "/version"])
def test_wrong_types_on_other_enumeration_calls(path: str) -> None:
    with sim("8.4") as server:
        server.add_fault(path=path, kind="wrong_type", value=[1, 2])
        response = run(server, "collect")
    assert codes(response["errors"]) == ["PVE_PARSE_ERROR"]


@pytest.mark.parametrize("profile", SPREAD)
def test_slow_answer_beyond_timeout_is_a_network_error(profile: str) -> None:
    with sim(profile) as server:
        server.add_fault(path="/cluster/resources", kind="slow", delay=4.0)
        started = time.monotonic()
        response = run(server, "collect", timeout_ms=1000)
        elapsed = time.monotonic() - started
        server.clear_faults()
    assert codes(response["errors"]) == ["PVE_NETWORK_ERROR"]
    assert "timed out" in response["errors"][0]["message"]
    assert response["errors"][0]["retryable"] is True
    assert elapsed < 3.5  # the 1 s request timeout ended the run, not the 4 s answer


# -- enrichment faults are warnings -------------------------------------------------------------------


@pytest.mark.parametrize("profile", SPREAD)
def test_guest_config_failure_keeps_the_guest_with_a_warning(profile: str) -> None:
    with sim(profile) as server:
        guest = next(g for g in server.topology.guests.values() if g.kind == "qemu")
        server.add_fault(
            path=f"/nodes/{guest.node}/qemu/{guest.vmid}/config", status=500, reason="got timeout"
        )
        response = run(server, "collect")
    assert response["errors"] == []
    details = [w for w in response["warnings"] if w["code"] == "PVE_GUEST_DETAILS_UNAVAILABLE"]
    assert [w["context"]["vm_id"] for w in details] == [guest.vmid]
    assert f"vm:{guest.id}" in assets_by_id(response)


@pytest.mark.parametrize("profile", SPREAD)
def test_node_unreachable_595_on_status_is_offline_handling(profile: str) -> None:
    with sim(profile) as server:
        server.add_fault(path="/nodes/node2/status", status=595, reason="No route to host")
        response = run(server, "collect")
    assert response["errors"] == []
    offline = [w for w in response["warnings"] if w["code"] == "PVE_NODE_OFFLINE"]
    assert [w["context"]["node"] for w in offline] == ["node2"]
    by_id = assets_by_id(response)
    assert by_id["host:node2"]["normalized"]["runtime"]["power_state"] == "unknown"


# -- offline node, migration ------------------------------------------------------------------------------


@pytest.mark.parametrize("profile", ALL_PROFILES)
def test_offline_node_keeps_its_guests_with_power_state_unknown(profile: str) -> None:
    with sim(profile) as server:
        server.set_node_online("node3", False)
        on_node3 = {g.id for g in server.topology.guests.values() if g.node == "node3"}
        response = run(server, "collect")
        requested = [r.path for r in server.request_log]
    assert on_node3
    assert response["errors"] == []
    assert response["stats"]["inventory_complete"] is True
    offline = [w for w in response["warnings"] if w["code"] == "PVE_NODE_OFFLINE"]
    assert len(offline) == 1
    assert "node3" in offline[0]["message"]
    by_id = assets_by_id(response)
    assert by_id["host:node3"]["normalized"]["runtime"] == {
        "power_state": "unknown",
        "status_detail": "offline",
    }
    for gid in on_node3:
        assert by_id[f"vm:{gid}"]["normalized"]["runtime"]["power_state"] == "unknown"
    runs_on = {
        r["from"]["external_id"]: r["to"]["external_id"]
        for r in response["relations"]
        if r["type"] == "runs_on"
    }
    assert all(runs_on[gid] == "node3" for gid in on_node3)
    assert not any(p.startswith("/api2/json/nodes/node3/") for p in requested)


@pytest.mark.parametrize("profile", ALL_PROFILES)
def test_migration_keeps_external_ids_and_moves_runs_on(profile: str) -> None:
    with sim(profile) as server:
        first = run(server, "collect")
        guest = next(g for g in server.topology.guests.values() if g.kind == "qemu" and g.node == "node1")
        server.migrate(guest.id, "node2")
        second = run(server, "collect")
    assert first["errors"] == second["errors"] == []
    assert set(assets_by_id(first)) == set(assets_by_id(second))

    def runs_on(response: dict[str, Any]) -> dict[str, str]:
        return {
            r["from"]["external_id"]: r["to"]["external_id"]
            for r in response["relations"]
            if r["type"] == "runs_on"
        }

    assert runs_on(first)[guest.id] == "node1"
    assert runs_on(second)[guest.id] == "node2"


# -- guest agent deadline -----------------------------------------------------------------------------------


@pytest.mark.parametrize("profile", SPREAD)
def test_hanging_agent_cannot_stall_the_run(profile: str) -> None:
    topo = cluster_topology(agent_hang=1, agent_timeout=1)
    with sim(profile, topo, hang_delay=30) as server:
        started = time.monotonic()
        response = run(server, "collect", agent_timeout_ms=500, timeout_ms=5000)
        elapsed = time.monotonic() - started
    assert response["errors"] == []
    reasons = [
        w["context"]["reason"] for w in response["warnings"] if w["code"] == "PVE_GUEST_AGENT_UNAVAILABLE"
    ]
    assert any("deadline" in r for r in reasons)
    assert any("timeout" in r.lower() for r in reasons)
    assert elapsed < 5


# -- TLS ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("profile", SPREAD)
def test_tls_verification_is_on_by_default(profile: str) -> None:
    with sim(profile) as server:
        plain = run(server, "healthcheck", tls_ca_bundle=None)
        with_ca = run(server, "healthcheck")
    assert codes(plain["errors"]) == ["PVE_TLS_ERROR"]
    assert plain["errors"][0]["retryable"] is False
    assert "tls_ca_bundle" in plain["errors"][0]["suggested_action"]
    assert with_ca["errors"] == []


@pytest.mark.parametrize("profile", SPREAD)
def test_pinned_fingerprint_with_or_without_colons_and_a_wrong_one(profile: str) -> None:
    with sim(profile) as server:
        colons = run(server, "collect", tls_fingerprint=server.fingerprint)
        plain = run(server, "healthcheck", tls_fingerprint=server.fingerprint_hex)
        before = settled_request_count(server)
        wrong = run(server, "healthcheck", tls_fingerprint="AB" * 32)
        after = settled_request_count(server)
    assert colons["errors"] == []
    assert colons["stats"]["inventory_complete"] is True
    assert plain["errors"] == []
    assert codes(wrong["errors"]) == ["PVE_TLS_ERROR"]
    assert "does not match" in wrong["errors"][0]["message"]
    # a failed pin check sends no HTTP request (and so no credential) to the server
    assert after == before


@pytest.mark.parametrize("profile", SPREAD)
def test_certificate_change_against_the_pin_fails(profile: str) -> None:
    with sim(profile) as server:
        pinned = server.fingerprint
        assert run(server, "healthcheck", tls_fingerprint=pinned)["errors"] == []
        server.rotate_certificate()
        response = run(server, "healthcheck", tls_fingerprint=pinned)
    assert codes(response["errors"]) == ["PVE_TLS_ERROR"]
    assert pinned in response["errors"][0]["message"]
    assert "pvenode cert info" in response["errors"][0]["suggested_action"]


def test_verification_off_works_loudly() -> None:
    with sim("8.4") as server:
        response = run(server, "healthcheck", tls_verify=False)
    assert response["errors"] == []
    assert codes(response["warnings"]) == ["PVE_TLS_VERIFY_DISABLED"]


# -- tickets ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("profile", SPREAD)
def test_ticket_expiring_mid_run_is_renewed(profile: str) -> None:
    with sim(profile) as server:
        advanced = []

        def progress(event: dict[str, Any]) -> None:
            if event["phase"] == "nodes" and not advanced:
                advanced.append(True)
                server.advance_clock(3 * 3600)  # every ticket issued so far is now expired

        response = run(server, "collect", "auditor", auth="user_password", progress=progress)
        logins = [r for r in server.request_log if r.path.endswith("/access/ticket")]
    assert advanced
    assert response["errors"] == []
    assert len(logins) == 2


# -- load limits, progress, metrics ---------------------------------------------------------------------


def high_water(records: list[Any]) -> int:
    """The most of ``records`` the server was serving at the same moment."""
    edges = sorted([(r.start, 1) for r in records] + [(r.start + r.duration, -1) for r in records])
    level = peak = 0
    for _, step in edges:
        level += step
        peak = max(peak, level)
    return peak


@pytest.mark.parametrize("profile", SPREAD)
def test_at_most_three_calls_per_node_in_each_of_pvedaemon_and_pveproxy(profile: str) -> None:
    topo = cluster_topology(nodes=4, qemu=24, lxc=8)
    events: list[dict[str, Any]] = []
    with sim(profile, topo, latency_ms=5) as server:
        response = run(server, "collect", max_parallel_nodes=2, progress=events.append)
        stats = server.stats()
        log = server.request_log
    assert response["errors"] == []
    assert max(stats["protected_high_water"].values()) <= 3
    for node in ("node1", "node2", "node3", "node4"):
        others = [r for r in log if r.node == node and not r.protected]
        assert others, node
        assert high_water(others) <= 3, node
    # two nodes at a time, each with at most 3 + 3 calls (the cluster-wide calls come before them)
    assert stats["max_in_flight"] <= 2 * 6
    phases = [e["phase"] for e in events]
    assert phases[0] == "connect"
    assert phases[-1] == "done"
    node_events = [e for e in events if e["phase"] == "nodes" and e["node"]]
    assert sorted(e["node"] for e in node_events) == ["node1", "node2", "node3", "node4"]
    assert node_events[-1]["done"] == node_events[-1]["total"] == 4


@pytest.mark.parametrize("profile", ["6.4", "8.4"])
def test_guest_configs_are_not_held_up_by_dead_guest_agents(profile: str) -> None:
    """Dead agents hold all 3 pvedaemon workers of their node for seconds; the configs (answered by
    pveproxy) must be read meanwhile, not after them."""
    topo = cluster_topology(
        nodes=1, qemu=30, lxc=0, agent_share=1.0, agent_timeout=6, agent_not_running=0, agent_qga_error=0
    )
    with sim(profile, topo, latency_ms=2, agent_delay=1.0) as server:
        response = run(server, "collect")
        log = server.request_log
    assert response["errors"] == []
    dead = sorted(
        (r for r in log if r.path.endswith("/agent/network-get-interfaces") and r.duration >= 1.0),
        key=lambda r: r.start,
    )
    configs = [r for r in log if r.path.endswith("/config")]
    assert len(dead) == 6
    assert len(configs) == 30
    first_round_over = min(r.start + r.duration for r in dead)
    assert max(r.start + r.duration for r in configs) < first_round_over


def test_metrics_are_exposed_in_their_own_registry() -> None:
    with sim("8.4") as server:
        run(server, "collect")
        server.add_fault(path="/cluster/resources", status=500)
        run(server, "collect")
    text = generate_latest(metrics.REGISTRY).decode()
    assert 'pve_collect_success_rate{source_id="pve-test"}' in text
    assert "pve_rate_limit_count_total" in text
    assert 'pve_guest_agent_unavailable_rate{source_id="pve-test"}' in text
    rate = metrics.COLLECT_SUCCESS_RATE.labels(source_id="pve-test")._value.get()
    assert 0 < rate < 1


def test_auth_type_matches_profile_helper() -> None:
    assert auth_for("6.1") == "user_password"
    assert auth_for("6.2") == "api_token"


@pytest.mark.parametrize("profile", ALL_PROFILES)
def test_the_collector_knows_which_of_its_calls_pvedaemon_serves(profile: str) -> None:
    """The collector's split between pvedaemon and pveproxy slots matches PVE's own ``protected`` flag (pvesim
    takes it from the release's API schema) for every call a collect makes on that release."""
    with sim(profile, cluster_topology(agent_share=1.0)) as server:
        response = run(server, "collect")
        log = server.request_log
    assert response["errors"] == []
    api = [r for r in log if r.template and not r.path.endswith("/access/ticket")]
    assert any(r.protected for r in api)
    assert any(not r.protected for r in api)
    wrong = {
        (r.method, r.template)
        for r in api
        if pvedaemon_call(r.path.removeprefix("/api2/json")) != r.protected
    }
    assert wrong == set()
