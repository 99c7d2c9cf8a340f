"""The client's mapping table and protocol handling, driven through ``httpx.MockTransport``."""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from asset_ledger.collectors.pve.client import (
    EXCEPTION_OUTCOMES,
    OUTCOME_CODES,
    STATUS_OUTCOMES,
    Outcome,
    PveCallError,
    PveClient,
    outcome_for_exception,
)
from asset_ledger.collectors.pve.config import parse_config, parse_credential
from asset_ledger.contract import REGISTRY

SECRET = "5e1f0c3a-aaaa-bbbb-cccc-feedfacecafe"
TOKEN = {"api_token_id": "ledger@pve!inv", "api_token_secret": SECRET}

Handler = Callable[[httpx.Request], httpx.Response]


def reply(status: int, data: Any = None, *, reason: str | None = None, **kwargs: Any) -> httpx.Response:
    extensions = {"reason_phrase": reason.encode()} if reason else {}
    return httpx.Response(status, json={"data": data}, extensions=extensions, **kwargs)


def run_call(
    handler: Handler,
    path: str = "/version",
    *,
    auth: str = "api_token",
    credential: dict[str, Any] | None = None,
    method: str = "GET",
) -> tuple[Any, PveClient]:
    cfg = parse_config({"endpoint": "https://pve.test:8006", "auth_type": auth})
    cred = parse_credential(cfg, credential or TOKEN)
    client = PveClient(cfg, cred, source_id="s1", transport=httpx.MockTransport(handler))

    async def go() -> Any:
        async with client:
            return await client.call(method, path)

    return asyncio.run(go()), client


def failure(handler: Handler, path: str = "/version", **kwargs: Any) -> PveCallError:
    with pytest.raises(PveCallError) as info:
        run_call(handler, path, **kwargs)
    assert SECRET not in str(info.value.as_error())
    return info.value


def test_every_outcome_maps_to_a_registered_code() -> None:
    assert set(OUTCOME_CODES) == set(Outcome)
    for code in OUTCOME_CODES.values():
        assert REGISTRY[code].severity == "error"
    assert STATUS_OUTCOMES[401] is Outcome.AUTH
    assert STATUS_OUTCOMES[429] is STATUS_OUTCOMES[503] is Outcome.RATE_LIMITED
    assert STATUS_OUTCOMES[595] is STATUS_OUTCOMES[596] is Outcome.NODE_UNREACHABLE
    assert dict(EXCEPTION_OUTCOMES)[httpx.TimeoutException] is Outcome.NETWORK


def test_token_header_and_data_envelope() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return reply(200, {"version": "8.2.4", "release": "8.2", "repoid": "faa83925c9641325"})

    data, client = run_call(handler)
    assert data["version"] == "8.2.4"
    assert seen[0].url.path == "/api2/json/version"
    assert seen[0].headers["Authorization"] == f"PVEAPIToken=ledger@pve!inv={SECRET}"
    assert client.requests == 1


def test_401_no_ticket_on_a_token_means_pve_before_62() -> None:
    err = failure(lambda r: httpx.Response(401, extensions={"reason_phrase": b"No ticket"}))
    assert err.code == "PVE_AUTH_FAILED"
    assert "6.2" in err.message
    assert "user_password" in err.suggested_action


def test_401_other_reason_names_the_token_not_the_secret() -> None:
    err = failure(lambda r: httpx.Response(401, extensions={"reason_phrase": b"invalid token value!"}))
    assert err.code == "PVE_AUTH_FAILED"
    assert "ledger@pve!inv" in err.message
    assert "invalid token value!" in err.message


def test_403_reads_reason_phrase_and_body_message() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            403,
            json={"data": None, "message": "Permission check failed (/vms/100, VM.Audit)\n"},
            extensions={"reason_phrase": b"Permission check failed (/vms/100, VM.Audit)"},
        )

    err = failure(handler, "/nodes/pve/qemu/100/config")
    assert err.code == "PVE_PERMISSION_DENIED"
    assert err.reason == "Permission check failed (/vms/100, VM.Audit)"
    assert err.context["path"] == "/nodes/pve/qemu/100/config"
    assert "pveum acl modify / --tokens 'ledger@pve!inv' --roles PVEAuditor" in err.suggested_action


def test_body_message_alone_is_used_when_the_reason_is_generic() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(500, json={"data": None, "message": "VM 100 is not running\n"})

    err = failure(handler)
    assert err.outcome is Outcome.SERVER_ERROR
    assert "VM 100 is not running" in err.reason


def test_rate_limit_is_retried_honouring_retry_after() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        if len(calls) <= 2:
            return reply(429, None, reason="Too Many Requests", headers={"Retry-After": "0"})
        return reply(200, {"version": "9.0.4"})

    data, client = run_call(handler)
    assert data == {"version": "9.0.4"}
    assert client.requests == 3
    assert client.rate_limited == 2


def test_rate_limit_that_does_not_clear_fails_retryable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return reply(503, None, reason="Service Unavailable", headers={"Retry-After": "0"})

    err = failure(handler)
    assert err.code == "PVE_RATE_LIMIT"
    assert err.retryable is True


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (501, Outcome.UNSUPPORTED),
        (595, Outcome.NODE_UNREACHABLE),
        (596, Outcome.NODE_UNREACHABLE),
        (500, Outcome.SERVER_ERROR),
        (502, Outcome.NETWORK),
        (302, Outcome.REDIRECT),  # never followed: PVE_CONFIG_INVALID naming the target
    ],
)
def test_status_table(status: int, outcome: Outcome) -> None:
    assert failure(lambda r: httpx.Response(status, content=b"")).outcome is outcome


