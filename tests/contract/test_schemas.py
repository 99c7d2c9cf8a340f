"""The schemas accept what a collector should send and reject, with a JSON pointer, what it must not."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from asset_ledger.contract import validate

VM: dict[str, Any] = {
    "kind": "vm",
    "identity": {"hostname": "web-01", "cloud_native_id": "100"},
    "hardware": {"cpu_count": 2, "memory_bytes": 2147483648},
    "runtime": {"power_state": "running"},
    "network": {"ip_addresses": ["192.0.2.5", "2001:db8::5"], "mac_addresses": ["bc:24:11:00:00:01"]},
    "virtualization": {"type": "lxc", "template": False, "tags": ["prod"]},
}
HOST: dict[str, Any] = {"kind": "host", "identity": {"hostname": "pve1"}, "os": {"name": "Proxmox VE"}}
CLUSTER: dict[str, Any] = {"kind": "cluster", "identity": {"caption": "lab"}, "cluster": {"node_count": 3}}


@pytest.mark.parametrize("record", [VM, HOST, CLUSTER], ids=["vm", "host", "cluster"])
def test_valid_records_pass(record: dict[str, Any]) -> None:
    assert validate("normalized-v1", record) == []


def _with(record: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(record)
    target = doc
    for key in path[:-1]:
        target = target.setdefault(key, {})
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return doc


@pytest.mark.parametrize(
    ("record", "path", "value", "pointer"),
    [
        (VM, ("runtime", "power_state"), KeyError, "/runtime"),
        (VM, ("runtime", "power_state"), "on", "/runtime/power_state"),
        (VM, ("identity", "favourite_colour"), "blue", "/identity"),
        (VM, ("network", "ip_addresses"), ["192.0.2.5", "not-an-ip"], "/network/ip_addresses/1"),
        (VM, ("network", "mac_addresses"), ["BC-24-11-00-00-01"], "/network/mac_addresses/0"),
        (VM, ("hardware", "memory_bytes"), "2048", "/hardware/memory_bytes"),
        (VM, ("hardware", "cpu_count"), -1, "/hardware/cpu_count"),
        (VM, ("virtualization", "type"), "vmware", "/virtualization/type"),
        (HOST, ("identity", "hostname"), KeyError, "/identity"),
        (HOST, ("identity", "hostname"), "", "/identity/hostname"),
        (CLUSTER, ("identity", "caption"), KeyError, "/identity"),
        (CLUSTER, ("hardware",), {"cpu_count": 1}, "/hardware"),
    ],
)
def test_invalid_records_name_the_field(
    record: dict[str, Any], path: tuple[str, ...], value: Any, pointer: str
) -> None:
    issues = validate("normalized-v1", _with(record, path, value))
    assert issues, "the schema accepted an invalid record"
    assert pointer in [i.pointer for i in issues]


def test_unknown_top_level_key_is_rejected() -> None:
    issues = validate("normalized-v1", {**HOST, "pve": {"level": "c"}})
    assert [str(i) for i in issues] == ["/: Additional properties are not allowed ('pve' was unexpected)"]


def _response(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "schema_version": "collector-response-v1",
        "mode": "collect",
        "source_type": "pve",
        "collector_version": "1.0",
        "detect": {"target_version": "8.4", "capabilities": {"is_cluster": False}, "driver": "d"},
        "assets": [
            {
                "external_kind": "host",
                "external_id": "pve1",
                "normalized": HOST,
                "raw_payload": {"node": "pve1"},
            },
        ],
        "relations": [],
        "stats": {"inventory_complete": True},
        "errors": [],
        "warnings": [],
    }
    doc.update(overrides)
    return doc


def test_response_validates_nested_normalized_records() -> None:
    assert validate("collector-response-v1", _response()) == []
    bad = _response(
        assets=[
            {"external_kind": "vm", "external_id": "qemu/1", "normalized": {"kind": "vm"}, "raw_payload": {}}
        ]
    )
    assert "/assets/0/normalized" in [i.pointer for i in validate("collector-response-v1", bad)]


def test_successful_collect_must_carry_inventory() -> None:
    doc = _response()
    del doc["assets"]
    assert [i.message for i in validate("collector-response-v1", doc)] == ["'assets' is a required property"]


def test_failed_collect_needs_no_inventory_but_errors_need_a_registered_shape() -> None:
    failed = _response(
        errors=[{"code": "PVE_AUTH_FAILED", "category": "auth", "retryable": False, "message": "401"}]
    )
    del failed["assets"], failed["relations"], failed["detect"]
    assert validate("collector-response-v1", failed) == []
    failed["errors"][0]["category"] = "oops"
    assert [i.pointer for i in validate("collector-response-v1", failed)] == ["/errors/0/category"]


def test_asset_needs_raw_payload() -> None:
    doc = _response()
    del doc["assets"][0]["raw_payload"]
    assert [i.pointer for i in validate("collector-response-v1", doc)] == ["/assets/0"]


def test_request_rejects_unknown_mode_and_bad_source_type() -> None:
    request = {
        "schema_version": "collector-request-v1",
        "mode": "inventory",
        "source": {"id": "1", "type": "PVE!", "config": {}},
    }
    assert sorted(i.pointer for i in validate("collector-request-v1", request)) == ["/mode", "/source/type"]
