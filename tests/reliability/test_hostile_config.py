"""Hostile source configuration and credential input, through the ledger: other URL schemes, user info,
header injection, absurd timeouts and concurrency are refused with ``PVE_CONFIG_INVALID`` naming the field
(never another exception, never the secret in the message); and the collector never follows a redirect,
so the credential goes nowhere but the configured endpoint."""

from __future__ import annotations

import contextlib
import http.server
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asset_ledger.collectors.pve.config import parse_config, parse_credential
from asset_ledger.contract import LedgerError
from asset_ledger.core import Ledger, Settings
from pvesim.tls import CertificateSet

SECRET = "0b7c55d2-9e0f-4a51-8d1c-6a3b2e4f9a10"
TOKEN = {"api_token_id": "ledger@pve!inv", "api_token_secret": SECRET}


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    with Ledger(Settings(data_dir=tmp_path / "data")) as ledger:
        ledger.init()
        yield ledger


BAD_CONFIGS: list[tuple[str, dict[str, Any], str]] = [
    ("ftp-scheme", {"endpoint": "ftp://pve.example:8006"}, "config.endpoint"),
    ("file-scheme", {"endpoint": "file:///etc/passwd"}, "config.endpoint"),
    ("http-scheme", {"endpoint": "http://pve.example:8006"}, "config.endpoint"),
    ("javascript", {"endpoint": "javascript:alert(1)"}, "config.endpoint"),
    ("userinfo", {"endpoint": "https://root@pam:secret@pve.example:8006"}, "config.endpoint"),
    ("userinfo-user-only", {"endpoint": "https://admin@pve.example"}, "config.endpoint"),
    ("crlf-in-host", {"endpoint": "https://pve.example\r\nHost: evil"}, "config.endpoint"),
    ("fragment", {"endpoint": "https://pve.example#x"}, "config.endpoint"),
    ("empty", {"endpoint": ""}, "config.endpoint"),
    ("not-a-string", {"endpoint": ["https://pve"]}, "config.endpoint"),
    ("timeout-zero", {"endpoint": "pve", "timeout_ms": 0}, "config.timeout_ms"),
    ("timeout-negative", {"endpoint": "pve", "timeout_ms": -5}, "config.timeout_ms"),
    ("timeout-a-year", {"endpoint": "pve", "timeout_ms": 365 * 86400 * 1000}, "config.timeout_ms"),
    ("timeout-huge-int", {"endpoint": "pve", "timeout_ms": 10**30}, "config.timeout_ms"),
    ("timeout-nan", {"endpoint": "pve", "timeout_ms": float("nan")}, "config.timeout_ms"),
    ("timeout-bool", {"endpoint": "pve", "timeout_ms": True}, "config.timeout_ms"),
    ("agent-timeout-zero", {"endpoint": "pve", "agent_timeout_ms": 0}, "config.agent_timeout_ms"),
    ("parallel-zero", {"endpoint": "pve", "max_parallel_nodes": 0}, "config.max_parallel_nodes"),
    ("parallel-million", {"endpoint": "pve", "max_parallel_nodes": 10**6}, "config.max_parallel_nodes"),
    ("parallel-string", {"endpoint": "pve", "max_parallel_nodes": "all"}, "config.max_parallel_nodes"),
    ("ca-bundle-crlf", {"endpoint": "pve", "tls_ca_bundle": 5}, "config.tls_ca_bundle"),
]


@pytest.mark.parametrize(("config", "field"), [c[1:] for c in BAD_CONFIGS], ids=[c[0] for c in BAD_CONFIGS])
def test_absurd_source_config_is_refused_naming_the_field(
    ledger: Ledger, config: dict[str, Any], field: str
) -> None:
    with pytest.raises(LedgerError) as caught:
        ledger.add_source("lab", "pve", config)
    assert caught.value.code in ("PVE_CONFIG_INVALID", "SOURCE_CONFIG_INVALID")
    assert field in caught.value.message
    assert "secret" not in caught.value.message
    assert ledger.list_sources() == []


BAD_CREDENTIALS: list[Any] = [
    ("crlf-token-id", {**TOKEN, "api_token_id": "ledger@pve!inv\r\nX-Forwarded-For: 1"}, "api_token_id"),
    ("lf-token-id", {**TOKEN, "api_token_id": "ledger@pve!inv\nCookie: x"}, "api_token_id"),
    ("nul-token-id", {**TOKEN, "api_token_id": "ledger@pve!inv\x00"}, "api_token_id"),
    ("equals-token-id", {**TOKEN, "api_token_id": "ledger@pve!inv=other"}, "api_token_id"),
    pytest.param(
        {**TOKEN, "api_token_id": "lédger@pve!inv"},
        "api_token_id",
        id="non-ascii-token-id",
    ),
    ("unicode-line-separator", {**TOKEN, "api_token_id": "ledger@pve!inv\u2028X: 1"}, "api_token_id"),
    ("crlf-secret", {**TOKEN, "api_token_secret": SECRET + "\r\nX-Evil: 1"}, "api_token_secret"),
    pytest.param(
        {**TOKEN, "api_token_secret": SECRET + "é"},
        "api_token_secret",
        id="non-ascii-secret",
    ),
    ("wrong-type-secret", {**TOKEN, "api_token_secret": 12345}, "api_token_secret"),
]


