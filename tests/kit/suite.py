"""The reusable contract suite. A collector's test module subclasses ``CollectorContract`` and provides one
fixture, ``contract_case``, returning a ``ContractCase``: a source that works, a credential that does not, and
configs that must be refused. Every check then runs against that collector:

    class TestPveContract(CollectorContract):
        @pytest.fixture
        def contract_case(self, pvesim_server): ...
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest

from asset_ledger.collectors import Collector, get_collector
from asset_ledger.contract import REGISTRY, LedgerError
from tests.kit.checks import (
    assert_clean_failure,
    assert_complete_inventory,
    assert_no_secret,
    assert_succeeded,
    assert_valid_response,
)

MODES = ("healthcheck", "detect", "collect")


@dataclass
class ContractCase:
    source_type: str
    config: dict[str, Any]
    credential: dict[str, Any]
    bad_credential: dict[str, Any]
    invalid_configs: list[dict[str, Any]] = field(default_factory=list)
    #: collect must find at least this many assets of each kind
    expected_min_counts: dict[str, int] = field(default_factory=dict)


def request(case: ContractCase, mode: str, credential: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "schema_version": "collector-request-v1",
        "mode": mode,
        "run_id": f"contract-{mode}",
        "source": {
            "id": "contract-source",
            "type": case.source_type,
            "name": "contract",
            "config": case.config,
        },
        "credential": case.credential if credential is None else credential,
    }


def run(collector: Collector, req: dict[str, Any]) -> dict[str, Any]:
    return asyncio.run(collector.run(req))


class CollectorContract:
    """Checks every collector must pass. Subclasses provide the ``contract_case`` fixture."""

    @pytest.fixture
    def collector(self, contract_case: ContractCase) -> Collector:
        return get_collector(contract_case.source_type)

    def test_is_a_registered_collector(self, collector: Collector, contract_case: ContractCase) -> None:
        assert isinstance(collector, Collector)
        assert collector.source_type == contract_case.source_type
        assert collector.version

    @pytest.mark.parametrize("mode", MODES)
    def test_mode_answers_with_a_valid_successful_response(
        self, collector: Collector, contract_case: ContractCase, mode: str
    ) -> None:
        response = run(collector, request(contract_case, mode))
        assert_valid_response(response, mode, contract_case.source_type)
        assert_succeeded(response)
        assert_no_secret(
            response, [str(contract_case.credential.get(f, "")) for f in collector.secret_fields]
        )
        if mode == "detect":
            assert response["detect"]["target_version"], "detect must report a version"

    def test_collect_is_a_complete_snapshot(self, collector: Collector, contract_case: ContractCase) -> None:
        response = run(collector, request(contract_case, "collect"))
        assert_valid_response(response, "collect", contract_case.source_type)
        assert_complete_inventory(response)
        kinds = [a["external_kind"] for a in response["assets"]]
        for kind, minimum in contract_case.expected_min_counts.items():
            assert kinds.count(kind) >= minimum, f"expected at least {minimum} {kind} assets"

    def test_collect_is_stable_when_nothing_changed(
        self, collector: Collector, contract_case: ContractCase
    ) -> None:
        first = run(collector, request(contract_case, "collect"))
        second = run(collector, request(contract_case, "collect"))
        ids = [sorted((a["external_kind"], a["external_id"]) for a in r["assets"]) for r in (first, second)]
        assert ids[0] == ids[1], "two collects of an unchanged source disagree on which assets exist"

    @pytest.mark.parametrize("mode", MODES)
    def test_bad_credential_fails_cleanly(
        self, collector: Collector, contract_case: ContractCase, mode: str
    ) -> None:
        response = run(collector, request(contract_case, mode, contract_case.bad_credential))
        assert_valid_response(response, mode, contract_case.source_type)
        assert_clean_failure(response, categories={"auth"})
        assert_no_secret(
            response, [str(contract_case.bad_credential.get(f, "")) for f in collector.secret_fields]
        )

    def test_invalid_configs_are_refused_with_a_registered_code(
        self, collector: Collector, contract_case: ContractCase
    ) -> None:
        assert contract_case.invalid_configs, "a contract case must list configs the collector refuses"
        for config in contract_case.invalid_configs:
            with pytest.raises(LedgerError) as caught:
                collector.check_config(config)
            assert caught.value.code in REGISTRY
            assert caught.value.entry.category == "config", caught.value.code

    def test_invalid_config_in_a_request_fails_cleanly(
        self, collector: Collector, contract_case: ContractCase
    ) -> None:
        broken = ContractCase(**{**contract_case.__dict__, "config": contract_case.invalid_configs[0]})
        response = run(collector, request(broken, "healthcheck"))
        assert_valid_response(response, "healthcheck", contract_case.source_type)
        assert_clean_failure(response, categories={"config"})
