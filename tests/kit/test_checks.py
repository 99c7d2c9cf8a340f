"""The kit's checks catch the defects they exist for (a kit that cannot fail proves nothing)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.kit.checks import (
    assert_clean_failure,
    assert_complete_inventory,
    assert_no_secret,
    assert_valid_response,
)

GOOD: dict[str, Any] = {
    "schema_version": "collector-response-v1",
    "mode": "collect",
    "source_type": "pve",
    "collector_version": "1",
    "detect": {"target_version": "8.4", "capabilities": {}, "driver": "d"},
    "assets": [
        {"external_kind": "host", "external_id": "n1",
         "normalized": {"kind": "host", "identity": {"hostname": "n1"}}, "raw_payload": {"node": "n1"}},
        {"external_kind": "vm", "external_id": "qemu/1",
         "normalized": {"kind": "vm", "runtime": {"power_state": "running"}}, "raw_payload": {"vmid": 1}},
    ],
    "relations": [
        {"type": "runs_on", "from": {"external_kind": "vm", "external_id": "qemu/1"},
         "to": {"external_kind": "host", "external_id": "n1"}},
    ],
    "stats": {"inventory_complete": True, "counts": {"host": 1, "vm": 1}},
    "errors": [],
    "warnings": [],
}  # fmt: skip


def test_good_response_passes() -> None:
    assert_valid_response(GOOD, "collect", "pve")
    assert_complete_inventory(GOOD)


def _broken(change: str) -> dict[str, Any]:
    doc = copy.deepcopy(GOOD)
    if change == "duplicate":
        doc["assets"].append(copy.deepcopy(doc["assets"][0]))
    elif change == "dangling":
        doc["relations"][0]["to"]["external_id"] = "n2"
    elif change == "no-relations":
        doc["relations"] = []
    elif change == "incomplete":
        doc["stats"]["inventory_complete"] = False
    elif change == "empty-raw":
        doc["assets"][1]["raw_payload"] = {}
    elif change == "wrong-counts":
        doc["stats"]["counts"]["vm"] = 2
    elif change == "kind-mismatch":
        doc["assets"][1]["external_kind"] = "host"
        doc["assets"][1]["normalized"] = {"kind": "vm", "runtime": {"power_state": "running"}}
    return doc


@pytest.mark.parametrize(
    "change",
    ["duplicate", "dangling", "no-relations", "incomplete", "empty-raw", "wrong-counts", "kind-mismatch"],
)
def test_inventory_defects_are_caught(change: str) -> None:
    with pytest.raises(AssertionError):
        assert_complete_inventory(_broken(change))


def test_unregistered_codes_and_schema_violations_are_caught() -> None:
    doc = copy.deepcopy(GOOD)
    doc["warnings"] = [{"code": "PVE_MADE_UP", "message": "x"}]
    with pytest.raises(AssertionError, match="not registered"):
        assert_valid_response(doc, "collect", "pve")
    doc = copy.deepcopy(GOOD)
    doc["assets"][0]["normalized"]["identity"]["colour"] = "red"
    with pytest.raises(AssertionError, match="collector-response-v1"):
        assert_valid_response(doc, "collect", "pve")
    with pytest.raises(AssertionError, match="asked for detect"):
        assert_valid_response(GOOD, "detect", "pve")


def test_failure_checks() -> None:
    failed = {**copy.deepcopy(GOOD), "assets": [], "relations": []}
    failed["stats"]["inventory_complete"] = False
    with pytest.raises(AssertionError, match="succeeded"):
        assert_clean_failure(failed)
    failed["errors"] = [
        {"code": "PVE_AUTH_FAILED", "category": "auth", "retryable": False, "message": "401",
         "suggested_action": "check the token"},
    ]  # fmt: skip
    assert_clean_failure(failed, categories={"auth"})
    with pytest.raises(AssertionError, match="category"):
        assert_clean_failure(failed, categories={"network"})


def test_secret_search_finds_secrets_anywhere() -> None:
    doc = copy.deepcopy(GOOD)
    doc["assets"][1]["raw_payload"]["note"] = "token=s3cr3t-value"
    with pytest.raises(AssertionError):
        assert_no_secret(doc, ["s3cr3t-value"])
    assert_no_secret(GOOD, ["s3cr3t-value"])
