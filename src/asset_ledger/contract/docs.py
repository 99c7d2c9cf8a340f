"""Renders the generated parts of the design docs from the schema files and the error-code registry.

The docs under ``docs/design/`` mix prose with generated blocks fenced by ``<!-- generated:NAME -->`` and
``<!-- /generated:NAME -->``. ``python -m asset_ledger.contract.docs --write`` refreshes them; the test suite
fails when a block drifts from the files it is made from.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from asset_ledger.contract.errors import REGISTRY
from asset_ledger.contract.schemas import load_schema

DOCS = {
    "asset-ledger-error-codes.md": ("error-codes",),
    "asset-ledger-json-schema.md": ("normalized-v1", "collector-request-v1", "collector-response-v1"),
    "asset-ledger-collector-reference.md": ("error-summary",),
}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_error_codes() -> str:
    lines = [
        "| code | category | severity | retryable | emitted by | meaning | what to do |",
        "|---|---|---|---|---|---|---|",
    ]
    for entry in sorted(REGISTRY.values(), key=lambda e: (e.emitted_by != "pve", e.code)):
        lines.append(
            f"| `{entry.code}` | {entry.category} | {entry.severity} | "
            f"{'yes' if entry.retryable else 'no'} | {entry.emitted_by} | {_cell(entry.meaning)} | "
            f"{_cell(entry.action)} |"
        )
    return "\n".join(lines)


def render_error_summary() -> str:
    errors = sorted(e.code for e in REGISTRY.values() if e.severity == "error")
    warnings = sorted(e.code for e in REGISTRY.values() if e.severity == "warning")
    return (
        f"Error codes ({len(errors)}): "
        + ", ".join(f"`{c}`" for c in errors)
        + f".\n\nWarning codes ({len(warnings)}): "
        + ", ".join(f"`{c}`" for c in warnings)
        + "."
    )


def _type_of(node: dict[str, Any], defs: dict[str, Any]) -> str:
    if "$ref" in node:
        ref = node["$ref"]
        if ref.startswith("#/$defs/"):
            target = defs[ref.removeprefix("#/$defs/")]
            if target.get("type") == "object":
                return "object"
            return _type_of(target, defs)
        return f"`{ref.removesuffix('.json')}`"
    if "enum" in node:
        return "one of " + ", ".join(f"`{v}`" for v in node["enum"])
    if "const" in node:
        return f"`{node['const']}`"
    kind = node.get("type", "any")
    if kind == "array":
        return "array of " + _type_of(node.get("items", {}), defs)
    if isinstance(kind, list):
        return " or ".join(kind)
    if kind == "string" and "anyOf" in node:
        return "string (" + " or ".join(a.get("format", "?") for a in node["anyOf"]) + ")"
    if kind == "string" and "pattern" in node:
        return f"string matching `{node['pattern']}`"
    return str(kind)


def _walk(
    node: dict[str, Any], defs: dict[str, Any], prefix: str, required: set[str]
) -> Iterator[tuple[str, str, bool, str]]:
    for name, child in node.get("properties", {}).items():
        path = f"{prefix}{name}"
        resolved = child
        if "$ref" in child and child["$ref"].startswith("#/$defs/"):
            resolved = defs[child["$ref"].removeprefix("#/$defs/")]
        description = child.get("description") or resolved.get("description", "")
        yield path, _type_of(child, defs), name in required, description
        if resolved.get("type") == "object" and "properties" in resolved:
            yield from _walk(resolved, defs, path + ".", set(resolved.get("required", [])))
        items = resolved.get("items", {})
        if resolved.get("type") == "array" and "$ref" in items and items["$ref"].startswith("#/$defs/"):
            target = defs[items["$ref"].removeprefix("#/$defs/")]
            if "properties" in target:
                yield from _walk(target, defs, path + "[].", set(target.get("required", [])))


def render_schema(name: str) -> str:
    schema = load_schema(name)
    defs = schema.get("$defs", {})
    lines = [
        f"Schema `{name}` (`src/asset_ledger/contract/schemas/{name}.json`): {schema.get('description', '')}",
        "",
        "| field | type | required | description |",
        "|---|---|---|---|",
    ]
    for path, kind, is_required, description in _walk(schema, defs, "", set(schema.get("required", []))):
        lines.append(f"| `{path}` | {_cell(kind)} | {'yes' if is_required else ''} | {_cell(description)} |")
    rules = []
    for clause in schema.get("allOf", []):
        cond = clause.get("if", {}).get("properties", {})
        then = clause.get("then", {})
        cond_text = " and ".join(
            f"{k} = `{v['const']}`" if "const" in v else f"{k} is empty"
            for k, v in cond.items()
            if "const" in v or v.get("maxItems") == 0
        )
        req = list(then.get("required", []))
        for prop, sub in then.get("properties", {}).items():
            if sub == {"not": {}}:
                rules.append(f"- when {cond_text}: `{prop}` is not allowed")
            elif isinstance(sub, dict):
                req += [f"{prop}.{r}" for r in sub.get("required", [])]
        if req:
            rules.append(f"- when {cond_text}: required " + ", ".join(f"`{r}`" for r in req))
    if rules:
        lines += ["", "Rules:", "", *sorted(set(rules))]
    return "\n".join(lines)


RENDERERS: dict[str, Callable[[], str]] = {
    "error-codes": render_error_codes,
    "error-summary": render_error_summary,
    "normalized-v1": lambda: render_schema("normalized-v1"),
    "collector-request-v1": lambda: render_schema("collector-request-v1"),
    "collector-response-v1": lambda: render_schema("collector-response-v1"),
}


def _block(name: str) -> re.Pattern[str]:
    return re.compile(rf"(<!-- generated:{name} -->\n)(.*?)(<!-- /generated:{name} -->)", re.DOTALL)


def refresh(text: str, names: tuple[str, ...]) -> str:
    """``text`` with every generated block in ``names`` rendered anew; ``ValueError`` if a block is absent."""
    for name in names:
        pattern = _block(name)
        rendered = RENDERERS[name]() + "\n"
        match = pattern.search(text)
        if match is None:
            raise ValueError(f"generated block {name!r} is missing")
        text = text[: match.start(2)] + rendered + text[match.end(2) :]
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--docs", type=Path, default=Path("docs/design"))
    parser.add_argument("--write", action="store_true", help="rewrite the generated blocks in place")
    args = parser.parse_args(argv)
    stale = []
    for filename, names in DOCS.items():
        path = args.docs / filename
        text = path.read_text("utf-8")
        fresh = refresh(text, names)
        if fresh != text:
            stale.append(filename)
            if args.write:
                path.write_text(fresh, "utf-8")
    if stale and not args.write:
        print("stale: " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
