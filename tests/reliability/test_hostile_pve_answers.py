"""Hostile and broken PVE answers, end to end through the collector (Hypothesis): any JSON value in any
field of any endpoint's answer ends in a schema-valid collector-response-v1 that is either a complete
inventory (every asset valid normalized-v1) or a failure with a registered code, with warnings where
details were dropped. Never an exception escaping the collector, never a response the core would refuse
as malformed."""

from __future__ import annotations

import asyncio
import copy
import json
import os
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asset_ledger.collectors.pve import PveCollector
from asset_ledger.contract import REGISTRY
from asset_ledger.core import ingest

SECRET = "9d0c1f7e-0000-1111-2222-333344445555"
PERMS = {"/": {"Sys.Audit": 1, "VM.Audit": 1, "VM.Monitor": 1}, "/vms": {"VM.Audit": 1, "VM.Monitor": 1}}


def answers() -> dict[str, Any]:
    """A two-node 8.4 cluster, an agent-enabled VM, a running container: every endpoint a collect uses."""
    return {
        "/version": {"version": "8.4.1", "release": "8.4", "repoid": "2a5fa54a8503f96d"},
        "/access/permissions": PERMS,
        "/cluster/status": [
            {"type": "cluster", "id": "cluster", "name": "lab", "nodes": 2, "quorate": 1, "version": 4},
            {"type": "node", "id": "node/n1", "name": "n1", "nodeid": 1, "online": 1, "local": 1,
             "ip": "10.0.0.1"},
            {"type": "node", "id": "node/n2", "name": "n2", "nodeid": 2, "online": 1, "local": 0,
             "ip": "10.0.0.2"},
        ],
        "/cluster/resources": [
            {"id": "node/n1", "type": "node", "node": "n1", "status": "online", "maxcpu": 8, "maxmem": 2**34},
            {"id": "node/n2", "type": "node", "node": "n2", "status": "online", "maxcpu": 8, "maxmem": 2**34},
            {"id": "qemu/100", "type": "qemu", "vmid": 100, "node": "n1", "status": "running", "name": "a",
             "maxcpu": 2, "maxmem": 2**30, "tags": "web;prod", "template": 0},
            {"id": "lxc/101", "type": "lxc", "vmid": 101, "node": "n2", "status": "running", "name": "b"},
        ],
        "/nodes/n1/status": {"cpuinfo": {"cpus": 8, "sockets": 1, "model": "x"}, "memory": {"total": 2**34},
                             "pveversion": "pve-manager/8.4.1/x", "kversion": "Linux 6.8", "uptime": 100},
        "/nodes/n2/status": {"cpuinfo": {"cpus": 8}, "memory": {"total": 2**34},
                             "pveversion": "pve-manager/8.4.1/x", "uptime": 100},
        "/nodes/n1/qemu": [{"vmid": 100, "status": "running", "qmpstatus": "running", "name": "a"}],
        "/nodes/n1/qemu/100/config": {"name": "a", "memory": "4096", "cores": 2, "sockets": 1, "agent": "1",
                                      "net0": "virtio=BC:24:11:00:00:01,bridge=vmbr0",
                                      "smbios1": "uuid=0a1b2c3d-0000-4000-8000-000000000001"},
        "/nodes/n1/qemu/100/agent/network-get-interfaces": {"result": [
            {"name": "lo", "hardware-address": "00:00:00:00:00:00",
             "ip-addresses": [{"ip-address": "127.0.0.1", "ip-address-type": "ipv4", "prefix": 8}]},
            {"name": "eth0", "hardware-address": "bc:24:11:00:00:01",
             "ip-addresses": [{"ip-address": "10.0.0.5", "ip-address-type": "ipv4", "prefix": 24}]},
        ]},
        "/nodes/n2/lxc/101/config": {"hostname": "b", "memory": 256, "cores": 1,
                                     "net0": "name=eth0,hwaddr=BC:24:11:00:00:02,ip=10.0.0.9/24"},
        "/nodes/n2/lxc/101/interfaces": [
            {"name": "eth0", "hwaddr": "bc:24:11:00:00:02", "hardware-address": "bc:24:11:00:00:02",
             "inet": "10.0.0.9/24",
             "ip-addresses": [{"ip-address": "10.0.0.9", "ip-address-type": "inet", "prefix": 24}]},
        ],
    }  # fmt: skip


