"""Loading and validating the contract's JSON Schema (2020-12) files.

Validation reports every problem with its JSON pointer, so a user (or a collector author) sees exactly which
record and field is wrong.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource

SCHEMA_NAMES = ("collector-request-v1", "collector-response-v1", "normalized-v1")


@dataclass(frozen=True, slots=True)
class SchemaIssue:
    """One validation problem: where (a JSON pointer into the document) and what."""

    pointer: str
    message: str

    def __str__(self) -> str:
        return f"{self.pointer or '/'}: {self.message}"


@cache
def load_schema(name: str) -> dict[str, Any]:
    """The parsed schema file ``schemas/<name>.json``."""
    if name not in SCHEMA_NAMES:
        raise KeyError(f"unknown schema {name!r}; known: {', '.join(SCHEMA_NAMES)}")
    text = resources.files("asset_ledger.contract").joinpath("schemas", f"{name}.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@cache
def volatile_paths(name: str) -> tuple[tuple[str, ...], ...]:
    """Property paths of ``name`` annotated ``"x-volatile": true``: values that move on every poll (uptime)
    without the inventory changing. Nested ``properties`` are followed, through local ``#/$defs/`` refs."""
    schema = load_schema(name)
    defs = schema.get("$defs") or {}
    found: list[tuple[str, ...]] = []

    def walk(node: Any, path: tuple[str, ...]) -> None:
        if not isinstance(node, dict):
            return
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            node = {**defs.get(ref.removeprefix("#/$defs/"), {}), **node}
        if node.get("x-volatile") is True and path:
            found.append(path)
        for key, child in (node.get("properties") or {}).items():
            walk(child, (*path, key))

    walk(schema, ())
    return tuple(found)


@cache
def _registry() -> Registry[Any]:
    resources_ = []
    for name in SCHEMA_NAMES:
        schema = load_schema(name)
        resources_.append((schema["$id"], Resource.from_contents(schema)))
    return Registry().with_resources(resources_)


@cache
def validator(name: str) -> Draft202012Validator:
    """A compiled validator for ``name`` (format checks on: ipv4/ipv6 addresses are checked)."""
    return Draft202012Validator(
        load_schema(name),
        registry=_registry(),
        format_checker=Draft202012Validator.FORMAT_CHECKER,
    )


def _pointer(path: Any) -> str:
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in path)


def validate(name: str, document: Any, *, limit: int = 20) -> list[SchemaIssue]:
    """All problems of ``document`` against schema ``name`` (at most ``limit``), sorted by pointer."""
    issues = []
    for err in validator(name).iter_errors(document):
        message = err.message
        if err.validator == "not" and err.validator_value == {}:
            message = "not allowed here"
        issues.append(SchemaIssue(_pointer(err.absolute_path), message))
        if len(issues) >= limit:
            break
    return sorted(issues, key=lambda i: i.pointer)
