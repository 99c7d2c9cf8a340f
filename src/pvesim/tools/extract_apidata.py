"""Build ``pvesim/data/apidata.json`` from the official PVE API schema snapshots.

Input: a directory of ``<version>.json.gz`` files (the ``api-viewer/apidata.js`` tree of each release,
converted to JSON; see ``../shared/pve-apidata/README.md``). Output: a compact table that pvesim reads at run
time, so the package never needs the snapshots themselves:

* ``versions``: the snapshot names, in release order;
* ``exists``: ``"METHOD /path/{template}"`` -> bit mask over ``versions`` (which releases have that endpoint;
  every endpoint of every release, so absent paths can be answered with 501 as PVE does);
* ``served``: for the endpoints pvesim implements, per release the fields that shape behaviour
  (``permissions`` check, ``protected``, ``proxyto``, ``allowtoken``, simplified ``parameters``).

Usage: ``python -m pvesim.tools.extract_apidata /work/shared/pve-apidata src/pvesim/data/apidata.json``.
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path
from typing import Any

from pvesim.apidata import SERVED

_PARAM_KEYS = ("type", "enum", "optional", "minimum", "maximum", "pattern")


def _version_key(name: str) -> tuple[int, int, int]:
    base, _, suffix = name.partition("-")
    major, minor = (int(x) for x in base.split("."))
    return (major, minor, 1 if suffix else 0)


def flatten(tree: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """Map (method, path) -> info for every endpoint of one schema tree."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    stack = list(tree)
    while stack:
        node = stack.pop()
        for method, info in (node.get("info") or {}).items():
            out[(method, node["path"])] = info
        stack.extend(node.get("children") or [])
    return out


def simplify(info: dict[str, Any]) -> dict[str, Any]:
    """The fields of one endpoint that pvesim's behaviour depends on."""
    params = info.get("parameters") or {}
    props: dict[str, Any] = {}
    for name, spec in sorted((params.get("properties") or {}).items()):
        props[name] = {k: spec[k] for k in _PARAM_KEYS if k in spec}
    perms = info.get("permissions") or {}
    return {
        "permissions": {k: v for k, v in perms.items() if k in ("check", "user")},
        "protected": int(info.get("protected") or 0),
        "proxyto": info.get("proxyto"),
        "allowtoken": int(info.get("allowtoken") or 0),
        "parameters": {
            "additionalProperties": int(params.get("additionalProperties", 1)),
            "properties": props,
        },
    }


def build(source: Path) -> dict[str, Any]:
    files = sorted(source.glob("*.json.gz"), key=lambda p: _version_key(p.name.removesuffix(".json.gz")))
    versions = [p.name.removesuffix(".json.gz") for p in files]
    exists: dict[str, int] = {}
    served: dict[str, list[list[Any]]] = {f"{m} {p}": [] for m, p in SERVED}
    for index, path in enumerate(files):
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            flat = flatten(json.load(fh))
        for method, template in flat:
            key = f"{method} {template}"
            exists[key] = exists.get(key, 0) | (1 << index)
        for method, template in SERVED:
            info = flat.get((method, template))
            if info is None:
                continue
            entry = simplify(info)
            groups = served[f"{method} {template}"]
            if groups and groups[-1][1] == entry:
                groups[-1][0] |= 1 << index
            else:
                groups.append([1 << index, entry])
    return {
        "source": "pve-docs api-viewer/apidata.js snapshots (see ../shared/pve-apidata/README.md)",
        "versions": versions,
        "exists": dict(sorted(exists.items())),
        "served": served,
    }


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        sys.stderr.write("usage: extract_apidata.py SOURCE_DIR OUTPUT_JSON\n")
        return 2
    data = build(Path(args[0]))
    Path(args[1]).write_text(json.dumps(data, sort_keys=True, separators=(",", ":")) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