@pytest.mark.parametrize(
    "body",
    [b'{"data": [1, 2', b"<html>proxy error</html>", b'{"nodata": 1}', b"[1]", b"\xff\xfe"],
)
def test_malformed_json_is_a_parse_error(body: bytes) -> None:
    err = failure(lambda r: httpx.Response(200, content=body))
    assert err.code == "PVE_PARSE_ERROR"


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (httpx.ConnectError("connection refused"), "PVE_NETWORK_ERROR"),
        (httpx.ReadTimeout("timed out"), "PVE_NETWORK_ERROR"),
        (httpx.RemoteProtocolError("Server disconnected without sending a response."), "PVE_NETWORK_ERROR"),
        (httpx.ReadError("Connection reset by peer"), "PVE_NETWORK_ERROR"),
    ],
)
def test_transport_exceptions(exc: Exception, code: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    err = failure(handler)
    assert err.code == code
    assert err.retryable is True


def test_certificate_failure_in_the_cause_chain_is_tls() -> None:
    inner = ssl.SSLCertVerificationError(1, "certificate verify failed: self-signed certificate")
    outer = httpx.ConnectError("handshake failed")
    outer.__cause__ = inner
    assert outcome_for_exception(outer) is Outcome.TLS
    assert outcome_for_exception(httpx.ConnectError("refused")) is Outcome.NETWORK


def test_ticket_login_cookie_csrf_and_relogin_on_expiry() -> None:
    tickets = iter(["PVE:ledger@pve:1::a", "PVE:ledger@pve:2::b", "PVE:ledger@pve:3::c"])
    log: list[tuple[str, str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        cookie = request.headers.get("Cookie", "")
        log.append((request.method, request.url.path, cookie))
        if request.url.path.endswith("/access/ticket"):
            form = dict(x.split("=", 1) for x in request.content.decode().split("&"))
            assert form["username"].startswith("ledger")
            return reply(
                200,
                {
                    "ticket": next(tickets),
                    "CSRFPreventionToken": "X:Y",
                    "username": "ledger@pve",
                    "cap": {"vms": {"VM.Audit": 1}},
                },
            )
        if cookie.endswith("::a"):
            return httpx.Response(
                401, extensions={"reason_phrase": b"permission denied - invalid PVE ticket"}
            )
        return reply(200, {"version": "5.4", "release": "15"})

    data, client = run_call(
        handler, auth="user_password", credential={"username": "ledger@pve", "password": SECRET}
    )
    assert data["version"] == "5.4"
    assert [entry[1].rsplit("/", 1)[1] for entry in log] == ["ticket", "version", "ticket", "version"]
    assert log[-1][2] == "PVEAuthCookie=PVE:ledger@pve:2::b"
    assert client.ticket is not None
    assert client.ticket.cap == {"vms": {"VM.Audit": 1}}


def test_ticket_is_renewed_with_the_old_ticket_before_it_expires() -> None:
    forms: list[dict[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/access/ticket"):
            forms.append(dict(x.split("=", 1) for x in request.content.decode().split("&")))
            return reply(
                200,
                {
                    "ticket": f"PVE:ledger@pve:{len(forms)}::s",
                    "CSRFPreventionToken": "c",
                    "username": "ledger@pve",
                },
            )
        return reply(200, {"ok": 1})

    cfg = parse_config({"endpoint": "pve.test", "auth_type": "user_password"})
    cred = parse_credential(cfg, {"username": "ledger@pve", "password": SECRET})
    client = PveClient(cfg, cred, transport=httpx.MockTransport(handler))

    async def go() -> None:
        async with client:
            await client.get("/version")
            client.ticket_renew_after_s = 0
            await client.get("/version")

    asyncio.run(go())
    assert forms[0]["password"] == SECRET
    assert forms[1]["password"].startswith("PVE%3Aledger%40pve%3A1")


def test_tfa_user_is_told_to_use_a_token() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return reply(200, {"ticket": "PVE:!tfa!{}::x", "NeedTFA": 1, "username": "ledger@pve"})

    err = failure(handler, auth="user_password", credential={"username": "ledger@pve", "password": SECRET})
    assert err.code == "PVE_AUTH_FAILED"
    assert "two-factor" in err.message
    assert "API token" in err.suggested_action


def test_wrong_password() -> None:
    err = failure(
        lambda r: httpx.Response(
            401, json={"data": None}, extensions={"reason_phrase": b"authentication failure"}
        ),
        auth="user_password",
        credential={"username": "ledger@pve", "password": SECRET},
    )
    assert err.code == "PVE_AUTH_FAILED"
    assert "authentication failure" in err.message


def test_agent_post_form_sends_csrf_token() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path.endswith("/access/ticket"):
            return reply(
                200, {"ticket": "PVE:u@pve:1::s", "CSRFPreventionToken": "CSRF1", "username": "u@pve"}
            )
        return reply(200, {"result": []})

    run_call(
        handler,
        "/nodes/pve/qemu/100/agent",
        method="POST",
        auth="user_password",
        credential={"username": "u@pve", "password": "pw"},
    )
    assert seen[-1].headers["CSRFPreventionToken"] == "CSRF1"


def test_error_text_never_contains_the_secret() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json={"data": None, "errors": {"x": "bad"}})

    err = failure(handler)
    assert json.dumps(err.as_error()).count(SECRET) == 0
