"""The per-release endpoint table extracted from the official API schema (``data/apidata.json``).

It answers two questions for a profile: does ``METHOD /concrete/path`` exist in that release (else PVE
answers 501), and — for the endpoints pvesim serves — which permission check, ``protected``, ``proxyto``,
``allowtoken`` and parameters the release declares. Regenerate with ``pvesim.tools.extract_apidata``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

#: The endpoints pvesim answers (method, path template) for the releases whose schema has them.
#: ``PveApi`` has one handler per entry (a test keeps both in step).
SERVED: tuple[tuple[str, str], ...] = (
    ("GET", "/version"),
    ("GET", "/access"),
    ("GET", "/access/ticket"),
    ("POST", "/access/ticket"),
    ("POST", "/access/tfa"),
    ("GET", "/access/permissions"),
    ("GET", "/access/users"),
    ("GET", "/cluster/status"),
    ("GET", "/cluster/resources"),
    ("GET", "/nodes"),
    ("GET", "/nodes/{node}/status"),
    ("GET", "/nodes/{node}/version"),
    ("GET", "/nodes/{node}/subscription"),
    ("GET", "/nodes/{node}/qemu"),
    ("GET", "/nodes/{node}/lxc"),
    ("GET", "/nodes/{node}/qemu/{vmid}/status/current"),
    ("GET", "/nodes/{node}/qemu/{vmid}/config"),
    ("GET", "/nodes/{node}/lxc/{vmid}/status/current"),
    ("GET", "/nodes/{node}/lxc/{vmid}/config"),
    ("GET", "/nodes/{node}/lxc/{vmid}/interfaces"),
    ("GET", "/nodes/{node}/qemu/{vmid}/agent"),
    ("POST", "/nodes/{node}/qemu/{vmid}/agent"),
    ("GET", "/nodes/{node}/qemu/{vmid}/agent/network-get-interfaces"),
    ("GET", "/nodes/{node}/qemu/{vmid}/agent/get-osinfo"),
    ("GET", "/nodes/{node}/qemu/{vmid}/agent/get-host-name"),
)


@dataclass(frozen=True)
class EndpointInfo:
    """What the schema of one release declares for one served endpoint."""

    method: str
    template: str
    permissions: dict[str, Any]
    protected: bool
    proxyto: str | None
    allowtoken: bool
    parameters: dict[str, dict[str, Any]]
    additional_properties: bool


class ApiTable:
    """Endpoint existence and declarations for one schema snapshot."""

    def __init__(self, raw: dict[str, Any], snapshot: str) -> None:
        versions: list[str] = raw["versions"]
        if snapshot not in versions:
            raise ValueError(f"no API schema snapshot {snapshot!r}")
        bit = 1 << versions.index(snapshot)
        self.snapshot = snapshot
        #: method -> set of template segment tuples existing in this release, and a trie over them
        self._templates: dict[str, set[tuple[str, ...]]] = {}
        self._tries: dict[str, _Trie] = {}
        for key, mask in raw["exists"].items():
            if mask & bit:
                method, template = key.split(" ", 1)
                segs = _segments(template)
                self._templates.setdefault(method, set()).add(segs)
                self._tries.setdefault(method, _Trie()).insert(segs)
        self.served: dict[tuple[str, str], EndpointInfo] = {}
        for key, groups in raw["served"].items():
            method, template = key.split(" ", 1)
            for group_mask, entry in groups:
                if group_mask & bit:
                    params = entry["parameters"]
                    self.served[(method, template)] = EndpointInfo(
                        method=method,
                        template=template,
                        permissions=entry["permissions"],
                        protected=bool(entry["protected"]),
                        proxyto=entry["proxyto"],
                        allowtoken=bool(entry["allowtoken"]),
                        parameters=params["properties"],
                        additional_properties=bool(params["additionalProperties"]),
                    )

    def match(self, method: str, path: str) -> tuple[str, dict[str, str]] | None:
        """The template of this release matching a concrete path (literal segments win), with path params."""
        trie = self._tries.get(method)
        if trie is None:
            return None
        parts = [p for p in path.split("/") if p]
        template = trie.lookup(parts, 0)
        if template is None:
            return None
        params = {t[1:-1]: p for t, p in zip(template, parts, strict=True) if t.startswith("{")}
        return "/" + "/".join(template), params

    def exists(self, method: str, template: str) -> bool:
        return _segments(template) in self._templates.get(method, ())


class _Trie:
    __slots__ = ("end", "literal", "params")

    def __init__(self) -> None:
        self.literal: dict[str, _Trie] = {}
        self.params: dict[str, _Trie] = {}
        self.end: tuple[str, ...] | None = None

    def insert(self, segs: tuple[str, ...]) -> None:
        node = self
        for seg in segs:
            table = node.params if seg.startswith("{") else node.literal
            node = table.setdefault(seg, _Trie())
        node.end = segs

    def lookup(self, parts: list[str], index: int) -> tuple[str, ...] | None:
        if index == len(parts):
            return self.end
        child = self.literal.get(parts[index])
        if child is not None:
            found = child.lookup(parts, index + 1)
            if found is not None:
                return found
        for child in self.params.values():
            found = child.lookup(parts, index + 1)
            if found is not None:
                return found
        return None


def _segments(template: str) -> tuple[str, ...]:
    return tuple(p for p in template.split("/") if p)


@cache
def _raw() -> dict[str, Any]:
    text = resources.files("pvesim").joinpath("data/apidata.json").read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


@cache
def api_table(snapshot: str) -> ApiTable:
    """The (cached) table of one schema snapshot, e.g. ``api_table("8.4")``."""
    return ApiTable(_raw(), snapshot)


def snapshots() -> list[str]:
    versions: list[str] = _raw()["versions"]
    return list(versions)
