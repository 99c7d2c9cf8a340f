"""Transport realism: TLS, keep-alive, faults, offline nodes, worker limits, mutation and observation."""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import Callable

import httpx
import pytest

from pvesim import SimServer, Topology
from tests.pvesim.helpers import tls, token_client, token_header

Factory = Callable[..., SimServer]


def cluster(factory: Factory, profile: str = "8.4", **kwargs: object) -> SimServer:
    kwargs.setdefault("time_scale", 0.01)
    return factory(profile=profile, topology=Topology.generate(seed=7, nodes=3, qemu=12, lxc=6), **kwargs)


# --- TLS ------------------------------------------------------------------------------------------
def test_certificate_verifies_against_the_ca_and_matches_the_fingerprint(pvesim_server: Factory) -> None:
    server = cluster(pvesim_server)
    assert server.url.startswith("https://127.0.0.1:")
    with token_client(server) as client:
        response = client.get("/version")
        assert response.status_code == 200
    der = ssl.PEM_cert_to_DER_cert(ssl.get_server_certificate(("127.0.0.1", server.port)))
    import hashlib

    digest = hashlib.sha256(der).hexdigest()
    assert server.fingerprint_hex == digest
    assert server.fingerprint == ":".join(digest[i : i + 2] for i in range(0, 64, 2)).upper()


def test_unverified_client_is_rejected_by_default_trust(pvesim_server: Factory) -> None:
    server = cluster(pvesim_server)
    with (
        httpx.Client(base_url=server.api_url, verify=ssl.create_default_context()) as client,
        pytest.raises(httpx.ConnectError),
    ):
        client.get("/version")


def test_certificate_changes_between_runs_and_on_rotation(pvesim_server: Factory, tmp_path: object) -> None:
    first = cluster(pvesim_server, tls_dir=tmp_path)
    second = cluster(pvesim_server, tls_dir=tmp_path)
    assert first.fingerprint != second.fingerprint
    assert first.ca_path == second.ca_path
    old_ctx = tls(second)
    new_fp = second.rotate_certificate()
    assert new_fp == second.fingerprint
    with httpx.Client(base_url=second.api_url, verify=old_ctx, headers=token_header(second)) as client:
        assert client.get("/version").status_code == 200  # same CA: still verifies
    second.rotate_certificate(new_ca=True)
    with httpx.Client(base_url=second.api_url, verify=old_ctx) as client, pytest.raises(httpx.ConnectError):
        client.get("/version")


# --- keep-alive and envelope ----------------------------------------------------------------------
def test_keep_alive_reuses_one_connection(pvesim_server: Factory) -> None:
    server = cluster(pvesim_server)
    with token_client(server) as client:
        for _ in range(10):
            response = client.get("/version")
    assert response.headers["server"] == "pve-api-daemon/3.0"
    assert response.headers["content-type"] == "application/json;charset=UTF-8"
    assert server.stats()["connections"] == 1


def test_bad_parameter_is_400_with_errors(pvesim_server: Factory) -> None:
    server = cluster(pvesim_server)
    with token_client(server) as client:
        response = client.get("/nodes/node1/qemu", params={"full": "maybe", "bogus": "1"})
    assert (response.status_code, response.reason_phrase) == (400, "Parameter verification failed.")
    assert response.json()["errors"] == {
        "full": "type check ('boolean') failed - got 'maybe'",
        "bogus": "property is not defined in schema and the schema does not allow additional properties",
    }


def test_head_is_501(pvesim_server: Factory) -> None:
    server = cluster(pvesim_server)
    with token_client(server) as client:
        response = client.head("/version")
    assert (response.status_code, response.reason_phrase) == (501, "method 'HEAD' not available")


# --- faults ---------------------------------------------------------------------------------------
def test_429_with_retry_after_then_normal(pvesim_server: Factory) -> None:
    server = cluster(pvesim_server)
    fault = server.add_fault(path="/cluster/resources", status=429, retry_after=1, count=2)
    with token_client(server) as client:
        first = client.get("/cluster/resources")
        second = client.get("/cluster/resources")
        third = client.get("/cluster/resources")
    assert (first.status_code, first.reason_phrase, first.headers["retry-after"]) == (
        429,
        "Too Many Requests",
        "1",
    )
    assert second.status_code == 429
    assert third.status_code == 200
    assert fault.fired == 2
    assert server.stats()["faults"] == {"status": 2}


