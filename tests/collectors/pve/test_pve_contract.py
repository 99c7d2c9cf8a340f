"""The pve collector through the reusable contract kit, once per PVE version profile."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pvesim import SimServer
from tests.collectors.pve.pve_sim import ALL_PROFILES, auth_for, sim
from tests.kit.suite import CollectorContract, ContractCase


@pytest.fixture(scope="module", params=ALL_PROFILES)
def contract_server(request: pytest.FixtureRequest) -> Iterator[SimServer]:
    with sim(request.param) as server:
        yield server


class TestPveContract(CollectorContract):
    @pytest.fixture
    def contract_case(self, contract_server: SimServer) -> ContractCase:
        auth = auth_for(contract_server.profile.name)
        credential = contract_server.credentials("reader", auth=auth)  # type: ignore[arg-type]
        if auth == "api_token":
            bad = {**credential, "api_token_secret": "11111111-2222-3333-4444-555555555555"}
        else:
            bad = {**credential, "password": "not-the-password"}
        return ContractCase(
            source_type="pve",
            config={
                "endpoint": contract_server.url,
                "tls_ca_bundle": contract_server.ca_path,
                "auth_type": auth,
            },
            credential=dict(credential),
            bad_credential=bad,
            invalid_configs=[
                {"endpoint": "http://insecure.example:8006"},
                {"endpoint": contract_server.url, "max_parallel_nodes": 0},
                {"endpoint": contract_server.url, "tls_fingerprint": "not-hex"},
                {"endpoint": contract_server.url, "scope": "everything"},
            ],
            expected_min_counts={"cluster": 1, "host": 3, "vm": 10},
        )
