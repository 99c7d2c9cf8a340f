"""Whatever types PVE sends in optional fields, the mapping never raises and always yields valid
normalized-v1 (property-based)."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asset_ledger.collectors.pve import normalize as n
from asset_ledger.contract import validate

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(
        [
            "1",
            "0",
            "",
            "current=4096",
            "4096",
            "enabled=1,type=virtio",
            "a;b, c",
            "fe80::1/64",
            "name=eth0,ip=10.0.0.1/24,hwaddr=BC:24:11:00:00:01",
            "virtio=BC:24:11:00:00:02",
            "ip=dhcp",
            "uuid=0a1b",
            "suspended",
            "running",
            "paused",
            "prelaunch",
            "stopped",
            "unknown",
        ]
    ),
)
JSONISH = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)

CONFIG_KEYS = [
    "name",
    "hostname",
    "memory",
    "cores",
    "sockets",
    "vcpus",
    "agent",
    "tags",
    "template",
    "lock",
    "smbios1",
    "net0",
    "net1",
    "ipconfig0",
]
ENTRY_KEYS = ["name", "status", "maxmem", "maxcpu", "template", "tags", "pool", "hastate", "uptime", "lock"]
LIST_KEYS = ["status", "qmpstatus", "uptime", "name", "template", "tags", "lock"]
STATUS_KEYS = ["cpuinfo", "memory", "pveversion", "kversion", "current-kernel", "uptime"]


def partial(keys: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(st.sampled_from(keys), JSONISH, max_size=len(keys))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(["qemu", "lxc"]),
    entry=partial(ENTRY_KEYS),
    config=st.one_of(st.none(), partial(CONFIG_KEYS)),
    listed=st.one_of(st.none(), partial(LIST_KEYS)),
    online=st.booleans(),
    agent=JSONISH,
    interfaces=JSONISH,
)
def test_guest_mapping_never_raises_and_always_validates(
    *,
    kind: str,
    entry: dict[str, Any],
    config: dict[str, Any] | None,
    listed: dict[str, Any] | None,
    online: bool,
    agent: Any,
    interfaces: Any,
) -> None:
    resources = n.parse_resources([{**entry, "id": f"{kind}/100", "type": kind, "vmid": 100, "node": "pve"}])
    findings = (
        n.ips_from_agent(agent) + n.ips_from_lxc_interfaces(interfaces) + n.ips_from_config(config, kind)
    )
    record = n.guest_normalized(
        resources.guests[0], config=config, list_entry=listed, node_online=online, ip_findings=findings
    )
    assert validate("normalized-v1", record) == []


@settings(max_examples=200, deadline=None)
@given(
    resource=partial(["maxcpu", "maxmem", "uptime", "status"]),
    status=st.one_of(st.none(), partial(STATUS_KEYS)),
    online=st.booleans(),
)
def test_host_mapping_never_raises_and_always_validates(
    resource: dict[str, Any], status: dict[str, Any] | None, online: bool
) -> None:
    record = n.host_normalized("pve", resource=resource, node_status=status, online=online)
    assert validate("normalized-v1", record) == []