@pytest.mark.parametrize(
    ("credential", "field"),
    [c if hasattr(c, "marks") else pytest.param(*c[1:], id=c[0]) for c in BAD_CREDENTIALS],
)
def test_header_injection_and_unsendable_credentials_are_refused_when_stored(
    ledger: Ledger, credential: dict[str, Any], field: str
) -> None:
    ledger.add_source("lab", "pve", {"endpoint": "https://127.0.0.1:8006"})
    with pytest.raises(LedgerError) as caught:
        ledger.set_credential("lab", credential)
    assert caught.value.code == "PVE_CONFIG_INVALID"
    assert field in caught.value.message
    assert SECRET not in caught.value.message
    assert SECRET not in str(caught.value.context)
    assert not ledger.get_source("lab").credential_set


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    user=st.text(min_size=1, max_size=10),
    realm=st.sampled_from(["pve", "pam"]) | st.text(min_size=1, max_size=5),
    name=st.text(min_size=1, max_size=10),
    secret=st.uuids().map(str) | st.text(min_size=1, max_size=40),
)
def test_any_token_text_is_either_refused_or_a_sendable_header(
    user: str, realm: str, name: str, secret: str
) -> None:
    token_id = f"{user}@{realm}!{name}"
    config = parse_config({"endpoint": "pve"})
    try:
        credential = parse_credential(config, {"api_token_id": token_id, "api_token_secret": secret})
    except LedgerError as exc:
        refused = exc
    else:
        refused = None
    if refused is not None:
        assert refused.code == "PVE_CONFIG_INVALID"
        assert len(secret) <= 3 or secret not in refused.message
        return
    header = credential.header()  # type: ignore[union-attr]
    assert not any(c in header for c in "\r\n\x00")
    httpx.Headers({"Authorization": header}).raw  # encodable as a real header  # noqa: B018


@settings(max_examples=300, deadline=None)
@given(
    field=st.sampled_from(["endpoint", "timeout_ms", "agent_timeout_ms", "max_parallel_nodes", "tls_verify",
                           "tls_fingerprint", "tls_ca_bundle", "scope", "auth_type"]),
    value=st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=30),
                    st.lists(st.integers(), max_size=2),
                    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2)),
)  # fmt: skip
def test_any_value_in_any_config_field_is_valid_or_pve_config_invalid(field: str, value: Any) -> None:
    config = {"endpoint": "https://pve.example:8006", field: value}
    try:
        parsed = parse_config(config)
    except LedgerError as exc:
        refused = exc
    else:
        refused = None
    if refused is not None:
        assert refused.code == "PVE_CONFIG_INVALID"
        assert f"config.{field}" in refused.message or refused.message.startswith("config")
        return
    assert parsed.endpoint.startswith("https://")
    assert 1 <= parsed.timeout_s <= 600
    assert 1 <= parsed.max_parallel_nodes <= 64


# -- redirects --------------------------------------------------------------------------------------------


class _Listener:
    """A loopback TCP port that only counts connections (the place a redirect points to)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.received = b""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.settimeout(1)
            with contextlib.suppress(OSError):
                self.received += conn.recv(65536)
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


@pytest.fixture
def redirector(tmp_path: Path) -> Iterator[tuple[str, str, _Listener, list[dict[str, str]], list[int]]]:
    """An HTTPS endpoint (pinned self-signed certificate) answering every request with a redirect to a
    listener on another loopback port."""
    certs = CertificateSet(tmp_path / "tls")
    certs.ensure_ca()
    certs.issue_leaf("127.0.0.1", "pve")
    target = _Listener()
    seen: list[dict[str, str]] = []
    status: list[int] = [302]

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append({k.lower(): v for k, v in self.headers.items()})
            self.send_response(status[0])
            self.send_header("Location", f"https://127.0.0.1:{target.port}{self.path}")
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_POST = do_GET

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certs.cert_path, certs.key_path)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}", certs.fingerprint(), target, seen, status
    finally:
        server.shutdown()
        server.server_close()
        target.close()


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@pytest.mark.parametrize("auth", ["api_token", "user_password"])
def test_a_redirect_is_never_followed_and_the_credential_goes_nowhere_else(
    ledger: Ledger, redirector: Any, status: int, auth: str
) -> None:
    url, fingerprint, target, seen, statuses = redirector
    statuses[0] = status
    ledger.add_source("lab", "pve", {"endpoint": url, "tls_fingerprint": fingerprint, "auth_type": auth})
    credential = TOKEN if auth == "api_token" else {"username": "ledger@pve", "password": SECRET}
    ledger.set_credential("lab", credential)
    ran = ledger.run_now("lab", "collect")
    assert ran.status == "failed"
    assert ran.errors[0]["code"] == "PVE_CONFIG_INVALID", ran.errors
    assert str(status) in ran.errors[0]["message"]
    assert "redirect" in ran.errors[0]["message"]
    assert seen, "the configured endpoint was asked"
    assert target.connections == 0, "the redirect was followed"
    assert SECRET.encode() not in target.received
