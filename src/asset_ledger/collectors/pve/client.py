"""The PVE HTTPS client: TLS trust, authentication, retries and the one table that maps transport outcomes
to registered codes.

It knows PVE's wire protocol (``/api2/json``, the ``{"data": ...}`` envelope, error text in the reason phrase,
tokens and tickets) and nothing about normalized-v1. It never logs or returns a secret.

Outcome tree (what can go wrong with one call, and the code it carries)::

    PveCallError (LedgerError)
    ├── TLS               certificate not trusted / pin mismatch        -> PVE_TLS_ERROR
    ├── NETWORK           connect error, reset, timeout, 502/504        -> PVE_NETWORK_ERROR (retryable)
    ├── AUTH              401                                           -> PVE_AUTH_FAILED
    ├── FORBIDDEN         403                                           -> PVE_PERMISSION_DENIED
    ├── RATE_LIMITED      429/503 still after the bounded retries       -> PVE_RATE_LIMIT (retryable)
    ├── UNSUPPORTED       501 (endpoint absent in this PVE version)      -> PVE_API_UNSUPPORTED
    ├── NODE_UNREACHABLE  595/596 (pveproxy could not reach the node)   -> PVE_NETWORK_ERROR
    ├── SERVER_ERROR      any other non-2xx (500 handler errors, ...)   -> INVENTORY_INCOMPLETE
    ├── PARSE             malformed JSON, no ``data`` envelope, > 64 MiB -> PVE_PARSE_ERROR
    └── REDIRECT          3xx (never followed)                          -> PVE_CONFIG_INVALID

Callers decide what an outcome means for the run (an agent 403 is a warning, an enumeration 403 fails it).
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import enum
import hashlib
import heapq
import itertools
import json
import logging
import re
import ssl
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from asset_ledger.collectors.pve import metrics
from asset_ledger.collectors.pve.config import ApiTokenCredential, Credential, PasswordCredential, PveConfig
from asset_ledger.collectors.pve.permissions import grant_command
from asset_ledger.contract import LedgerError

log = logging.getLogger("asset_ledger.collectors.pve")

API_PREFIX = "/api2/json"
#: PVE tickets live 2 h; renew well before.
TICKET_RENEW_AFTER_S = 100 * 60
#: 429/503 are retried this many times (honouring Retry-After) before the call fails with PVE_RATE_LIMIT.
MAX_RATE_LIMIT_RETRIES = 3
MAX_RETRY_AFTER_S = 30.0
#: At most this many concurrent calls that end in a node's pvedaemon (it has 3 workers).
PROTECTED_CALLS_PER_NODE = 3
#: At most this many concurrent calls per node that its pveproxy answers itself (it has 3 workers too;
#: these calls are short, but they must not queue behind dead guest agents holding every pvedaemon worker).
OTHER_CALLS_PER_NODE = 3
CALLS_PER_NODE = PROTECTED_CALLS_PER_NODE + OTHER_CALLS_PER_NODE
#: The calls that PVE marks ``protected`` (pveproxy hands them to pvedaemon), among those the collector
#: makes: the guest lists, guest status, guest agent and container interfaces. The same in every release
#: 5.0-9.1 (pve-apidata); configs and node status are answered by pveproxy.
_PVEDAEMON_PATH = re.compile(
    r"^/cluster/status$"
    r"|^/nodes/[^/]+/(qemu|lxc)$"
    r"|^/nodes/[^/]+/(qemu|lxc)/[0-9]+/status/current$"
    r"|^/nodes/[^/]+/qemu/[0-9]+/agent(/[^/]+)?$"
    r"|^/nodes/[^/]+/lxc/[0-9]+/interfaces$"
)
#: Answers larger than this (after decompression) are refused: the largest real PVE answer, /cluster/resources
#: of a 10,000-guest cluster, is about 3 MB; without a cap a broken proxy or a gzip bomb exhausts memory.
MAX_BODY_BYTES = 64 * 1024 * 1024
#: Request paths: segments built from PVE's own node names and vmids, never '.', '..', '%', '?' or controls.
_SAFE_PATH = re.compile(r"^(/[A-Za-z0-9_][A-Za-z0-9._-]*)+$")


class Outcome(enum.Enum):
    TLS = "tls"
    NETWORK = "network"
    AUTH = "auth"
    FORBIDDEN = "forbidden"
    RATE_LIMITED = "rate_limited"
    UNSUPPORTED = "unsupported"
    NODE_UNREACHABLE = "node_unreachable"
    SERVER_ERROR = "server_error"
    PARSE = "parse"
    REDIRECT = "redirect"


#: The mapping table: HTTP status -> outcome. Statuses not listed are SERVER_ERROR when >= 300 (3xx are
#: REDIRECT: never followed, so a credential never goes anywhere but the configured endpoint).
STATUS_OUTCOMES: dict[int, Outcome] = {
    401: Outcome.AUTH,
    403: Outcome.FORBIDDEN,
    429: Outcome.RATE_LIMITED,
    501: Outcome.UNSUPPORTED,
    502: Outcome.NETWORK,
    503: Outcome.RATE_LIMITED,
    504: Outcome.NETWORK,
    595: Outcome.NODE_UNREACHABLE,
    596: Outcome.NODE_UNREACHABLE,
}

#: The mapping table: transport exception -> outcome (first match wins; TLS is found in the cause chain).
EXCEPTION_OUTCOMES: tuple[tuple[type[BaseException], Outcome], ...] = (
    (ssl.SSLError, Outcome.TLS),
    (httpx.TimeoutException, Outcome.NETWORK),
    (httpx.NetworkError, Outcome.NETWORK),
    (httpx.RemoteProtocolError, Outcome.NETWORK),
    (httpx.ProtocolError, Outcome.NETWORK),
    (OSError, Outcome.NETWORK),
)

#: The mapping table: outcome -> registered code.
OUTCOME_CODES: dict[Outcome, str] = {
    Outcome.TLS: "PVE_TLS_ERROR",
    Outcome.NETWORK: "PVE_NETWORK_ERROR",
    Outcome.AUTH: "PVE_AUTH_FAILED",
    Outcome.FORBIDDEN: "PVE_PERMISSION_DENIED",
    Outcome.RATE_LIMITED: "PVE_RATE_LIMIT",
    Outcome.UNSUPPORTED: "PVE_API_UNSUPPORTED",
    Outcome.NODE_UNREACHABLE: "PVE_NETWORK_ERROR",
    Outcome.SERVER_ERROR: "INVENTORY_INCOMPLETE",
    Outcome.PARSE: "PVE_PARSE_ERROR",
    Outcome.REDIRECT: "PVE_CONFIG_INVALID",
}


class PveCallError(LedgerError):
    """One failed PVE call: the outcome, the HTTP status (if any), PVE's own error text and the path."""

    def __init__(
        self,
        outcome: Outcome,
        message: str,
        *,
        path: str,
        status: int | None = None,
        reason: str = "",
        suggested_action: str | None = None,
    ) -> None:
        context: dict[str, Any] = {"path": path}
        if status is not None:
            context["http_status"] = status
        if reason:
            context["pve_message"] = reason
        super().__init__(OUTCOME_CODES[outcome], message, suggested_action=suggested_action, context=context)
        self.outcome = outcome
        self.path = path
        self.status = status
        self.reason = reason


