"""The simulator server: HTTPS/1.1 on loopback, faults, worker pools, observation, and the Python API.

:class:`SimServer` runs its own asyncio loop in a background thread, so synchronous tests and other event
loops can talk to it. The HTTP/1.1 layer is written by hand (not a framework) because a faithful PVE needs
control over reason phrases, keep-alive, connection resets mid-body, truncated bodies and slow answers.
The server binds loopback addresses only.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import ipaddress
import json
import os
import random
import re
import secrets
import shutil
import socket
import ssl
import struct
import tempfile
import threading
import time
from collections import Counter, deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path
from types import TracebackType
from typing import Any, Literal
from urllib.parse import parse_qsl, unquote

from pvesim.api import ApiRequest, ApiResponse, Delays, PveApi, Runtime
from pvesim.auth import TicketSigner, totp
from pvesim.faults import Fault, FaultKind
from pvesim.profiles import Profile, get_profile
from pvesim.tls import CertificateSet, fingerprint_hex
from pvesim.topology import Topology

API_PREFIX = "/api2/json"
_MAX_HEAD = 64 * 1024
_MAX_POST = 64 * 1024  #: pve-http-server ``$limit_max_post``
_KNOWN_METHODS = frozenset({"GET", "POST", "PUT", "DELETE"})


@dataclass
class _HttpRequest:
    """One parsed HTTP request; ``error`` is a transport-level refusal (status, reason)."""

    method: str
    target: str
    proto: str
    headers: dict[str, str]
    keep: bool
    body: bytes = b""
    error: tuple[int, str] | None = None
    #: refused while reading the header, before authentication (method, protocol, transfer encoding)
    early: bool = False


@dataclass(frozen=True)
class RequestRecord:
    """One served request as the request log keeps it."""

    method: str
    path: str  #: below ``/api2/json``, without the query string
    template: str | None  #: matched endpoint template (None when unmatched)
    node: str | None  #: node named in the path (the proxy target)
    status: int  #: 0 when the connection was reset/hung instead of answered
    start: float  #: ``time.time()`` when the request was read
    duration: float  #: seconds until the response was written (or the connection dropped)
    principal: str | None  #: user or token id
    fault: str | None  #: kind of the injected fault that shaped the answer
    protected: bool  #: ran in a pvedaemon worker slot


class Stats:
    """Counters and concurrency high-water marks; read with :meth:`SimServer.stats`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        #: live gauges (never reset: requests may be in flight while a test resets the counters)
        self.in_flight = 0
        self.protected_in_flight: Counter[str] = Counter()
        self._queued: Counter[str] = Counter()
        self.reset()

    def reset(self) -> None:
        """Zero the counters; high-water marks restart from what is in flight right now."""
        with self._lock:
            self.requests = 0
            self.by_endpoint: Counter[str] = Counter()
            self.by_node: Counter[str] = Counter()
            self.by_status: Counter[int] = Counter()
            self.by_principal: Counter[str] = Counter()
            self.faults: Counter[str] = Counter()
            self.connections = 0
            self.max_in_flight = self.in_flight
            self.protected_high_water: Counter[str] = Counter(+self.protected_in_flight)
            self.protected_queued_high_water: Counter[str] = Counter(+self._queued)

    def connected(self) -> None:
        with self._lock:
            self.connections += 1

    def enter(self) -> None:
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def leave(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def queue(self, node: str, delta: int) -> None:
        with self._lock:
            self._queued[node] += delta
            self.protected_queued_high_water[node] = max(
                self.protected_queued_high_water[node], self._queued[node]
            )

    def worker(self, node: str, delta: int) -> None:
        with self._lock:
            self.protected_in_flight[node] += delta
            self.protected_high_water[node] = max(
                self.protected_high_water[node], self.protected_in_flight[node]
            )

    def record(self, rec: RequestRecord) -> None:
        with self._lock:
            self.requests += 1
            self.by_endpoint[f"{rec.method} {rec.template or rec.path}"] += 1
            if rec.node:
                self.by_node[rec.node] += 1
            self.by_status[rec.status] += 1
            if rec.principal:
                self.by_principal[rec.principal] += 1
            if rec.fault:
                self.faults[rec.fault] += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": self.requests,
                "connections": self.connections,
                "by_endpoint": dict(self.by_endpoint),
                "by_node": dict(self.by_node),
                "by_status": dict(self.by_status),
                "by_principal": dict(self.by_principal),
                "faults": dict(self.faults),
                "in_flight": self.in_flight,
                "max_in_flight": self.max_in_flight,
                "protected_high_water": dict(self.protected_high_water),
                "protected_queued_high_water": dict(self.protected_queued_high_water),
            }


