"""Ticket and API-token authentication as a PVE client sees it (pve-notes §2)."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from pvesim import SimServer, Token, Topology
from tests.pvesim.helpers import login, raw_client, ticket_client, token_client

Factory = Callable[..., SimServer]


def small(factory: Factory, profile: str = "8.4", **kwargs: object) -> SimServer:
    kwargs.setdefault("time_scale", 0.01)
    return factory(profile=profile, topology=Topology.generate(seed=5, nodes=2, qemu=3, lxc=1), **kwargs)


def test_ticket_login_returns_ticket_csrf_cap_and_clustername(pvesim_server: Factory) -> None:
    server = small(pvesim_server)
    cred = server.credentials("root", auth="user_password")
    data = login(server, cred["username"], cred["password"])
    assert data["username"] == "root@pam"
    assert data["ticket"].startswith("PVE:root@pam:")
    assert ":" in data["CSRFPreventionToken"]
    assert data["clustername"] == "pvesim"
    assert data["cap"]["vms"]["VM.Audit"] == 1
    assert set(data["cap"]) >= {"vms", "storage", "nodes", "access", "dc"}


def test_ticket_login_accepts_json_and_realm_parameter(pvesim_server: Factory) -> None:
    server = small(pvesim_server)
    cred = server.credentials("auditor", auth="user_password")
    with raw_client(server) as client:
        response = client.post(
            "/access/ticket", json={"username": "auditor", "realm": "pve", "password": cred["password"]}
        )
    assert response.status_code == 200
    assert response.json()["data"]["username"] == "auditor@pve"


def test_cookie_and_authorization_header_both_carry_the_ticket(pvesim_server: Factory) -> None:
    server = small(pvesim_server)
    cred = server.credentials("root", auth="user_password")
    ticket = login(server, cred["username"], cred["password"])["ticket"]
    with raw_client(server, cookies={"PVEAuthCookie": ticket}) as client:
        assert client.get("/version").status_code == 200
    with raw_client(server, headers={"Authorization": f"PVEAuthCookie={ticket}"}) as client:
        assert client.get("/version").status_code == 200


def test_ticket_in_authorization_header_only_from_6_2(pvesim_server: Factory) -> None:
    server = small(pvesim_server, profile="6.1")
    cred = server.credentials("root", auth="user_password")
    ticket = login(server, cred["username"], cred["password"])["ticket"]
    with raw_client(server, headers={"Authorization": f"PVEAuthCookie={ticket}"}) as client:
        response = client.get("/version")
    assert (response.status_code, response.reason_phrase) == (401, "No ticket")
    with raw_client(server, cookies={"PVEAuthCookie": ticket}) as client:
        assert client.get("/version").status_code == 200


def test_wrong_password_is_401_authentication_failure_after_the_delay(pvesim_server: Factory) -> None:
    server = small(pvesim_server, auth_delay=0.3)
    start = time.perf_counter()
    with raw_client(server) as client:
        response = client.post("/access/ticket", data={"username": "root@pam", "password": "wrong"})
    assert time.perf_counter() - start >= 0.3
    assert (response.status_code, response.reason_phrase) == (401, "authentication failure")
    assert response.json()["data"] is None


def test_unknown_user_gets_the_same_answer(pvesim_server: Factory) -> None:
    server = small(pvesim_server, profile="7.4")
    with raw_client(server) as client:
        response = client.post("/access/ticket", data={"username": "ghost@pve", "password": "x"})
    assert (response.status_code, response.reason_phrase) == (401, "authentication failure")
    assert response.json() == {"data": None}


def test_no_credentials_is_401_no_ticket_with_empty_body(pvesim_server: Factory) -> None:
    server = small(pvesim_server)
    with raw_client(server) as client:
        response = client.get("/nodes")
    assert (response.status_code, response.reason_phrase, response.content) == (401, "No ticket", b"")
    with raw_client(server) as client:
        assert client.get("/access/ticket").json() == {"data": None}


def test_csrf_token_required_for_writes_with_a_ticket(pvesim_server: Factory) -> None:
    server = small(pvesim_server)
    cred = server.credentials("root", auth="user_password")
    data = login(server, cred["username"], cred["password"])
    path = "/nodes/node1/qemu/100/agent"
    with raw_client(server, cookies={"PVEAuthCookie": data["ticket"]}) as client:
        response = client.post(path, data={"command": "ping"})
        assert (response.status_code, response.reason_phrase) == (
            401,
            "Permission denied - invalid csrf token",
        )
        response = client.post(
            path, data={"command": "ping"}, headers={"CSRFPreventionToken": data["CSRFPreventionToken"]}
        )
        assert response.status_code != 401


def test_ticket_expires_after_two_hours_and_renews_before(pvesim_server: Factory) -> None:
    server = small(pvesim_server)
    cred = server.credentials("root", auth="user_password")
    ticket = login(server, cred["username"], cred["password"])["ticket"]
    server.advance_clock(7000)
    renewed = login(server, "root@pam", ticket)["ticket"]
    assert renewed != ticket
    server.advance_clock(300)
    with raw_client(server, cookies={"PVEAuthCookie": ticket}) as client:
        response = client.get("/version")
    assert (response.status_code, response.reason_phrase) == (401, "permission denied - invalid PVE ticket")
    with raw_client(server, cookies={"PVEAuthCookie": renewed}) as client:
        assert client.get("/version").status_code == 200


def test_tfa_user_gets_need_tfa_half_ticket_that_opens_nothing(pvesim_server: Factory) -> None:
    server = small(pvesim_server, profile="8.4")
    cred = server.credentials("tfa", auth="user_password")
    data = login(server, cred["username"], cred["password"])
    assert data["NeedTFA"] == 1
    assert "cap" not in data
    with raw_client(server, cookies={"PVEAuthCookie": data["ticket"]}) as client:
        response = client.get("/version")
    assert (response.status_code, response.reason_phrase) == (401, "No ticket")
    with raw_client(server) as client:
        response = client.post(
            "/access/ticket",
            data={
                "username": "tfa@pve",
                "tfa-challenge": data["ticket"],
                "password": f"totp:{server.totp_code('tfa')}",
            },
        )
    assert response.status_code == 200
    assert "cap" in response.json()["data"]


def test_tfa_5_4_to_7_0_finishes_with_post_access_tfa(pvesim_server: Factory) -> None:
    server = small(pvesim_server, profile="6.4")
    cred = server.credentials("tfa", auth="user_password")
    data = login(server, cred["username"], cred["password"])
    assert data["NeedTFA"] == 1
    with raw_client(
        server,
        cookies={"PVEAuthCookie": data["ticket"]},
        headers={"CSRFPreventionToken": data["CSRFPreventionToken"]},
    ) as client:
        response = client.post("/access/tfa", data={"response": server.totp_code("tfa")})
    assert response.status_code == 200
    full = response.json()["data"]["ticket"]
    with raw_client(server, cookies={"PVEAuthCookie": full}) as client:
        assert client.get("/nodes").status_code == 200


def test_tfa_5_0_needs_otp_in_the_same_call(pvesim_server: Factory) -> None:
    server = small(pvesim_server, profile="5.0")
    cred = server.credentials("tfa", auth="user_password")
    with raw_client(server) as client:
        response = client.post("/access/ticket", data=cred)
        assert response.status_code == 401
        response = client.post("/access/ticket", data={**cred, "otp": server.totp_code("tfa")})
    assert response.status_code == 200
    assert "NeedTFA" not in response.json()["data"]


@pytest.mark.parametrize("profile", ["5.0", "5.4", "6.1"])
def test_token_header_before_6_2_is_401_no_ticket_empty_body(pvesim_server: Factory, profile: str) -> None:
    server = small(pvesim_server, profile=profile)
    with token_client(server, "root") as client:
        response = client.get("/version")
    assert (response.status_code, response.reason_phrase, response.content) == (401, "No ticket", b"")


@pytest.mark.parametrize("profile", ["6.2", "7.4", "8.4", "9.1"])
def test_token_works_from_6_2(pvesim_server: Factory, profile: str) -> None:
    server = small(pvesim_server, profile=profile)
    with token_client(server, "root") as client:
        assert client.get("/cluster/resources").status_code == 200


def test_token_secret_split_at_last_equals_sign(pvesim_server: Factory) -> None:
    topo = Topology.generate(seed=5, nodes=1, qemu=1, lxc=0)
    topo.users["root@pam"].tokens["odd"] = Token("odd", "abc=def", privsep=False)
    server = pvesim_server(profile="8.4", topology=topo, time_scale=0.01)
    with raw_client(server, headers={"Authorization": "PVEAPIToken=root@pam!odd=abc=def"}) as client:
        assert client.get("/version").status_code == 401
    topo.users["root@pam"].tokens["eq"] = Token("eq", "secret", privsep=False)
    with raw_client(server, headers={"Authorization": "PVEAPIToken root@pam!eq=secret"}) as client:
        assert client.get("/version").status_code == 200


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ("PVEAPIToken=root@pam!ledger=00000000-0000-0000-0000-000000000000", "invalid token value!"),
        ("PVEAPIToken=root@pam!nope=x", "no such token 'nope' for user 'root@pam'"),
        ("PVEAPIToken=ghost@pve!ro=x", "no such user ('ghost@pve')"),
        ("PVEAPIToken=root@pam", "no tokenid specified"),
    ],
)
def test_token_errors_raw_text_until_unified(pvesim_server: Factory, header: str, reason: str) -> None:
    for profile, expected in (
        ("9.1", reason),
        ("9.1-latest", "Authentication failed!"),
        ("8.4-latest", "Authentication failed!"),
    ):
        server = small(pvesim_server, profile=profile)
        with raw_client(server, headers={"Authorization": header}) as client:
            response = client.get("/version")
        assert (response.status_code, response.reason_phrase, response.content) == (401, expected, b"")


def test_ticket_takes_precedence_over_token(pvesim_server: Factory) -> None:
    server = small(pvesim_server)
    with ticket_client(server, "novm") as client:
        client.headers.update({"Authorization": "PVEAPIToken=root@pam!ledger=wrong"})
        response = client.get("/cluster/resources", params={"type": "vm"})
    assert response.status_code == 200
    assert response.json()["data"] == []


def test_token_on_endpoint_without_allowtoken_is_403(pvesim_server: Factory) -> None:
    server = small(pvesim_server, profile="6.4")
    with token_client(server, "root") as client:
        response = client.post("/access/tfa", data={"response": "123456"})
    assert response.status_code == 403
    assert response.reason_phrase == "URI '/access/tfa' not available with API token, need proper ticket."


def test_late_releases_unify_verification_errors_but_not_no_ticket(pvesim_server: Factory) -> None:
    server = small(pvesim_server, profile="9.1-latest")
    with raw_client(server, cookies={"PVEAuthCookie": "PVE:root@pam:00000000::forged"}) as client:
        forged = client.get("/version")
    with raw_client(server) as client:
        missing = client.get("/version")
    assert (forged.status_code, forged.reason_phrase) == (401, "Authentication failed!")
    assert (missing.status_code, missing.reason_phrase) == (401, "No ticket")


def test_ticket_of_a_disabled_user(pvesim_server: Factory) -> None:
    server = small(pvesim_server, profile="8.4")
    cred = server.credentials("auditor", auth="user_password")
    ticket = login(server, cred["username"], cred["password"])["ticket"]
    server.topology.set_user_enabled("auditor@pve", False)
    with raw_client(server, cookies={"PVEAuthCookie": ticket}) as client:
        response = client.get("/version")
    assert (response.status_code, response.reason_phrase) == (401, "user 'auditor@pve' is disabled")


def test_realm_parameter_is_appended_even_to_a_full_user_id(pvesim_server: Factory) -> None:
    server = small(pvesim_server)
    cred = server.credentials("root", auth="user_password")
    with raw_client(server) as client:
        response = client.post("/access/ticket", data={**cred, "realm": "pam"})
    assert (response.status_code, response.reason_phrase) == (401, "authentication failure")
