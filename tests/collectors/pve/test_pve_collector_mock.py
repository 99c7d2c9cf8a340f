"""Collector logic on hand-written PVE answers (``httpx.MockTransport``): cases a faithful simulator cannot
produce, such as guests whose node is invisible (INVENTORY_RELATIONS_EMPTY) or wrongly typed lists."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from asset_ledger.collectors.pve import PveCollector
from asset_ledger.contract import validate

SECRET = "9d0c1f7e-0000-1111-2222-333344445555"
PERMS = {"/": {"Sys.Audit": 1, "VM.Audit": 1}, "/vms": {"VM.Audit": 1}, "/nodes": {"Sys.Audit": 1}}


def standalone_answers() -> dict[str, Any]:
    return {
        "/version": {"version": "7.4-3", "release": "7.4", "repoid": "0f39f621"},
        "/access/permissions": PERMS,
        "/cluster/status": [
            {"type": "node", "id": "node/pve", "name": "pve", "nodeid": 0, "online": 1, "local": 1}
        ],
        "/cluster/resources": [
            {"id": "node/pve", "type": "node", "node": "pve", "status": "online", "maxcpu": 8},
            {"id": "qemu/100", "type": "qemu", "vmid": 100, "node": "pve", "status": "running", "name": "a"},
            {"id": "lxc/101", "type": "lxc", "vmid": 101, "node": "pve", "status": "stopped", "name": "b"},
        ],
        "/nodes/pve/status": {
            "cpuinfo": {"cpus": 8},
            "memory": {"total": 1024},
            "pveversion": "pve-manager/7.4-3/x",
        },
        "/nodes/pve/qemu": [{"vmid": 100, "status": "running", "qmpstatus": "paused"}],
        "/nodes/pve/qemu/100/config": {"name": "a", "memory": 1024, "cores": 2, "agent": "0"},
        "/nodes/pve/lxc/101/config": {"hostname": "b", "memory": 256, "net0": "name=eth0,ip=10.0.0.9/24"},
    }


def run(answers: dict[str, Any], mode: str = "collect", **config: Any) -> dict[str, Any]:
    requested: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/api2/json")
        requested.append(path)
        if path not in answers:
            return httpx.Response(
                501, extensions={"reason_phrase": f"Method 'GET {path}' not implemented".encode()}
            )
        value = answers[path]
        if isinstance(value, httpx.Response):
            return value
        return httpx.Response(200, json={"data": value})

    collector = PveCollector(transport=httpx.MockTransport(handler))
    request = {
        "schema_version": "collector-request-v1",
        "mode": mode,
        "source": {"id": "src", "type": "pve", "config": {"endpoint": "https://pve.test:8006", **config}},
        "credential": {"api_token_id": "ledger@pve!inv", "api_token_secret": SECRET},
    }
    response = asyncio.run(collector.run(request))
    assert validate("collector-response-v1", response) == []
    assert SECRET not in repr(response)
    assert len(requested) == len(set(requested)), "a request was made twice"
    response["_requested"] = requested
    return response


def test_standalone_collect_with_paused_vm_and_static_lxc_ip() -> None:
    response = run(standalone_answers())
    assert response["errors"] == []
    kinds = sorted(a["external_id"] for a in response["assets"])
    assert kinds == ["lxc/101", "pve", "qemu/100"]
    vm = next(a for a in response["assets"] if a["external_id"] == "qemu/100")
    assert vm["normalized"]["runtime"]["power_state"] == "paused"
    ct = next(a for a in response["assets"] if a["external_id"] == "lxc/101")
    assert ct["normalized"]["network"]["ip_addresses"] == ["10.0.0.9"]
    assert ct["raw_payload"]["ip_sources"] == [
        {"address": "10.0.0.9", "source": "config_static", "interface": "eth0"}
    ]
    assert {r["type"] for r in response["relations"]} == {"runs_on"}
    assert response["detect"]["driver"] == "pve-cap-v2"
    assert response["stats"]["inventory_complete"] is True
    # Only running VMs get an agent check; the paused one is not asked.
    assert not any("agent" in p for p in response["_requested"])


def test_guests_on_invisible_node_give_relations_empty() -> None:
    answers = standalone_answers()
    answers["/cluster/status"] = []
    answers["/cluster/resources"] = [
        {"id": "qemu/100", "type": "qemu", "vmid": 100, "node": "ghost", "status": "running", "name": "a"}
    ]
    response = run(answers)
    assert [e["code"] for e in response["errors"]] == ["INVENTORY_RELATIONS_EMPTY"]
    assert "assets" not in response
    assert response["stats"]["inventory_complete"] is False


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("/cluster/resources", {"qemu/100": {}}),
        ("/cluster/resources", [{"id": "qemu/100", "type": "qemu", "vmid": [100], "node": "pve"}]),
        ("/cluster/status", "pve"),
        ("/access/permissions", ["/"]),
        ("/version", None),
    ],
)
def test_wrongly_typed_enumeration_fails_with_parse_error(path: str, value: Any) -> None:
    answers = standalone_answers()
    answers[path] = value
    response = run(answers)
    assert [e["code"] for e in response["errors"]] == ["PVE_PARSE_ERROR"]


def test_wrongly_typed_enrichment_is_a_warning() -> None:
    answers = standalone_answers()
    answers["/nodes/pve/qemu/100/config"] = ["not", "an", "object"]
    answers["/nodes/pve/status"] = "oops"
    response = run(answers)
    assert response["errors"] == []
    codes = sorted(w["code"] for w in response["warnings"])
    assert codes == ["PVE_GUEST_DETAILS_UNAVAILABLE", "PVE_NODE_DETAILS_UNAVAILABLE"]


def test_scope_mismatch_is_reported() -> None:
    response = run(standalone_answers(), mode="detect", scope="cluster")
    assert response["errors"] == []
    assert response["detect"]["recommended_scope"] == "standalone"
    assert [w["code"] for w in response["warnings"]] == ["PVE_SCOPE_MISMATCH"]


def test_bad_mode_and_bad_config_are_clean_failures() -> None:
    collector = PveCollector()
    response = asyncio.run(collector.run({"mode": "explode", "source": {}}))
    assert response["errors"][0]["code"] == "REQUEST_INVALID"
    response = asyncio.run(
        collector.run(
            {"mode": "collect", "source": {"id": "x", "type": "pve", "config": {"endpoint": "ftp://x"}}}
        )
    )
    assert response["errors"][0]["code"] == "PVE_CONFIG_INVALID"
    assert validate("collector-response-v1", response) == []