class _Abort(Exception):
    """Drop the connection without (completing) a response."""


def _quiet_transport_errors(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """Clients that abort handshakes or connections (certificate tests, resets) are normal here."""
    if isinstance(context.get("exception"), (ssl.SSLError, ConnectionError, TimeoutError)):
        return
    loop.default_exception_handler(context)


def _check_loopback(host: str) -> None:
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        if host != "localhost":
            raise ValueError(f"pvesim binds loopback addresses only, not {host!r}") from None
        return
    if not addr.is_loopback:
        raise ValueError(f"pvesim binds loopback addresses only, not {host!r}")


class SimServer:
    """A running (or startable) simulated PVE API.

    ``time_scale`` multiplies the faithful delays (3 s for 401s, dead agents and unreachable nodes);
    the explicit ``*_delay`` arguments override single delays in seconds (unscaled).
    """

    def __init__(
        self,
        profile: str | Profile = "8.4",
        topology: Topology | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        latency_ms: float = 0.0,
        time_scale: float = 1.0,
        auth_delay: float | None = None,
        agent_delay: float | None = None,
        offline_delay: float | None = None,
        hang_delay: float | None = None,
        workers: int = 3,
        seed: int = 0,
        tls_dir: str | os.PathLike[str] | None = None,
        faults: list[Fault] | tuple[Fault, ...] = (),
        keepalive_timeout: float = 5.0,
        max_requests_per_connection: int = 100,
        log_limit: int = 200_000,
    ) -> None:
        _check_loopback(host)
        self.profile = profile if isinstance(profile, Profile) else get_profile(profile)
        self.topology = topology if topology is not None else Topology.generate(seed=seed)
        self.host = host
        self.port = port
        self.latency_ms = latency_ms
        self.time_scale = time_scale
        self.workers = workers
        self.delays = Delays(
            auth_failure=3.0 * time_scale if auth_delay is None else auth_delay,
            agent=3.0 * time_scale if agent_delay is None else agent_delay,
            offline=3.0 * time_scale if offline_delay is None else offline_delay,
            hang=600.0 * time_scale if hang_delay is None else hang_delay,
        )
        self.keepalive_timeout = keepalive_timeout
        self.max_requests_per_connection = max_requests_per_connection
        self.rng = random.Random(seed)  # noqa: S311 - deterministic fault sampling, not security
        self._log: deque[RequestRecord] = deque(maxlen=log_limit)
        self._log_lock = threading.Lock()
        self._stats = Stats()
        self._faults: list[Fault] = []
        self._faults_lock = threading.Lock()
        for fault in faults:
            self._install_fault(fault)
        self._clock_offset = 0.0
        self._own_tls_dir = tls_dir is None
        self._tls = (
            CertificateSet(Path(tempfile.mkdtemp(prefix="pvesim-")))
            if tls_dir is None
            else CertificateSet(Path(tls_dir), leaf_tag=secrets.token_hex(4))
        )
        self._ssl: ssl.SSLContext | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._semaphores: dict[str, asyncio.Semaphore] = {}
        self._gzip_cache: dict[bytes, bytes] = {}
        self._stopping: asyncio.Event | None = None
        signer = TicketSigner(secrets.token_bytes(32))
        runtime = Runtime(self.now, self.delays, self._protected_slot)
        self.api = PveApi(self.profile, self.topology, runtime, signer)

    # --- lifecycle --------------------------------------------------------------------------------
    def start(self) -> SimServer:
        """Generate the certificate, bind, and return once the server accepts connections."""
        if self._thread is not None:
            raise RuntimeError("server already started")
        self._tls.issue_leaf(self.host, self.topology.entry_node)
        self._ssl = self._tls.server_context()
        self.api.local_fingerprint = self.fingerprint
        loop = asyncio.new_event_loop()
        self._loop = loop
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.set_exception_handler(_quiet_transport_errors)
            try:
                loop.run_until_complete(self._startup())
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()

        self._thread = threading.Thread(target=run, name="pvesim-server", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            self._thread.join()
            loop.close()
            self._thread = None
            self._loop = None
            raise failure[0]
        return self

    async def _startup(self) -> None:
        self._stopping = asyncio.Event()
        self._server = await asyncio.start_server(
            self._on_connection, self.host, self.port, ssl=self._ssl, limit=_MAX_HEAD, backlog=1024
        )
        self.port = self._server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        """Close the listener and every connection, stop the loop thread, remove temporary files."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        future = asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
        with contextlib.suppress(Exception):
            future.result(timeout=15)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=15)
        loop.close()
        self._loop = None
        self._thread = None
        if self._own_tls_dir:
            shutil.rmtree(self._tls.directory, ignore_errors=True)
        else:
            self._tls.remove_leaf()

    async def _shutdown(self) -> None:
        if self._stopping is not None:
            self._stopping.set()
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            with contextlib.suppress(Exception):
                writer.transport.abort()
        tasks = [t for t in self._tasks if not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)

    def __enter__(self) -> SimServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- what clients need ------------------------------------------------------------------------
    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.url}{API_PREFIX}"

    @property
    def ca_path(self) -> str:
        return str(self._tls.ca_path)

    @property
    def cert_path(self) -> str:
        return str(self._tls.cert_path)

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts the simulator's CA (httpx 0.28 deprecates ``verify=<path>``)."""
        return ssl.create_default_context(cafile=self.ca_path)

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the current server certificate, ``AA:BB:…`` as PVE shows it."""
        return self._tls.fingerprint()

    @property
    def fingerprint_hex(self) -> str:
        """The same fingerprint as plain lower-case hex."""
        return fingerprint_hex(self._tls.cert_path.read_bytes())

    def credentials(
        self, principal: str, auth: Literal["api_token", "user_password"] = "api_token"
    ) -> dict[str, str]:
        """Credentials of a default principal (``root``, ``reader``, ``privsep``, …) or a user/token id."""
        user, token = self.topology.principal(principal)
        if auth == "user_password":
            if user.password is None:
                raise ValueError(f"{user.userid} has no password")
            return {"username": user.userid, "password": user.password}
        if token is None:
            raise ValueError(f"principal {principal!r} has no API token")
        return {"api_token_id": f"{user.userid}!{token.name}", "api_token_secret": token.secret}

    def totp_code(self, principal: str = "tfa") -> str:
        """The current TOTP code of a user with TFA (by the server clock)."""
        user, _ = self.topology.principal(principal)
        if user.totp_secret is None:
            raise ValueError(f"{user.userid} has no TOTP configured")
        return totp(user.totp_secret, self.now())

    # --- clock ------------------------------------------------------------------------------------
    def now(self) -> float:
        return time.time() + self._clock_offset

    def advance_clock(self, seconds: float) -> None:
        """Move the server clock (ticket expiry, TOTP) forward without waiting."""
        self._clock_offset += seconds

    # --- topology shortcuts -----------------------------------------------------------------------
    def migrate(self, guest: str | int, node: str) -> None:
        self.topology.migrate(guest, node)

    def set_node_online(self, node: str, online: bool) -> None:
        self.topology.set_node_online(node, online)

    def set_guest_state(self, guest: str | int, state: Any) -> None:
        self.topology.set_state(guest, state)

    # --- faults -----------------------------------------------------------------------------------
    def _install_fault(self, fault: Fault) -> Fault:
        fault._owner = self
        with self._faults_lock:
            self._faults.append(fault)
        return fault

    def add_fault(
        self,
        path: str = "*",
        status: int | None = None,
        *,
        kind: FaultKind | None = None,
        method: str | None = None,
        node: str | None = None,
        reason: str | None = None,
        retry_after: int | None = None,
        body: bytes | None = None,
        delay: float = 0.0,
        value: Any = "unexpected",
        probability: float = 1.0,
        count: int | None = None,
    ) -> Fault:
        """Inject a fault for matching requests (``path`` is a glob below ``/api2/json``); returns its handle.

        ``kind`` defaults to ``"status"`` when ``status`` is given. Examples:
        ``add_fault(path="/cluster/resources", status=429, retry_after=1, count=2)``,
        ``add_fault(path="/nodes/*/qemu", kind="reset_mid_body")``.
        """
        if kind is None:
            if status is None:
                raise ValueError("give a status or a fault kind")
            kind = "status"
        fault = Fault(
            kind=kind,
            path=path,
            method=method,
            node=node,
            status=status if status is not None else 503,
            reason=reason,
            retry_after=retry_after,
            body=body,
            delay=delay,
            value=value,
            probability=probability,
            count=count,
        )
        return self._install_fault(fault)

    def remove_fault(self, fault: Fault) -> None:
        with self._faults_lock:
            if fault in self._faults:
                self._faults.remove(fault)

    def clear_faults(self) -> None:
        with self._faults_lock:
            self._faults.clear()

    @property
    def faults(self) -> list[Fault]:
        with self._faults_lock:
            return list(self._faults)

    def _pick_fault(self, method: str, path: str, node: str | None) -> Fault | None:
        with self._faults_lock:
            candidates = [f for f in self._faults if f.matches(method, path, node)]
        for fault in candidates:
            if fault.take(self.rng):
                return fault
        return None

    def rotate_certificate(self, *, new_ca: bool = False) -> str:
        """Issue a new server certificate (from a new CA with ``new_ca``); new handshakes see it.

        Returns the new fingerprint.
        """
        if new_ca:
            self._tls.ensure_ca(new=True)
        self._tls.issue_leaf(self.host, self.topology.entry_node)
        if self._ssl is not None:
            self._tls.reload(self._ssl)
        self.api.local_fingerprint = self.fingerprint
        return self.fingerprint

    # --- observation ------------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """Counters per endpoint template, node, status, principal and fault, plus high-water marks."""
        return self._stats.snapshot()

    @property
    def request_log(self) -> list[RequestRecord]:
        """A snapshot of the request log, oldest first (at most ``log_limit`` entries)."""
        with self._log_lock:
            return list(self._log)

    def reset_stats(self) -> None:
        self._stats.reset()
        with self._log_lock:
            self._log.clear()

    @contextlib.asynccontextmanager
    async def _protected_slot(self, node: str) -> AsyncIterator[None]:
        sem = self._semaphores.get(node)
        if sem is None:
            sem = self._semaphores[node] = asyncio.Semaphore(self.workers)
        self._stats.queue(node, 1)
        try:
            await sem.acquire()
        finally:
            self._stats.queue(node, -1)
        self._stats.worker(node, 1)
        try:
            yield
        finally:
            self._stats.worker(node, -1)
            sem.release()

    # --- HTTP/1.1 ---------------------------------------------------------------------------------
    async def _on_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        self._writers.add(writer)
        self._stats.connected()
        try:
            await self._serve(reader, writer)
        except (_Abort, ConnectionError, ssl.SSLError, asyncio.IncompleteReadError, TimeoutError):
            with contextlib.suppress(Exception):
                writer.transport.abort()
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                writer.transport.abort()
        finally:
            self._writers.discard(writer)
            if task is not None:
                self._tasks.discard(task)
            if not writer.transport.is_closing():
                writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        served = 0
        while served < self.max_requests_per_connection:
            try:
                head = await asyncio.wait_for(
                    reader.readuntil(b"\r\n\r\n"), self.keepalive_timeout if served else 30.0
                )
            except (asyncio.IncompleteReadError, TimeoutError, asyncio.LimitOverrunError):
                return
            request = self._parse_head(head.decode("latin-1").lstrip("\r\n"))
            if request is None:
                await self._write(writer, 400, "bad request", b"", None, keep=False, proto="HTTP/1.0")
                return
            served += 1
            request.keep = request.keep and served < self.max_requests_per_connection
            if request.error is None:
                length = int(request.headers.get("content-length", "0") or 0)
                if length:
                    request.error = self._content_error(request, length)
                    if request.error is None:
                        # no "100 Continue": pve-http-server ignores Expect, clients send the body anyway
                        request.body = await reader.readexactly(length)
            if request.error is not None:
                request.keep = False
            keep = await self._exchange(writer, request)
            if not keep:
                return

    @staticmethod
    def _parse_head(text: str) -> _HttpRequest | None:
        """Request line and headers; transport-level refusals as pve-http-server words them."""
        lines = text.split("\r\n")
        match = re.fullmatch(r"(\S+) (\S+) HTTP/(\d+)\.(\d+)", lines[0])
        if match is None:
            return None
        method, target, major, minor = (
            match.group(1),
            match.group(2),
            int(match.group(3)),
            int(match.group(4)),
        )
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if not line:
                continue
            name, _, value = line.partition(":")
            key = name.strip().lower()
            value = value.strip()
            if key in headers:
                headers[key] += ("; " if key == "cookie" else ", ") + value
            else:
                headers[key] = value
        proto = f"HTTP/{major}.{minor}"
        connection = headers.get("connection", "").lower()
        keep = "close" not in connection if connection else (major, minor) >= (1, 1)
        request = _HttpRequest(method, target, proto, headers, keep)
        transfer_encoding = headers.get("transfer-encoding")
        if major != 1:
            request.error = (506, f"http protocol version {major}.{minor} not supported")
            request.proto = "HTTP/1.0"
        elif method not in _KNOWN_METHODS:
            request.error = (501, f"method '{method}' not available")
        elif transfer_encoding:
            if transfer_encoding.lower() == "chunked":
                request.error = (501, "chunked transfer encoding not supported")
            else:
                request.error = (501, f"Unknown transfer encoding '{transfer_encoding}'")
        request.early = request.error is not None
        return request

    @staticmethod
    def _content_error(request: _HttpRequest, length: int) -> tuple[int, str] | None:
        if request.method not in ("POST", "PUT"):
            return (501, f"Unexpected content for method '{request.method}'")
        if length > _MAX_POST:
            return (501, "for data too large")
        ctype = request.headers.get("content-type", "")
        base = re.split(r"\s*[;,]\s*", ctype)[0] if ctype else ""
        if base and base not in ("application/x-www-form-urlencoded", "application/json"):
            return (506, f"upload 'Content-Type '{ctype}' not implemented")
        return None

    @staticmethod
    def _parse_params(query: str, body: bytes, content_type: str) -> dict[str, Any]:
        params: dict[str, Any] = dict(parse_qsl(query, keep_blank_values=True))
        if body:
            if "application/json" in content_type:
                try:
                    decoded = json.loads(body)
                except ValueError:
                    decoded = None
                if isinstance(decoded, dict):
                    for key, value in decoded.items():
                        if isinstance(value, bool):
                            params[key] = "1" if value else "0"
                        elif value is not None:
                            params[key] = value if isinstance(value, str) else json.dumps(value)
            else:
                params.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        return params

    def _compress(self, body: bytes, headers: dict[str, str]) -> tuple[bytes, list[tuple[str, str]]]:
        """gzip like pve-http-server: when the client accepts it and the content exceeds 1024 bytes."""
        if len(body) <= 1024 or "gzip" not in headers.get("accept-encoding", ""):
            return body, []
        packed = self._gzip_cache.get(body)
        if packed is None:
            # memGzip uses zlib's default level; large bodies use level 1 so the simulator stays fast
            packed = gzip.compress(body, compresslevel=6 if len(body) < 262144 else 1, mtime=0)
            if len(body) >= 65536:
                if len(self._gzip_cache) >= 8:
                    self._gzip_cache.pop(next(iter(self._gzip_cache)))
                self._gzip_cache[body] = packed
        return packed, [("Content-Encoding", "gzip")]

    async def _exchange(self, writer: asyncio.StreamWriter, req: _HttpRequest) -> bool:
        start = time.time()
        t0 = time.perf_counter()
        method = req.method
        raw_path, _, query = req.target.partition("?")
        path = unquote(raw_path)
        api_path = path[len(API_PREFIX) :] if path.startswith(API_PREFIX + "/") else None
        node = None
        if api_path is not None:
            parts = api_path.split("/")
            if len(parts) > 2 and parts[1] == "nodes":
                node = parts[2]
        record_path = api_path if api_path is not None else path
        keep = req.keep
        self._stats.enter()
        status = 0
        response: ApiResponse | None = None
        fault: Fault | None = None
        recorded = False

        def record() -> None:
            # recorded before the last byte goes out, so a client that has its answer sees it logged
            nonlocal recorded
            recorded = True
            answered = fault is None or fault.kind in ("status", "slow", "wrong_type", "malformed_json")
            rec = RequestRecord(
                method=method,
                path=record_path,
                template=response.template if response else None,
                node=node,
                status=status if answered else 0,
                start=start,
                duration=time.perf_counter() - t0,
                principal=response.principal if response else None,
                fault=fault.kind if fault else None,
                protected=response.protected if response else False,
            )
            with self._log_lock:
                self._log.append(rec)
            self._stats.record(rec)

        try:
            if self.latency_ms:
                await asyncio.sleep(self.latency_ms / 1000.0)
            fault = self._pick_fault(method, record_path, node)
            if fault is not None and fault.delay and fault.kind != "hang":
                await asyncio.sleep(fault.delay)
            if fault is not None and fault.kind == "hang":
                assert self._stopping is not None
                await self._stopping.wait()
                raise _Abort
            if fault is not None and fault.kind == "reset":
                self._reset(writer)
                raise _Abort
            if fault is not None and fault.kind == "status":
                payload, ctype = fault.status_body()
                extra = [("Retry-After", str(fault.retry_after))] if fault.retry_after is not None else []
                status = fault.status
                record()
                await self._write(
                    writer, fault.status, fault.status_reason(), payload, ctype, keep, extra, proto=req.proto
                )
                return keep
            if req.error is not None and req.early:
                response = ApiResponse(req.error[0], req.error[1], b"", None)
            elif api_path is None:
                no_uri = path.startswith("/api2") and not re.match(r"/api2/[a-z][a-z0-9]+(/|$)", path)
                response = ApiResponse(501, "no such uri" if no_uri else f"no such file '{path}'", b"", None)
            else:
                request = ApiRequest(
                    method,
                    api_path,
                    self._parse_params(query, req.body, req.headers.get("content-type", "")),
                    req.headers,
                    transport_error=req.error,
                )
                response = await self.api.handle(request)
            status = response.status
            if status >= 400:
                keep = False  # pve-http-server ends keep-alive after every error response
            payload = response.body
            if fault is not None and fault.kind == "wrong_type" and response.status == 200:
                payload = json.dumps({"data": fault.value}).encode()
            elif fault is not None and fault.kind == "malformed_json":
                payload = payload[: max(1, len(payload) // 2)] + b"<!-- pveproxy -->,]"
            payload, encoding = self._compress(payload, req.headers)
            extra = response.headers + encoding
            if fault is not None and fault.kind in ("truncate", "reset_mid_body"):
                head = self._head(
                    response.status,
                    response.reason,
                    len(payload),
                    response.content_type,
                    keep,
                    extra,
                    req.proto,
                )
                writer.write(head + payload[: len(payload) // 2])
                await writer.drain()
                if fault.kind == "reset_mid_body":
                    self._reset(writer)
                else:
                    writer.close()
                raise _Abort
            record()
            await self._write(
                writer,
                response.status,
                response.reason,
                payload,
                response.content_type,
                keep,
                extra,
                proto=req.proto,
            )
            return keep
        finally:
            if not recorded:
                record()
            self._stats.leave()

    @staticmethod
    def _reset(writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()

    @staticmethod
    def _head(  # noqa: PLR0917 - mirrors the status line and header order
        status: int,
        reason: str,
        length: int,
        content_type: str | None,
        keep: bool,
        extra: list[tuple[str, str]] | None = None,
        proto: str = "HTTP/1.1",
    ) -> bytes:
        date = formatdate(usegmt=True)
        lines = [
            f"{proto} {status} {reason}",
            "Cache-Control: max-age=0",
            f"Connection: {'Keep-Alive' if keep else 'close'}",
            f"Date: {date}",
            "Pragma: no-cache",
            "Server: pve-api-daemon/3.0",
            f"Content-Length: {length}",
        ]
        if content_type:
            lines.append(f"Content-Type: {content_type}")
        lines.append(f"Expires: {date}")
        for name, value in extra or []:
            lines.append(f"{name}: {value}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")

    async def _write(  # noqa: PLR0917 - mirrors the status line and header order
        self,
        writer: asyncio.StreamWriter,
        status: int,
        reason: str,
        body: bytes,
        content_type: str | None,
        keep: bool,
        extra: list[tuple[str, str]] | None = None,
        *,
        proto: str = "HTTP/1.1",
    ) -> None:
        writer.write(self._head(status, reason, len(body), content_type, keep, extra, proto) + body)
        await writer.drain()