def outcome_for_exception(exc: BaseException) -> Outcome:
    """The outcome of a transport exception, looking through its cause chain for TLS failures."""
    chain: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and len(chain) < 10:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    for candidate in chain:
        if isinstance(candidate, ssl.SSLError):
            return Outcome.TLS
    text = " ".join(str(c) for c in chain).lower()
    if "certificate" in text or "ssl" in text or "tls" in text:
        return Outcome.TLS
    for exc_type, outcome in EXCEPTION_OUTCOMES:
        if isinstance(exc, exc_type):
            return outcome
    return Outcome.NETWORK


def _exception_text(exc: BaseException) -> str:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return f"certificate verify failed: {seen.verify_message}"
        if isinstance(seen, ssl.SSLError):
            return str(seen.reason or seen)
        seen = seen.__cause__ or seen.__context__
    text = str(exc) or type(exc).__name__
    return text if len(text) < 300 else text[:300] + "…"


def sha256_fingerprint(der: bytes) -> str:
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def _retry_after_seconds(value: str | None) -> float | None:
    if value is None:
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


@dataclass
class Ticket:
    ticket: str
    csrf: str
    username: str
    cap: dict[str, Any] | None
    clustername: str | None
    issued_at: float


def pvedaemon_call(path: str) -> bool:
    """Whether PVE serves ``path`` in one of the node's 3 pvedaemon workers (a ``protected`` call)."""
    return _PVEDAEMON_PATH.match(path) is not None