def test_503_as_a_reverse_proxy_page(pvesim_server: Factory) -> None:
    server = cluster(pvesim_server)
    server.add_fault(path="/version", status=503)
    with token_client(server) as client:
        response = client.get("/version")
    assert (response.status_code, response.reason_phrase) == (503, "Service Unavailable")
    assert response.headers["content-type"] == "text/html"
    server.clear_faults()
    with token_client(server) as client:
        assert client.get("/version").status_code == 200


def test_proxy_error_fault_has_an_empty_body(pvesim_server: Factory) -> None:
    server = cluster(pvesim_server)
    server.add_fault(path="/nodes/node2/status", status=596, reason="Broken pipe")
    with token_client(server) as client:
        response = client.get("/nodes/node2/status")
    assert (response.status_code, response.reason_phrase, response.content) == (596, "Broken pipe", b"")


def test_fault_targets_one_node(pvesim_server: Factory) -> None:
    server = cluster(pvesim_server)
    server.add_fault(path="/nodes/*", node="node2", status=502, reason="Bad Gateway")
    with token_client(server) as client:
        assert client.get("/nodes/node1/qemu").status_code == 200
        assert client.get("/nodes/node2/qemu").status_code == 502


def test_connection_reset_before_response(pvesim_server: Factory) -> None:
    server = cluster(pvesim_server)
    server.add_fault(path="/nodes", kind="reset", count=1)
    with token_client(server) as client:
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            client.get("/nodes")
        assert client.get("/nodes").status_code == 200


def test_reset_mid_body_and_truncated_body(pvesim_server: Factory) -> None:
    server = cluster(pvesim_server)
    server.add_fault(path="/cluster/resources", kind="reset_mid_body", count=1)
    server.add_fault(path="/nodes", kind="truncate", count=1)
    with token_client(server) as client:
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            client.get("/cluster/resources")
        with pytest.raises(httpx.RemoteProtocolError):
            client.get("/nodes")
    log = list(server.request_log)
    assert [r.fault for r in log] == ["reset_mid_body", "truncate"]
    assert [r.status for r in log] == [0, 0]


def test_malformed_json_and_wrong_type(pvesim_server: Factory) -> None:
    server = cluster(pvesim_server)
    server.add_fault(path="/nodes", kind="malformed_json", count=1)
    server.add_fault(path="/nodes/node1/qemu", kind="wrong_type", value="not-a-list", count=1)
    with token_client(server) as client:
        response = client.get("/nodes")
        assert response.status_code == 200
        with pytest.raises(json.JSONDecodeError):
            response.json()
        assert client.get("/nodes/node1/qemu").json() == {"data": "not-a-list"}


def test_slow_response_and_hang(pvesim_server: Factory) -> None:
    server = cluster(pvesim_server)
    server.add_fault(path="/version", kind="slow", delay=0.3, count=1)
    server.add_fault(path="/nodes", kind="hang")
    with token_client(server) as client:
        start = time.perf_counter()
        assert client.get("/version").status_code == 200
        assert time.perf_counter() - start >= 0.3
        with pytest.raises(httpx.ReadTimeout):
            client.get("/nodes", timeout=0.3)


def test_probability_faults_are_deterministic_per_seed(pvesim_server: Factory) -> None:
    outcomes = []
    for _ in range(2):
        server = cluster(pvesim_server, seed=42)
        server.add_fault(path="/version", status=500, reason="random failure", probability=0.5)
        with token_client(server) as client:
            outcomes.append([client.get("/version").status_code for _ in range(20)])
    assert outcomes[0] == outcomes[1]
    assert set(outcomes[0]) == {200, 500}


