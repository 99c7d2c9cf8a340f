"""Every transport fault pvesim can inject, through the whole stack: ``Ledger.run_now`` with the real ``pve``
collector against pvesim over HTTPS, on a ledger that already holds the estate.

Either the inventory is still complete and the run succeeds with precise warnings, or the run fails with
the right code and retryability and the ledger (every asset, relation, record and raw blob) is exactly what
it was before the run.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from asset_ledger.core import Ledger, Run, Settings
from pvesim import SimServer
from tests.reliability.helpers import add_pve_source, codes, ledger_state, orphans, small_topology

#: Faults that end the run: (id, path glob, fault kwargs, code, retryable).
FAILING: list[tuple[str, str, dict[str, Any], str, bool]] = [
    ("resources-reset", "/cluster/resources", {"kind": "reset"}, "PVE_NETWORK_ERROR", True),
    ("resources-reset-mid-body", "/cluster/resources", {"kind": "reset_mid_body"}, "PVE_NETWORK_ERROR", True),
    ("resources-truncated", "/cluster/resources", {"kind": "truncate"}, "PVE_NETWORK_ERROR", True),
    ("resources-malformed", "/cluster/resources", {"kind": "malformed_json"}, "PVE_PARSE_ERROR", False),
    (
        "resources-wrong-type",
        "/cluster/resources",
        {"kind": "wrong_type", "value": "x"},
        "PVE_PARSE_ERROR",
        False,
    ),
    ("resources-hang", "/cluster/resources", {"kind": "hang"}, "PVE_NETWORK_ERROR", True),
    (
        "resources-latency-beyond-timeout",
        "/cluster/resources",
        {"kind": "slow", "delay": 4.0},
        "PVE_NETWORK_ERROR",
        True,
    ),
    (
        "resources-500",
        "/cluster/resources",
        {"status": 500, "reason": "cluster not ready"},
        "INVENTORY_INCOMPLETE",
        False,
    ),
    ("resources-502-burst", "/cluster/resources", {"status": 502}, "PVE_NETWORK_ERROR", True),
    ("resources-504-burst", "/cluster/resources", {"status": 504}, "PVE_NETWORK_ERROR", True),
    ("resources-429-storm", "/cluster/resources", {"status": 429, "retry_after": 0}, "PVE_RATE_LIMIT", True),
    ("resources-503-storm", "/cluster/resources", {"status": 503, "retry_after": 0}, "PVE_RATE_LIMIT", True),
    ("status-reset", "/cluster/status", {"kind": "reset"}, "PVE_NETWORK_ERROR", True),
    (
        "status-wrong-type",
        "/cluster/status",
        {"kind": "wrong_type", "value": {"a": 1}},
        "PVE_PARSE_ERROR",
        False,
    ),
    ("version-malformed", "/version", {"kind": "malformed_json"}, "PVE_PARSE_ERROR", False),
    ("permissions-truncated", "/access/permissions", {"kind": "truncate"}, "PVE_NETWORK_ERROR", True),
    (
        "permissions-wrong-type",
        "/access/permissions",
        {"kind": "wrong_type", "value": [1]},
        "PVE_PARSE_ERROR",
        False,
    ),
    ("qemu-list-reset", "/nodes/node1/qemu", {"kind": "reset"}, "PVE_NETWORK_ERROR", True),
    ("auth-401", "/version", {"status": 401, "reason": "invalid token value!"}, "PVE_AUTH_FAILED", False),
]

#: Faults after which the inventory is still complete: (id, path glob, fault kwargs, warning codes).
COMPLETE: list[tuple[str, str, dict[str, Any], set[str]]] = [
    ("resources-latency-spike", "/cluster/resources", {"kind": "slow", "delay": 0.5}, set()),
    ("every-call-latency-spike", "/*", {"kind": "slow", "delay": 0.05, "probability": 0.3}, set()),
    ("resources-429-twice", "/cluster/resources", {"status": 429, "retry_after": 0, "count": 2}, set()),
    ("resources-503-twice", "/cluster/resources", {"status": 503, "retry_after": 0, "count": 2}, set()),
    (
        "node-status-595",
        "/nodes/node2/status",
        {"status": 595, "reason": "No route to host"},
        {"PVE_NODE_OFFLINE"},
    ),
    (
        "node-status-596",
        "/nodes/node3/status",
        {"status": 596, "reason": "Broken pipe"},
        {"PVE_NODE_OFFLINE"},
    ),
    (
        "guest-config-500",
        "/nodes/*/qemu/*/config",
        {"status": 500, "reason": "got timeout", "count": 2},
        {"PVE_GUEST_DETAILS_UNAVAILABLE"},
    ),
    ("agent-reset", "/nodes/*/qemu/*/agent/*", {"kind": "reset"}, {"PVE_GUEST_AGENT_UNAVAILABLE"}),
    (
        "agent-malformed",
        "/nodes/*/qemu/*/agent/*",
        {"kind": "malformed_json"},
        {"PVE_GUEST_AGENT_UNAVAILABLE"},
    ),
    (
        "qemu-list-wrong-type",
        "/nodes/node1/qemu",
        {"kind": "wrong_type", "value": "x"},
        {"PVE_GUEST_DETAILS_UNAVAILABLE"},
    ),
    ("agent-hang", "/nodes/*/qemu/*/agent/*", {"kind": "hang"}, {"PVE_GUEST_AGENT_UNAVAILABLE"}),
]

#: Warnings every collect of the test topology carries (one VM's agent is not running).
BASELINE = {"PVE_GUEST_AGENT_UNAVAILABLE"}


@dataclass
class Estate:
    ledger: Ledger
    server: SimServer
    runs: list[Run] = field(default_factory=list)

    def collect(self) -> Run:
        ran = self.ledger.run_now("pve", "collect")
        self.runs.append(ran)
        return ran


@pytest.fixture
def estate(tmp_path: Path, pvesim_server: Any) -> Iterator[Estate]:
    server = pvesim_server(profile="8.4", topology=small_topology(), time_scale=0.01, hang_delay=30)
    with Ledger(Settings(data_dir=tmp_path / "data")) as ledger:
        ledger.init()
        add_pve_source(ledger, server, timeout_ms=1500, agent_timeout_ms=500)
        first = ledger.run_now("pve", "collect")
        assert first.status == "succeeded", first.errors
        yield Estate(ledger, server, [first])


def inventory_size(server: SimServer) -> int:
    return len(server.topology.guests) + len(server.topology.nodes) + 1


@pytest.mark.parametrize(
    ("path", "fault", "code", "retryable"),
    [f[1:] for f in FAILING],
    ids=[f[0] for f in FAILING],
)
def test_a_fault_that_breaks_the_inventory_fails_the_run_and_changes_nothing(
    estate: Estate, path: str, fault: dict[str, Any], code: str, retryable: bool
) -> None:
    # Something really changed at the source, so a wrongly applied snapshot would show.
    estate.server.topology.remove_guest(next(iter(estate.server.topology.guests)))
    estate.server.set_node_online("node3", False)
    before = ledger_state(estate.ledger)
    estate.server.add_fault(path=path, **fault)
    started = time.monotonic()
    ran = estate.collect()
    elapsed = time.monotonic() - started
    assert ran.status == "failed"
    assert codes(ran.errors) == [code], ran.errors
    assert ran.errors[0]["retryable"] is retryable
    assert ran.errors[0]["message"]
    assert ledger_state(estate.ledger) == before
    assert orphans(estate.ledger) == {
        "records_without_blob": 0,
        "assets_without_blob": 0,
        "unreferenced_blobs": 0,
    }
    assert elapsed < 20, "a fault must not stall the run beyond its timeouts"
    # Once the fault is gone the next run succeeds and applies the change.
    estate.server.clear_faults()
    after = estate.collect()
    assert after.status == "succeeded", after.errors
    assert after.summary is not None
    assert after.summary["went_missing"] == 1


@pytest.mark.parametrize(
    ("path", "fault", "warnings"), [f[1:] for f in COMPLETE], ids=[f[0] for f in COMPLETE]
)
def test_a_fault_that_leaves_the_inventory_complete_succeeds_with_precise_warnings(
    estate: Estate, path: str, fault: dict[str, Any], warnings: set[str]
) -> None:
    handle = estate.server.add_fault(path=path, **fault)
    ran = estate.collect()
    assert ran.status == "succeeded", ran.errors
    assert handle.fired > 0
    assert set(codes(ran.warnings)) == BASELINE | warnings
    assets = estate.ledger.list_assets(limit=1000).items
    assert len(assets) == inventory_size(estate.server)
    assert all(a.status == "present" for a in assets)
    for warning in ran.warnings:
        if warning["code"] == "PVE_NODE_OFFLINE":
            node = warning["context"]["node"]
            assert node in path
            host = next(a for a in assets if a.external_kind == "host" and a.external_id == node)
            assert host.power_state == "unknown"
    if "qemu/*/config" in path:
        details = [w for w in ran.warnings if w["code"] == "PVE_GUEST_DETAILS_UNAVAILABLE"]
        assert len(details) == 2  # exactly the two configs the fault broke


def test_expired_ticket_mid_run_is_renewed_through_the_ledger(tmp_path: Path, pvesim_server: Any) -> None:
    server = pvesim_server(profile="7.4", topology=small_topology(), time_scale=0.01)
    with Ledger(Settings(data_dir=tmp_path / "data")) as ledger:
        ledger.init()
        add_pve_source(ledger, server, principal="auditor", auth="user_password")
        advanced: list[bool] = []

        def progress(event: Any) -> None:
            if event["phase"] == "nodes" and not advanced:
                advanced.append(True)
                server.advance_clock(3 * 3600)

        ran = ledger.run_now("pve", "collect", progress=progress)
    assert advanced
    assert ran.status == "succeeded", ran.errors
    logins = [r for r in server.request_log if r.path.endswith("/access/ticket")]
    assert len(logins) == 2


@pytest.mark.parametrize("new_ca", [False, True], ids=["new-leaf-vs-pin", "new-ca-vs-bundle"])
def test_certificate_change_fails_the_run_not_retryable_and_changes_nothing(
    tmp_path: Path, pvesim_server: Any, new_ca: bool
) -> None:
    server = pvesim_server(profile="8.4", topology=small_topology(), time_scale=0.01)
    with Ledger(Settings(data_dir=tmp_path / "data")) as ledger:
        ledger.init()
        if new_ca:
            ca_copy = tmp_path / "pve-ca.pem"  # the CA the admin configured (pvesim rewrites its own file)
            ca_copy.write_bytes(Path(server.ca_path).read_bytes())
            add_pve_source(ledger, server, tls_ca_bundle=str(ca_copy))
        else:
            add_pve_source(ledger, server, tls_fingerprint=server.fingerprint)
        assert ledger.run_now("pve", "collect").status == "succeeded"
        before = ledger_state(ledger)
        server.rotate_certificate(new_ca=new_ca)
        requests = server.stats()["requests"]
        ran = ledger.run_now("pve", "collect")
        assert ran.status == "failed"
        assert codes(ran.errors) == ["PVE_TLS_ERROR"]
        assert ran.errors[0]["retryable"] is False
        assert ledger_state(ledger) == before
        time.sleep(0.3)
        assert server.stats()["requests"] == requests  # nothing (no credential) was sent after the handshake


def test_verification_off_is_recorded_on_every_run_it_affects(tmp_path: Path, pvesim_server: Any) -> None:
    server = pvesim_server(profile="9.1", topology=small_topology(), time_scale=0.01)
    with Ledger(Settings(data_dir=tmp_path / "data")) as ledger:
        ledger.init()
        add_pve_source(ledger, server, tls_verify=False)
        runs = [ledger.run_now("pve", mode) for mode in ("healthcheck", "detect", "collect", "collect")]
        server.add_fault(path="/cluster/resources", kind="reset")
        runs.append(ledger.run_now("pve", "collect"))
        stored = [ledger.get_run(r.id) for r in runs]
    assert [r.status for r in stored] == ["succeeded"] * 4 + ["failed"]
    for r in stored:
        assert "PVE_TLS_VERIFY_DISABLED" in codes(r.warnings), (r.mode, r.status, r.warnings)
