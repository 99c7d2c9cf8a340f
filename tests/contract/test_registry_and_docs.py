"""The error-code registry is well formed, and the design docs say exactly what the files say."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from asset_ledger.contract import REGISTRY, LedgerError, error_entry, validate, warning_entry
from asset_ledger.contract.docs import DOCS, refresh

ROOT = Path(__file__).resolve().parents[2]
DESIGN = ROOT / "docs" / "design"

PRD_CODES = {
    "PVE_CONFIG_INVALID": ("config", False),
    "PVE_AUTH_FAILED": ("auth", False),
    "PVE_PERMISSION_DENIED": ("permission", False),
    "PVE_NETWORK_ERROR": ("network", True),
    "PVE_TLS_ERROR": ("network", False),
    "PVE_RATE_LIMIT": ("rate_limit", True),
    "PVE_PARSE_ERROR": ("parse", False),
    "INVENTORY_RELATIONS_EMPTY": ("inventory", False),
}


@pytest.mark.parametrize(("code", "expected"), sorted(PRD_CODES.items()))
def test_prd_codes_have_the_prd_category_and_retryability(code: str, expected: tuple[str, bool]) -> None:
    entry = REGISTRY[code]
    assert (entry.category, entry.retryable) == expected
    assert entry.severity == "error"


def test_guest_agent_code_is_a_warning() -> None:
    assert REGISTRY["PVE_GUEST_AGENT_UNAVAILABLE"].severity == "warning"


def test_every_entry_says_what_it_means_and_what_to_do() -> None:
    for entry in REGISTRY.values():
        assert re.fullmatch(r"[A-Z][A-Z0-9_]*", entry.code)
        assert len(entry.meaning) > 20, entry.code
        assert len(entry.action) > 15, entry.code


def test_error_entries_validate_and_unknown_codes_are_refused() -> None:
    item = error_entry("PVE_RATE_LIMIT", "429 after 3 retries", context={"retry_after": 5})
    assert item["retryable"] is True
    assert item["suggested_action"] == REGISTRY["PVE_RATE_LIMIT"].action
    response = {
        "schema_version": "collector-response-v1",
        "mode": "healthcheck",
        "source_type": "pve",
        "collector_version": "1",
        "stats": {"inventory_complete": False},
        "errors": [item],
        "warnings": [warning_entry("PVE_NODE_OFFLINE", "node pve3 is offline")],
    }
    assert validate("collector-response-v1", response) == []
    with pytest.raises(KeyError, match="not in the registry"):
        error_entry("PVE_SOMETHING_NEW", "x")
    with pytest.raises(ValueError, match="warning code"):
        error_entry("PVE_GUEST_AGENT_UNAVAILABLE", "x")
    with pytest.raises(KeyError):
        LedgerError("NOT_A_CODE", "x")


def test_registry_file_lists_each_code_once() -> None:
    raw = json.loads((ROOT / "src/asset_ledger/contract/error-codes.json").read_text())
    codes = [c["code"] for c in raw["codes"]]
    assert len(codes) == len(set(codes)) == len(REGISTRY)


@pytest.mark.parametrize("filename", sorted(DOCS))
def test_design_docs_are_in_sync_with_schemas_and_registry(filename: str) -> None:
    text = (DESIGN / filename).read_text("utf-8")
    assert refresh(text, DOCS[filename]) == text, (
        f"docs/design/{filename} is stale: run `python -m asset_ledger.contract.docs --write`"
    )


def test_error_code_doc_lists_every_registered_code() -> None:
    text = (DESIGN / "asset-ledger-error-codes.md").read_text("utf-8")
    listed = set(re.findall(r"^\| `([A-Z0-9_]+)` \|", text, re.MULTILINE))
    assert listed == set(REGISTRY)


def test_every_code_used_in_the_source_is_registered() -> None:
    used: set[str] = set()
    pattern = re.compile(
        r"""(?:LedgerError|error_entry|warning_entry|lookup)\(\s*["']([A-Z][A-Z0-9_]+)["']""", re.MULTILINE
    )
    for path in (ROOT / "src").rglob("*.py"):
        used |= set(pattern.findall(path.read_text("utf-8")))
    assert used, "no code usages found: the pattern is broken"
    assert used <= set(REGISTRY), f"unregistered codes: {sorted(used - set(REGISTRY))}"


def test_collector_reference_examples_are_valid_responses() -> None:
    text = (DESIGN / "asset-ledger-collector-reference.md").read_text("utf-8")
    examples = re.findall(r"<!-- example:collector-response-v1 -->\n```json\n(.*?)\n```", text, re.DOTALL)
    assert len(examples) >= 2
    for example in examples:
        doc = json.loads(example)
        assert validate("collector-response-v1", doc) == []
        for error in doc["errors"]:
            assert REGISTRY[error["code"]].category == error["category"]
        for warning in doc["warnings"]:
            assert warning["code"] in REGISTRY