def collect(served: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    requested: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/api2/json")
        requested.append(path)
        if path not in served:
            return httpx.Response(501, extensions={"reason_phrase": b"not implemented"})
        value = served[path]
        if isinstance(value, bytes):
            return httpx.Response(200, content=value, headers={"content-type": "application/json"})
        return httpx.Response(200, json={"data": value})

    request = {
        "schema_version": "collector-request-v1",
        "mode": "collect",
        "source": {"id": "src", "type": "pve", "config": {"endpoint": "https://pve.test:8006"}},
        "credential": {"api_token_id": "ledger@pve!inv", "api_token_secret": SECRET},
    }
    collector = PveCollector(transport=httpx.MockTransport(handler))
    return asyncio.run(collector.run(request)), requested


def check(response: dict[str, Any]) -> None:
    """What the core would check, and what every answer must satisfy."""
    assert ingest.validate_response(response, mode="collect", source_type="pve") == [], response.get("errors")
    assert SECRET not in json.dumps(response)
    for item in response["errors"] + response["warnings"]:
        assert item["code"] in REGISTRY
    if response["errors"]:
        assert "assets" not in response
        assert response["stats"]["inventory_complete"] is False
    else:
        assert ingest.check_snapshot(response) == []


def test_the_unmodified_answers_are_a_complete_inventory() -> None:
    response, requested = collect(answers())
    check(response)
    assert response["errors"] == []
    assert len(response["assets"]) == 5
    assert "/nodes/n1/qemu/100/agent/network-get-interfaces" in requested
    assert "/nodes/n2/lxc/101/interfaces" in requested


JSON = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=False),
        st.text(max_size=20),
        st.sampled_from(["", "1", "0", "running", "n1", "qemu/100", "current=x", "10.0.0.1/33", "\u0000"]),
    ),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
ENDPOINTS = sorted(answers())


def _containers(value: Any, trail: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Paths (as index/key tuples) to every dict and list inside ``value``."""
    found: list[tuple[Any, ...]] = []
    if isinstance(value, dict):
        found.append(trail)
        for key, item in value.items():
            found.extend(_containers(item, (*trail, key)))
    elif isinstance(value, list):
        found.append(trail)
        for index, item in enumerate(value):
            found.extend(_containers(item, (*trail, index)))
    return found


#: Examples per run (CI); RELIABILITY_EXAMPLES raises it for a longer search.
EXAMPLES = int(os.environ.get("RELIABILITY_EXAMPLES", "120"))


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_json_value_in_any_field_never_escapes_the_collector(data: st.DataObject) -> None:
    served = copy.deepcopy(answers())
    for _ in range(data.draw(st.integers(min_value=1, max_value=3), label="mutations")):
        endpoint = data.draw(st.sampled_from(ENDPOINTS), label="endpoint")
        places = _containers(served[endpoint])
        trail = data.draw(st.sampled_from([None, *places]), label="where")
        value = data.draw(JSON, label="value")
        if trail is None:
            served[endpoint] = value  # the whole 'data' of the answer
            continue
        target: Any = served[endpoint]
        for step in trail:
            target = target[step]
        if isinstance(target, dict):
            key = data.draw(st.sampled_from([*target, "extra"]), label="key")
            if data.draw(st.booleans(), label="delete") and key in target:
                del target[key]
            else:
                target[key] = value
        elif target:
            target[data.draw(st.integers(0, len(target) - 1), label="index")] = value
        else:
            target.append(value)
    response, _ = collect(served)
    check(response)


@settings(max_examples=40, deadline=None)
@given(endpoint=st.sampled_from(ENDPOINTS), body=st.binary(max_size=200) | st.sampled_from(
    [b"", b"{", b"null", b"[]", b'{"data": ', b'{"nodata": 1}', b"\xff\xfe", b'{"data": NaN}', b"1e999999"]
))  # fmt: skip
def test_any_body_bytes_on_any_endpoint_never_escape_the_collector(endpoint: str, body: bytes) -> None:
    served: dict[str, Any] = answers()
    served[endpoint] = body
    response, _ = collect(served)
    check(response)


@pytest.mark.parametrize(
    "node",
    ["../../access/users", "n2/../../version", "..", "n2%2F..%2F..", "n2?x=1", "n2#x", "n2\x1f", "n 2"],
)
def test_a_hostile_node_name_never_turns_into_another_request(node: str) -> None:
    served = answers()
    text = (
        json.dumps(served).replace('"n2"', json.dumps(node)).replace('"node/n2"', json.dumps(f"node/{node}"))
    )
    response, requested = collect(json.loads(text))
    check(response)
    allowed = set(answers()) - {p for p in answers() if p.startswith("/nodes/n2")}
    assert set(requested) <= allowed, set(requested) - allowed
