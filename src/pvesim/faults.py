"""Injectable faults: what can go wrong between a PVE client and the API, on purpose.

A :class:`Fault` matches requests by method, path glob, target node, probability and remaining count, and
then replaces the normal answer: a status (429 with ``Retry-After`` or 503 as a reverse proxy in front of PVE
would send, any 5xx), a connection reset before or in the middle of the body, a truncated or malformed JSON
body, a body whose ``data`` has the wrong JSON type, extra delay, or a request that never gets an answer.
"""

from __future__ import annotations

import fnmatch
import random
import threading
from dataclasses import dataclass, field
from typing import Any, Literal

FaultKind = Literal[
    "status",  #: answer ``status``/``reason`` (default body depends on status)
    "reset",  #: abort the connection (TCP RST) before any response byte
    "reset_mid_body",  #: send headers and half the body, then RST
    "truncate",  #: send headers (full Content-Length) and half the body, then close cleanly
    "malformed_json",  #: 200 with a body that is not valid JSON
    "wrong_type",  #: 200 with ``data`` replaced by ``value`` (default: a string)
    "slow",  #: wait ``delay`` seconds, then answer normally
    "hang",  #: never answer (until the client gives up or the server stops)
]
FAULT_KINDS: tuple[str, ...] = (
    "status",
    "reset",
    "reset_mid_body",
    "truncate",
    "malformed_json",
    "wrong_type",
    "slow",
    "hang",
)

_REASONS = {
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


@dataclass
class Fault:
    """One injected fault. ``count`` None = unlimited; ``probability`` uses the server's seeded RNG."""

    kind: FaultKind = "status"
    path: str = "*"
    method: str | None = None
    node: str | None = None
    status: int = 503
    reason: str | None = None
    retry_after: int | None = None
    body: bytes | None = None
    delay: float = 0.0
    value: Any = "unexpected"
    probability: float = 1.0
    count: int | None = None
    fired: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    _owner: Any = field(default=None, repr=False, compare=False)

    def matches(self, method: str, path: str, node: str | None) -> bool:
        if self.method is not None and self.method.upper() != method:
            return False
        if self.node is not None and self.node != node:
            return False
        return fnmatch.fnmatchcase(path, self.path)

    def take(self, rng: random.Random) -> bool:
        """Decide (and count) whether this fault fires for a matching request."""
        with self._lock:
            if self.count is not None and self.fired >= self.count:
                return False
            if self.probability < 1.0 and rng.random() >= self.probability:
                return False
            self.fired += 1
            return True

    @property
    def exhausted(self) -> bool:
        return self.count is not None and self.fired >= self.count

    def remove(self) -> None:
        """Stop this fault from firing."""
        if self._owner is not None:
            self._owner.remove_fault(self)

    def status_reason(self) -> str:
        return self.reason or _REASONS.get(self.status, "Error")

    def status_body(self) -> tuple[bytes, str | None]:
        """Body and content type of a ``status`` fault: an HTML proxy page for 429/502/503/504."""
        if self.body is not None:
            return self.body, "application/json;charset=UTF-8"
        if self.status >= 595:
            return b"", None  # pveproxy's own proxy errors (595/596/...) carry no body
        if self.status in (429, 502, 503, 504):
            title = f"{self.status} {self.status_reason()}"
            page = f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
            page += f"<center><h1>{title}</h1></center>\r\n"
            page += "<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
            return page.encode(), "text/html"
        return b'{"data":null}', "application/json;charset=UTF-8"


def parse_fault_spec(spec: str) -> Fault:
    """A fault from the CLI form ``kind[:key=value,...]`` (``status:path=/cluster/resources,status=429``)."""
    kind, _, rest = spec.partition(":")
    if kind not in FAULT_KINDS:
        raise ValueError(f"unknown fault kind {kind!r}; known: {', '.join(FAULT_KINDS)}")
    kwargs: dict[str, Any] = {}
    for item in filter(None, rest.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"fault option {item!r} is not key=value")
        key = key.strip().replace("-", "_")
        if key in ("status", "retry_after", "count"):
            kwargs[key] = int(value)
        elif key in ("delay", "probability"):
            kwargs[key] = float(value)
        elif key in ("path", "method", "node", "reason", "value"):
            kwargs[key] = value
        else:
            raise ValueError(f"unknown fault option {key!r}")
    return Fault(kind=kind, **kwargs)  # type: ignore[arg-type]