class NodeSlots:
    """At most ``size`` calls at a time; waiting calls are let in by priority (lower first), then in order.

    A dead guest agent holds its pvedaemon worker for seconds, so agent calls go first (the longest jobs
    start earliest) instead of queueing behind every guest config of their node.
    """

    def __init__(self, size: int) -> None:
        self._free = size
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    @contextlib.asynccontextmanager
    async def hold(self, priority: int = 1) -> AsyncIterator[None]:
        if self._free > 0 and not self._waiters:
            self._free -= 1
        else:
            granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            heapq.heappush(self._waiters, (priority, next(self._order), granted))
            try:
                await granted
            except BaseException:
                if granted.done() and not granted.cancelled():
                    self._release()  # the slot was handed over just as this call was cancelled
                raise
        try:
            yield
        finally:
            self._release()

    def _release(self) -> None:
        while self._waiters:
            _, _, waiter = heapq.heappop(self._waiters)
            if not waiter.done():  # cancelled waiters are skipped
                waiter.set_result(None)
                return
        self._free += 1


class PveClient:
    """An authenticated, connection-reusing client for one PVE endpoint. Use ``async with``."""

    def __init__(
        self,
        config: PveConfig,
        credential: Credential,
        *,
        source_id: str = "",
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.config = config
        self.credential = credential
        self.source_id = source_id
        self.base_url = config.endpoint + API_PREFIX
        self.requests = 0
        self.rate_limited = 0
        self.retry_budget = MAX_RATE_LIMIT_RETRIES
        self.ticket_renew_after_s = TICKET_RENEW_AFTER_S
        self.ticket: Ticket | None = None
        self.peer_fingerprint: str | None = None
        self._transport = transport
        self._http: httpx.AsyncClient | None = None
        self._node_http: dict[str, httpx.AsyncClient] = {}
        self._verify: ssl.SSLContext | None = None
        self._auth_lock = asyncio.Lock()
        self._node_slots: dict[tuple[str, bool], NodeSlots] = {}

    # -- lifecycle ---------------------------------------------------------------------------------

    async def __aenter__(self) -> PveClient:
        self._verify = await self._ssl_context()
        self._http = self._new_http(max(4, self.config.max_parallel_nodes * CALLS_PER_NODE))
        return self

    def _new_http(self, connections: int) -> httpx.AsyncClient:
        limits = httpx.Limits(
            max_connections=connections,
            max_keepalive_connections=connections,
            keepalive_expiry=4.0,  # pveproxy closes idle keep-alive connections after 5 s
        )
        return httpx.AsyncClient(
            base_url=self.base_url,
            verify=self._verify if self._verify is not None else True,
            timeout=httpx.Timeout(self.config.timeout_s),
            follow_redirects=False,
            limits=limits,
            transport=self._transport,
            headers={"Accept": "application/json", "User-Agent": "asset-ledger-pve"},
            trust_env=False,
        )

    def _http_for(self, path: str) -> httpx.AsyncClient | None:
        """The connection pool for ``path``: one small pool per node for ``/nodes/{node}/...`` calls.

        httpx's pool looks at every connection for every queued request, so one pool of 48 connections
        (16 nodes x 3 calls) costs more CPU per request than the request itself; per-node pools of
        6 connections (3 pvedaemon + 3 pveproxy calls) keep that constant. A test transport is shared.
        """
        if self._transport is not None or not path.startswith("/nodes/"):
            return self._http
        node = path.split("/", 3)[2]
        client = self._node_http.get(node)
        if client is None and self._http is not None:
            client = self._node_http[node] = self._new_http(CALLS_PER_NODE)
        return client

    async def __aexit__(self, *exc_info: object) -> None:
        clients = [c for c in (self._http, *self._node_http.values()) if c is not None]
        self._http = None
        self._node_http = {}
        for client in clients:
            await client.aclose()

    def node_slot(self, node: str, path: str) -> NodeSlots:
        """The slots ``path`` waits for on ``node``: at most 3 calls at a time in its pvedaemon and 3 in
        its pveproxy, each most urgent first."""
        protected = pvedaemon_call(path)
        slot = self._node_slots.get((node, protected))
        if slot is None:
            size = PROTECTED_CALLS_PER_NODE if protected else OTHER_CALLS_PER_NODE
            slot = self._node_slots[node, protected] = NodeSlots(size)
        return slot

    # -- TLS -----------------------------------------------------------------------------------------

    async def _ssl_context(self) -> ssl.SSLContext:
        cfg = self.config
        if not cfg.tls_verify:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            return ctx
        if cfg.tls_fingerprint:
            return await self._pinned_context(cfg.tls_fingerprint)
        try:
            return ssl.create_default_context(cafile=cfg.tls_ca_bundle)
        except (OSError, ssl.SSLError) as exc:
            raise LedgerError(
                "PVE_CONFIG_INVALID",
                f"config.tls_ca_bundle: cannot load CA certificates from {cfg.tls_ca_bundle!r}: "
                f"{_exception_text(exc)}",
                context={"fields": ["config.tls_ca_bundle"]},
            ) from None

    async def _pinned_context(self, pinned: str) -> ssl.SSLContext:
        """A context that trusts exactly the pinned certificate.

        The server's certificate is fetched once without verification, compared with the pin, and then used
        as the only trust anchor: every later handshake is verified by OpenSSL against it, so no credential
        is ever sent to a server whose certificate differs from the pin.
        """
        probe = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        probe.check_hostname = False
        probe.verify_mode = ssl.CERT_NONE
        path = "(TLS handshake)"
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(self.config.host, self.config.port, ssl=probe),
                timeout=self.config.timeout_s,
            )
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            outcome = outcome_for_exception(exc) if not isinstance(exc, TimeoutError) else Outcome.NETWORK
            raise PveCallError(
                outcome,
                f"cannot reach {self.config.endpoint} to check its certificate: {_exception_text(exc)}",
                path=path,
            ) from None
        try:
            ssl_object = writer.get_extra_info("ssl_object")
            der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        finally:
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()
        del reader
        if not der:
            raise PveCallError(Outcome.TLS, "the server presented no certificate", path=path)
        actual = sha256_fingerprint(der)
        self.peer_fingerprint = actual
        if actual != pinned:
            raise PveCallError(
                Outcome.TLS,
                f"the server certificate's SHA-256 fingerprint {actual} does not match the pinned "
                f"tls_fingerprint {pinned}",
                path=path,
                suggested_action=(
                    "If the PVE certificate was renewed on purpose, read the new fingerprint on the node "
                    "(pvenode cert info) and update tls_fingerprint; otherwise treat this as a possible "
                    "interception and do not connect."
                ),
            )
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False  # identity is the pinned certificate itself, not a name in it
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(cadata=der)
        ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
        return ctx

    # -- auth ----------------------------------------------------------------------------------------

    def _auth_headers(self, method: str) -> dict[str, str]:
        if isinstance(self.credential, ApiTokenCredential):
            return {"Authorization": self.credential.header()}
        if self.ticket is None:
            return {}
        headers = {"Cookie": f"PVEAuthCookie={self.ticket.ticket}"}
        if method != "GET":
            headers["CSRFPreventionToken"] = self.ticket.csrf
        return headers

    async def login(self) -> Ticket | None:
        """Get a ticket for password credentials (no-op for tokens)."""
        if not isinstance(self.credential, PasswordCredential):
            return None
        async with self._auth_lock:
            self.ticket = await self._ticket_call(self.credential.userid, self.credential.password)
        return self.ticket

    async def _ensure_ticket(self) -> None:
        if not isinstance(self.credential, PasswordCredential):
            return
        if self.ticket is None:
            await self.login()
            return
        if time.monotonic() - self.ticket.issued_at < self.ticket_renew_after_s:
            return
        async with self._auth_lock:
            ticket = self.ticket
            if ticket is None or time.monotonic() - ticket.issued_at < self.ticket_renew_after_s:
                return
            try:  # renewal: the valid old ticket stands in for the password
                self.ticket = await self._ticket_call(ticket.username, ticket.ticket)
            except PveCallError as exc:
                if exc.outcome is not Outcome.AUTH:
                    raise
                self.ticket = await self._ticket_call(self.credential.userid, self.credential.password)

    async def _ticket_call(self, username: str, password: str) -> Ticket:
        path = "/access/ticket"
        response = await self._send("POST", path, data={"username": username, "password": password})
        if response.status_code == 401:
            raise PveCallError(
                Outcome.AUTH,
                f"PVE rejected user {username!r}: {self._error_text(response) or 'authentication failure'}",
                path=path,
                status=401,
                reason=self._error_text(response),
                suggested_action="Check user name, realm and password (asset-ledger source set-credential).",
            )
        self._raise_for_status(response, path, "POST")
        data = self._payload(response, path)
        if not isinstance(data, Mapping) or not isinstance(data.get("ticket"), str):
            raise PveCallError(Outcome.PARSE, "the ticket answer has no ticket", path=path)
        if _truthy(data.get("NeedTFA")) or str(data["ticket"]).startswith("PVE:!tfa!"):
            raise PveCallError(
                Outcome.AUTH,
                f"user {username!r} has two-factor authentication enabled, which an unattended collector "
                "cannot complete",
                path=path,
                suggested_action=(
                    "Use an API token (PVE 6.2+, auth_type api_token) or a dedicated read-only user without "
                    "TFA for the collector."
                ),
            )
        cap = data.get("cap")
        clustername = data.get("clustername")
        return Ticket(
            ticket=str(data["ticket"]),
            csrf=str(data.get("CSRFPreventionToken") or ""),
            username=str(data.get("username") or username),
            cap=dict(cap) if isinstance(cap, Mapping) else None,
            clustername=str(clustername) if isinstance(clustername, str) and clustername else None,
            issued_at=time.monotonic(),
        )

    # -- requests ------------------------------------------------------------------------------------

    async def get(
        self, path: str, *, params: Mapping[str, Any] | None = None, timeout_s: float | None = None
    ) -> Any:
        """The ``data`` of ``GET path``; ``PveCallError`` for every failure."""
        return await self.call("GET", path, params=params, timeout_s=timeout_s)

    async def call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        data: Mapping[str, Any] | None = None,
        timeout_s: float | None = None,
    ) -> Any:
        await self._ensure_ticket()
        sent_with = self.ticket
        response = await self._send_with_retries(method, path, params=params, data=data, timeout_s=timeout_s)
        if (
            response.status_code == 401
            and isinstance(self.credential, PasswordCredential)
            and sent_with is not None
        ):
            # The ticket expired or the auth keys rotated mid-run: log in once more (once for all calls
            # that failed with the same ticket) and repeat the call.
            async with self._auth_lock:
                if self.ticket is sent_with:
                    self.ticket = await self._ticket_call(self.credential.userid, self.credential.password)
            response = await self._send_with_retries(
                method, path, params=params, data=data, timeout_s=timeout_s
            )
        self._raise_for_status(response, path, method)
        return self._payload(response, path)

    async def _send_with_retries(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None,
        data: Mapping[str, Any] | None,
        timeout_s: float | None,
    ) -> httpx.Response:
        attempt = 0
        while True:
            response = await self._send(method, path, params=params, data=data, timeout_s=timeout_s)
            if STATUS_OUTCOMES.get(response.status_code) is not Outcome.RATE_LIMITED:
                return response
            retry_after = _retry_after_seconds(response.headers.get("Retry-After"))
            self.rate_limited += 1
            metrics.RATE_LIMIT_COUNT.labels(source_id=self.source_id).inc()
            log.warning(
                "PVE answered %s on %s; %s",
                response.status_code,
                path,
                "retrying" if attempt < self.retry_budget else "giving up",
                extra={
                    "event": "pve.rate_limited",
                    "source_id": self.source_id,
                    "region": self.config.host,
                    "retry_after": retry_after,
                    "path": path,
                    "http_status": response.status_code,
                },
            )
            if attempt >= self.retry_budget:
                return response
            delay = retry_after if retry_after is not None else 0.5 * (2**attempt)
            await asyncio.sleep(min(delay, MAX_RETRY_AFTER_S))
            attempt += 1

    async def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        data: Mapping[str, Any] | None = None,
        timeout_s: float | None = None,
    ) -> httpx.Response:
        http = self._http_for(path)
        if http is None:
            raise RuntimeError("PveClient used outside 'async with'")
        if not _SAFE_PATH.match(path):
            raise PveCallError(
                Outcome.PARSE,
                f"{method} {path!r} not sent: PVE named a node or guest that cannot be part of a URL",
                path=path,
            )
        self.requests += 1
        timeout = httpx.Timeout(timeout_s) if timeout_s is not None else httpx.USE_CLIENT_DEFAULT
        try:
            request = http.build_request(
                method,
                path.lstrip("/"),
                params=dict(params) if params else None,
                data=dict(data) if data else None,
                headers=self._auth_headers(method),
                timeout=timeout,
            )
            response = await http.send(request, stream=True)
            try:
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_BODY_BYTES:
                        raise PveCallError(
                            Outcome.PARSE,
                            f"{method} {path} answered more than {MAX_BODY_BYTES // 2**20} MiB; refused "
                            "(no PVE answer is that large: is the endpoint a PVE node?)",
                            path=path,
                            status=response.status_code,
                        )
            finally:
                await response.aclose()
            response._content = bytes(body)
        except httpx.TimeoutException as exc:
            raise PveCallError(
                Outcome.NETWORK,
                f"{method} {path} timed out after {timeout_s or self.config.timeout_s:g} s "
                f"({type(exc).__name__})",
                path=path,
            ) from None
        except (httpx.HTTPError, OSError, ssl.SSLError) as exc:
            outcome = outcome_for_exception(exc)
            text = _exception_text(exc)
            if outcome is Outcome.TLS:
                message = f"TLS handshake with {self.config.endpoint} failed: {text}"
                action = (
                    "Give the PVE CA in tls_ca_bundle (/etc/pve/pve-root-ca.pem) or pin the certificate "
                    "with tls_fingerprint (pvenode cert info); if a pin is set, the certificate has changed."
                )
            else:
                message = f"{method} {path}: {text}"
                action = None
            raise PveCallError(outcome, message, path=path, suggested_action=action) from None
        return response

    @staticmethod
    def _error_text(response: httpx.Response) -> str:
        reason = (response.reason_phrase or "").strip()
        body_message = ""
        try:
            body = json.loads(response.content) if response.content else None
        except ValueError:
            body = None
        if isinstance(body, Mapping):
            msg = body.get("message")
            if isinstance(msg, str):
                body_message = msg.strip()
            errors = body.get("errors")
            if isinstance(errors, Mapping) and errors:
                body_message = (body_message + " " + json.dumps(errors, sort_keys=True)).strip()
        if body_message and body_message not in reason:
            return f"{reason} - {body_message}" if reason else body_message
        return reason

    def _raise_for_status(self, response: httpx.Response, path: str, method: str = "GET") -> None:
        status = response.status_code
        if 200 <= status < 300:
            return
        outcome = STATUS_OUTCOMES.get(
            status, Outcome.REDIRECT if 300 <= status < 400 else Outcome.SERVER_ERROR
        )
        text = self._error_text(response)
        message = f"{method} {path} answered {status} {text}".strip()
        action: str | None = None
        if outcome is Outcome.REDIRECT:
            location = response.headers.get("location", "")[:200]
            message = (
                f"{method} {path} answered {status}, a redirect to {location!r}; redirects are never "
                "followed (the credential goes only to the configured endpoint)"
            )
            action = (
                "Set endpoint to the PVE node's own address (https://host:8006), not a proxy that redirects."
            )
        elif outcome is Outcome.AUTH:
            if isinstance(self.credential, ApiTokenCredential) and "no ticket" in text.lower():
                message = (
                    f"PVE answered '401 No ticket' to the API token: this server predates API tokens "
                    f"(PVE < 6.2) or a proxy removed the Authorization header ({path})"
                )
                action = (
                    "API tokens need PVE 6.2 or later: on older servers set auth_type user_password and give "
                    "username and password of a read-only user."
                )
            elif isinstance(self.credential, ApiTokenCredential):
                message = f"PVE rejected API token {self.credential.api_token_id!r}: {text or status}"
                action = (
                    "Check api_token_id and api_token_secret (pveum user token list <user>); the token "
                    "or its user may be expired or disabled."
                )
            else:
                message = f"PVE rejected the session for {path}: {text or status}"
        elif outcome is Outcome.RATE_LIMITED:
            message = (
                f"PVE kept answering {status} on {path} after {self.retry_budget} retries "
                f"honouring Retry-After ({text})"
            )
        elif outcome is Outcome.UNSUPPORTED:
            message = f"this PVE server does not implement {method} {path} (501 {text})"
        elif outcome is Outcome.FORBIDDEN:
            is_token = isinstance(self.credential, ApiTokenCredential)
            principal = (
                self.credential.api_token_id
                if isinstance(self.credential, ApiTokenCredential)
                else self.credential.userid
            )
            action = "Grant the read-only role PVEAuditor on / with propagation: " + grant_command(
                principal, is_token=is_token, version=None
            )
        raise PveCallError(outcome, message, path=path, status=status, reason=text, suggested_action=action)

    @staticmethod
    def _payload(response: httpx.Response, path: str) -> Any:
        try:
            body = json.loads(response.content)
        except (ValueError, UnicodeDecodeError) as exc:
            raise PveCallError(
                Outcome.PARSE,
                f"GET {path} answered malformed JSON ({type(exc).__name__}: {str(exc)[:120]})",
                path=path,
                status=response.status_code,
            ) from None
        if not isinstance(body, Mapping) or "data" not in body:
            raise PveCallError(
                Outcome.PARSE, f"GET {path} answered JSON without the 'data' envelope", path=path
            )
        return body["data"]


def _truthy(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    if isinstance(value, str):
        return value.strip().lower() in ("1", "yes", "on", "true")
    return False