# --- offline nodes, migration ---------------------------------------------------------------------
def test_offline_node_595_after_delay_and_guest_stubs(pvesim_server: Factory) -> None:
    server = cluster(pvesim_server, offline_delay=0.2)
    on_node3 = sorted(g.id for g in server.topology.guests_on("node3"))
    server.set_node_online("node3", False)
    with token_client(server) as client:
        start = time.perf_counter()
        response = client.get("/nodes/node3/qemu")
        assert time.perf_counter() - start >= 0.2
        assert (response.status_code, response.reason_phrase, response.content) == (
            595,
            "No route to host",
            b"",
        )
        entries = {e["id"]: e for e in client.get("/cluster/resources").json()["data"]}
        status = client.get("/cluster/status").json()["data"]
    for gid in on_node3:
        assert set(entries[gid]) <= {
            "id",
            "vmid",
            "node",
            "type",
            "status",
            "tags",
            "lock",
            "pool",
            "hastate",
        }
        assert entries[gid]["status"] == "unknown"
    assert entries["node/node3"]["status"] == "offline"
    assert "maxmem" not in entries["node/node3"]
    assert next(e for e in status if e.get("name") == "node3")["online"] == 0
    assert status[0]["quorate"] == 1


def test_migration_moves_a_guest_between_nodes(pvesim_server: Factory) -> None:
    server = cluster(pvesim_server)
    guest = next(server.topology.guests_on("node1"))
    with token_client(server) as client:
        assert client.get(f"/nodes/node1/{guest.kind}/{guest.vmid}/config").status_code == 200
        server.migrate(guest.id, "node2")
        assert client.get(f"/nodes/node1/{guest.kind}/{guest.vmid}/config").status_code == 500
        assert client.get(f"/nodes/node2/{guest.kind}/{guest.vmid}/config").status_code == 200
        entries = {e["id"]: e for e in client.get("/cluster/resources").json()["data"]}
    assert entries[guest.id]["node"] == "node2"


def test_state_changes_and_guest_removal_are_visible(pvesim_server: Factory) -> None:
    server = cluster(pvesim_server)
    vm = next(g for g in server.topology.guests.values() if g.kind == "qemu" and g.state == "running")
    with token_client(server) as client:
        server.set_guest_state(vm.id, "suspended")
        current = client.get(f"/nodes/{vm.node}/qemu/{vm.vmid}/status/current").json()["data"]
        assert current["qmpstatus"] == "suspended"
        server.topology.remove_guest(vm.id)
        ids = {e["id"] for e in client.get("/cluster/resources").json()["data"]}
    assert vm.id not in ids


# --- pvedaemon workers ----------------------------------------------------------------------------
def test_protected_calls_limited_to_three_per_node(pvesim_server: Factory) -> None:
    topo = Topology.generate(
        seed=1, nodes=2, qemu=24, lxc=0, running_share=1.0, agent_share=1.0, agent_not_running=24
    )
    delay = 0.3
    server = pvesim_server(profile="8.4", topology=topo, agent_delay=delay, time_scale=0.01)
    vms = [g for g in topo.guests.values() if g.node == "node1"]
    assert len(vms) == 12

    async def hammer() -> list[int]:
        async with httpx.AsyncClient(
            base_url=server.api_url, verify=tls(server), headers=token_header(server), timeout=30
        ) as client:
            responses = await asyncio.gather(
                *(client.get(f"/nodes/node1/qemu/{g.vmid}/agent/network-get-interfaces") for g in vms)
            )
            return [r.status_code for r in responses]

    start = time.perf_counter()
    statuses = asyncio.run(hammer())
    elapsed = time.perf_counter() - start
    assert statuses == [500] * len(vms)
    stats = server.stats()
    assert stats["protected_high_water"]["node1"] == 3
    assert stats["protected_queued_high_water"]["node1"] >= 3
    assert stats["max_in_flight"] > 3
    # 12 calls through 3 workers holding each for the agent delay: at least 4 rounds minus arrival spread
    assert elapsed >= delay * 3


