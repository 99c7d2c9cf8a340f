"""Each ingest rule refuses a bad snapshot with its registered code and accepts a good one (both backends)."""

from __future__ import annotations

from typing import Any

import pytest

from asset_ledger.core import Ledger
from tests.conftest import FakeSource
from tests.core.fake_collector import runs_on, snapshot, vm


def asset_count(ledger: Ledger) -> int:
    return ledger.list_assets().total


def test_a_valid_complete_snapshot_lands(fake_source: FakeSource) -> None:
    ended = fake_source.collect(snapshot(range(1, 4)))
    assert ended.status == "succeeded", ended.errors
    assert ended.summary is not None
    assert ended.summary["added"] == 4
    kinds = sorted(a.external_kind for a in fake_source.ledger.list_assets().items)
    assert kinds == ["host", "vm", "vm", "vm"]


def test_schema_violation_names_the_json_pointer(fake_source: FakeSource) -> None:
    answer = snapshot(range(1, 4))
    answer["assets"][2]["normalized"]["runtime"]["power_state"] = "on"
    ended = fake_source.collect(answer)
    assert ended.status == "failed"
    [error] = ended.errors
    assert error["code"] == "SCHEMA_VALIDATION_FAILED"
    assert "/assets/2/normalized/runtime/power_state" in error["message"]
    assert asset_count(fake_source.ledger) == 0


def test_unknown_normalized_field_is_refused(fake_source: FakeSource) -> None:
    answer = snapshot([1])
    answer["assets"][1]["normalized"]["hypervisor_notes"] = "x"
    ended = fake_source.collect(answer)
    assert [e["code"] for e in ended.errors] == ["SCHEMA_VALIDATION_FAILED"]
    assert "/assets/1/normalized" in ended.errors[0]["context"]["pointers"]


def test_normalized_kind_must_match_external_kind(fake_source: FakeSource) -> None:
    answer = snapshot([1])
    answer["assets"][0]["external_kind"] = "cluster"
    answer["assets"][0]["normalized"] = {"kind": "host", "identity": {"hostname": "node1"}}
    ended = fake_source.collect(answer)
    assert ended.errors[0]["code"] == "SCHEMA_VALIDATION_FAILED"
    assert "/assets/0/normalized/kind" in ended.errors[0]["message"]


def test_incomplete_inventory_is_refused(fake_source: FakeSource) -> None:
    answer = snapshot(range(1, 3))
    answer["stats"]["inventory_complete"] = False
    ended = fake_source.collect(answer)
    assert [e["code"] for e in ended.errors] == ["INVENTORY_INCOMPLETE"]
    assert asset_count(fake_source.ledger) == 0


def test_vms_without_relations_are_refused(fake_source: FakeSource) -> None:
    ended = fake_source.collect(snapshot(range(1, 3), relations=[]))
    assert [e["code"] for e in ended.errors] == ["INVENTORY_RELATIONS_EMPTY"]
    assert asset_count(fake_source.ledger) == 0


def test_hosts_alone_need_no_relations(fake_source: FakeSource) -> None:
    ended = fake_source.collect(snapshot([], nodes=("node1", "node2")))
    assert ended.status == "succeeded", ended.errors
    assert asset_count(fake_source.ledger) == 2


def test_dangling_relation_is_refused(fake_source: FakeSource) -> None:
    answer = snapshot(range(1, 3))
    answer["relations"].append(runs_on(1, "node-that-is-not-there"))
    ended = fake_source.collect(answer)
    assert [e["code"] for e in ended.errors] == ["INVENTORY_RELATION_DANGLING"]
    assert "node-that-is-not-there" in ended.errors[0]["message"]
    assert asset_count(fake_source.ledger) == 0


def test_duplicate_asset_is_refused(fake_source: FakeSource) -> None:
    answer = snapshot(range(1, 3))
    answer["assets"].append(vm(2, power="stopped"))
    ended = fake_source.collect(answer)
    assert [e["code"] for e in ended.errors] == ["INVENTORY_DUPLICATE_ASSET"]
    assert "qemu/2" in ended.errors[0]["message"]
    assert asset_count(fake_source.ledger) == 0


def test_collector_errors_fail_the_run_and_are_kept(fake_source: FakeSource) -> None:
    error: dict[str, Any] = {
        "code": "PVE_PERMISSION_DENIED",
        "category": "permission",
        "retryable": False,
        "message": "VM.Audit missing on /vms",
        "suggested_action": "grant PVEAuditor",
    }
    answer = snapshot([1], errors=[error])
    ended = fake_source.collect(answer)
    assert ended.status == "failed"
    assert ended.errors == [error]


def test_wrong_mode_in_the_response_is_a_schema_failure(fake_source: FakeSource) -> None:
    answer = snapshot([1], source_type="other")
    ended = fake_source.collect(answer)
    assert ended.errors[0]["code"] == "SCHEMA_VALIDATION_FAILED"
    assert "/source_type" in ended.errors[0]["message"]


@pytest.mark.parametrize("garbage", [[], "text", {"schema_version": "collector-response-v1"}])
def test_a_response_that_is_not_a_document_fails_cleanly(fake_source: FakeSource, garbage: Any) -> None:
    fake_source.respond(garbage)
    ended = fake_source.run("collect")
    assert ended.status == "failed"
    assert ended.errors[0]["code"] == "SCHEMA_VALIDATION_FAILED"
