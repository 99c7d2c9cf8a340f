"""Checks on collector-response-v1 documents. Each raises ``AssertionError`` with a message saying what a
user of the ledger would see go wrong; they are plain functions so the kit itself can be tested."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from asset_ledger.contract import REGISTRY, validate


def assert_valid_response(response: Mapping[str, Any], mode: str, source_type: str) -> None:
    """The response matches collector-response-v1, answers the mode asked, and uses registered codes."""
    issues = validate("collector-response-v1", response)
    assert not issues, "response does not match collector-response-v1: " + "; ".join(map(str, issues))
    assert response["mode"] == mode, f"asked for {mode}, got a {response['mode']} response"
    assert response["source_type"] == source_type
    for error in response["errors"]:
        entry = REGISTRY.get(error["code"])
        assert entry is not None, f"error code {error['code']} is not registered"
        assert entry.severity == "error", f"{error['code']} is a warning code used as an error"
        assert error["category"] == entry.category, f"{error['code']} has category {error['category']}"
        assert error["message"].strip(), "an error without a message tells the user nothing"
    for warning in response["warnings"]:
        entry = REGISTRY.get(warning["code"])
        assert entry is not None, f"warning code {warning['code']} is not registered"
        assert entry.severity == "warning", f"{warning['code']} is an error code used as a warning"


def assert_succeeded(response: Mapping[str, Any]) -> None:
    assert response["errors"] == [], "run failed: " + "; ".join(
        f"{e['code']}: {e['message']}" for e in response["errors"]
    )


def assert_complete_inventory(response: Mapping[str, Any]) -> None:
    """A successful collect is a complete snapshot: unique ids, resolvable relations, raw payloads kept."""
    assert_succeeded(response)
    assert response["stats"]["inventory_complete"] is True, "a successful collect must be complete"
    keys = [(a["external_kind"], a["external_id"]) for a in response["assets"]]
    duplicates = [key for key, n in Counter(keys).items() if n > 1]
    assert not duplicates, f"assets listed twice: {duplicates[:5]}"
    for asset in response["assets"]:
        assert asset["normalized"]["kind"] == asset["external_kind"], asset["external_id"]
        assert asset["raw_payload"] not in (None, {}, []), f"{asset['external_id']} has no raw payload"
    known = set(keys)
    for relation in response["relations"]:
        for end in ("from", "to"):
            ref = (relation[end]["external_kind"], relation[end]["external_id"])
            assert ref in known, f"{relation['type']} relation points at {ref}, which is not in the snapshot"
    vms = [k for k in keys if k[0] == "vm"]
    if vms:
        assert response["relations"], "VMs but no relations: the core would refuse this snapshot"
    counts = response["stats"].get("counts")
    if counts is not None:
        actual = Counter(k[0] for k in keys)
        for kind, n in counts.items():
            if kind in ("vm", "host", "cluster"):
                assert actual.get(kind, 0) == n, f"stats.counts.{kind}={n} but {actual.get(kind, 0)} assets"


def assert_clean_failure(response: Mapping[str, Any], *, categories: Iterable[str] | None = None) -> None:
    """A failed run: at least one registered error, nothing that could be mistaken for an inventory."""
    assert response["errors"], "expected the run to fail, it succeeded"
    assert not response.get("assets"), "a failed run must not hand over assets"
    assert response["stats"]["inventory_complete"] is False, "a failed run cannot claim a complete inventory"
    if categories is not None:
        wanted = set(categories)
        got = {e["category"] for e in response["errors"]}
        assert got & wanted, f"expected an error of category {sorted(wanted)}, got {sorted(got)}"
    for error in response["errors"]:
        assert error.get("suggested_action"), f"{error['code']} does not say what to do"


def assert_no_secret(response: Mapping[str, Any], secrets: Iterable[str]) -> None:
    """No secret value appears anywhere in the response, raw payloads and messages included."""
    text = json.dumps(response, ensure_ascii=False)
    for secret in secrets:
        if secret:
            assert secret not in text, "a secret appears in the collector response"