# --- observation ----------------------------------------------------------------------------------
def test_request_log_and_counters(pvesim_server: Factory) -> None:
    server = cluster(pvesim_server)
    with token_client(server, "reader") as client:
        client.get("/nodes/node1/qemu")
        client.get("/nodes/node2/qemu")
        client.get("/version")
    stats = server.stats()
    assert stats["by_endpoint"]["GET /nodes/{node}/qemu"] == 2
    assert stats["by_node"] == {"node1": 1, "node2": 1}
    assert stats["by_principal"] == {"reader@pve!ro": 3}
    record = server.request_log[0]
    assert (record.method, record.path, record.template, record.node, record.status) == (
        "GET",
        "/nodes/node1/qemu",
        "/nodes/{node}/qemu",
        "node1",
        200,
    )
    assert record.protected is True
    assert record.duration >= 0
    server.reset_stats()
    assert server.stats()["requests"] == 0
    assert len(server.request_log) == 0


def test_latency_is_added_to_every_request(pvesim_server: Factory) -> None:
    server = cluster(pvesim_server, latency_ms=100)
    with token_client(server) as client:
        start = time.perf_counter()
        client.get("/version")
    assert time.perf_counter() - start >= 0.1


def test_binding_outside_loopback_is_refused() -> None:
    with pytest.raises(ValueError, match="loopback"):
        SimServer(host="0.0.0.0")


def test_stop_closes_listener_and_thread(pvesim_server: Factory) -> None:
    server = cluster(pvesim_server)
    with token_client(server) as client:
        client.get("/version")
    thread = server._thread
    server.stop()
    assert thread is not None
    assert not thread.is_alive()
    with httpx.Client(verify=False) as client, pytest.raises(httpx.ConnectError):
        client.get(server.url + "/api2/json/version")


def raw_exchange(server: SimServer, request: bytes) -> bytes:
    """Send raw bytes over TLS and read until the server closes."""
    import socket as socketlib

    with (
        socketlib.create_connection(("127.0.0.1", server.port)) as raw,
        tls(server).wrap_socket(raw, server_hostname="127.0.0.1") as sock,
    ):
        sock.sendall(request)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    return reply


def test_http_1_0_is_answered_in_kind_and_closed(pvesim_server: Factory) -> None:
    server = cluster(pvesim_server)
    cred = server.credentials("root", auth="user_password")
    body = f"username={cred['username']}&password={cred['password']}".encode()
    reply = raw_exchange(
        server,
        b"POST /api2/json/access/ticket HTTP/1.0\r\nHost: x\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body,
    )
    head, _, payload = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200 OK")
    assert b"Connection: close" in head
    assert json.loads(payload)["data"]["username"] == "root@pam"


@pytest.mark.parametrize(
    ("request_head", "expected"),
    [
        (
            b"PATCH /api2/json/version HTTP/1.1\r\nHost: x\r\n\r\n",
            b"HTTP/1.1 501 method 'PATCH' not available",
        ),
        (
            b"POST /api2/json/access/ticket HTTP/1.1\r\nHost: x\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            b"HTTP/1.1 501 chunked transfer encoding not supported",
        ),
        (b"GET /api2/json/version HTTP/2.0\r\nHost: x\r\n\r\n", b"HTTP/1.0 506 http protocol version 2.0"),
        (b"BROKEN\r\n\r\n", b"HTTP/1.0 400 bad request"),
        (b"GET /api2 HTTP/1.1\r\nHost: x\r\n\r\n", b"HTTP/1.1 501 no such uri"),
    ],
)
def test_transport_refusals_before_authentication(
    pvesim_server: Factory, request_head: bytes, expected: bytes
) -> None:
    reply = raw_exchange(cluster(pvesim_server), request_head)
    assert reply.startswith(expected)
    assert b"Content-Length: 0" in reply.partition(b"\r\n\r\n")[0]


def test_content_rules_after_authentication(pvesim_server: Factory) -> None:
    server = cluster(pvesim_server)
    auth = token_header(server)["Authorization"].encode()
    get_with_body = raw_exchange(
        server,
        b"GET /api2/json/version HTTP/1.1\r\nAuthorization: " + auth + b"\r\nContent-Length: 2\r\n\r\nxx",
    )
    assert get_with_body.startswith(b"HTTP/1.1 501 Unexpected content for method 'GET'")
    xml = raw_exchange(
        server,
        b"POST /api2/json/nodes/node1/qemu/100/agent HTTP/1.1\r\nAuthorization: "
        + auth
        + b"\r\nContent-Type: text/xml\r\nContent-Length: 2\r\n\r\nxx",
    )
    assert xml.startswith(b"HTTP/1.1 506 upload 'Content-Type 'text/xml' not implemented")
    big = raw_exchange(
        server,
        b"POST /api2/json/nodes/node1/qemu/100/agent HTTP/1.1\r\nAuthorization: "
        + auth
        + b"\r\nContent-Length: 70000\r\n\r\n",
    )
    assert big.startswith(b"HTTP/1.1 501 for data too large")
    anonymous = raw_exchange(server, b"GET /api2/json/version HTTP/1.1\r\nContent-Length: 2\r\n\r\nxx")
    assert anonymous.startswith(b"HTTP/1.1 401 No ticket")


def test_errors_end_keep_alive(pvesim_server: Factory) -> None:
    server = cluster(pvesim_server)
    with token_client(server) as client:
        ok = client.get("/version")
        error = client.get("/nodes/node1/qemu/999/config")
        client.get("/version")
    assert ok.headers["connection"] == "Keep-Alive"
    assert error.headers["connection"] == "close"
    assert server.stats()["connections"] == 2


def test_gzip_for_clients_that_accept_it(pvesim_server: Factory) -> None:
    server = cluster(pvesim_server)
    with token_client(server) as client:
        big = client.get("/cluster/resources")
        small = client.get("/version")
        plain = client.get("/cluster/resources", headers={"Accept-Encoding": "identity"})
    assert big.headers["content-encoding"] == "gzip"
    assert "content-encoding" not in small.headers
    assert "content-encoding" not in plain.headers
    assert big.json() == plain.json()


def test_offline_node_within_the_rrd_window_keeps_last_known_guest_values(pvesim_server: Factory) -> None:
    server = cluster(pvesim_server)
    guest = next(g for g in server.topology.guests_on("node3") if g.running)
    server.topology.set_node_online("node3", False, rrd_fresh=True)
    with token_client(server) as client:
        fresh = {e["id"]: e for e in client.get("/cluster/resources").json()["data"]}
        assert fresh[guest.id]["status"] == "running"
        assert fresh[guest.id]["maxmem"] == guest.memory * 1024 * 1024
        assert fresh["node/node3"]["status"] == "offline"
        server.topology.expire_rrd("node3")
        stale = {e["id"]: e for e in client.get("/cluster/resources").json()["data"]}
    assert stale[guest.id]["status"] == "unknown"
    assert "maxmem" not in stale[guest.id]


def test_ha_managed_guests_carry_hastate(pvesim_server: Factory) -> None:
    topo = Topology.generate(seed=2, nodes=2, qemu=10, lxc=0, ha_share=1.0)
    server = pvesim_server(profile="8.4", topology=topo, time_scale=0.01)
    with token_client(server) as client:
        entries = client.get("/cluster/resources", params={"type": "vm"}).json()["data"]
        vm = entries[0]
        current = client.get(f"/nodes/{vm['node']}/qemu/{vm['vmid']}/status/current").json()["data"]
    assert {e["hastate"] for e in entries} <= {"started", "stopped"}
    assert current["ha"]["managed"] == 1


def test_permission_is_checked_on_the_contacted_node_before_proxying(pvesim_server: Factory) -> None:
    server = cluster(pvesim_server, offline_delay=0.0)
    server.set_node_online("node3", False)
    with token_client(server, "privsep") as client:
        denied = client.get("/nodes/node3/status")
    with token_client(server, "root") as client:
        unreachable = client.get("/nodes/node3/status")
        unknown = client.get("/nodes/nosuch/status")
    assert (denied.status_code, denied.reason_phrase) == (
        403,
        "Permission check failed (/nodes/node3, Sys.Audit)",
    )
    assert (unreachable.status_code, unreachable.reason_phrase) == (595, "No route to host")
    assert unknown.status_code == 500
    assert unknown.reason_phrase.startswith("hostname lookup 'nosuch' failed")
