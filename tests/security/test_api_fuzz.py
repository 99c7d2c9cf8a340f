"""The HTTP API fuzzed from its own OpenAPI document (schemathesis), as an admin, against the real ASGI app
on a ledger with data: no 500s, no response outside the documented status codes, content types and
schemas. Bounded: ``API_FUZZ_EXAMPLES`` examples per operation (default 25)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.api.conftest import Service
from tests.conftest import FakeSource
from tests.core.fake_collector import snapshot

EXAMPLES = int(os.environ.get("API_FUZZ_EXAMPLES", "25"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture
def api_schema(service: Service, lab: FakeSource, tmp_path: Path) -> Any:
    lab.collect(snapshot(range(1, 6)))
    lab.collect(snapshot(range(1, 6)))
    service.ledger.run_now("lab", "healthcheck")
    return schemathesis.openapi.from_asgi(
        "/api/v1/openapi.json", service.app, headers={"Authorization": f"Bearer {service.admin_token}"}
    )


def test_api_conforms_to_its_openapi_document(api_schema: Any, service: Service) -> None:
    headers = {"Authorization": f"Bearer {service.admin_token}"}
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 20
    tried: dict[str, int] = {}
    failures: list[str] = []
    for operation in operations:
        label = f"{operation.method.upper()} {operation.path}"
        tried[label] = 0

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def fuzz(case: Any) -> None:
            tried[f"{case.operation.method.upper()} {case.operation.path}"] += 1
            case.call_and_validate(headers=headers, checks=CHECKS)

        try:
            fuzz()
        except (Exception, BaseExceptionGroup) as exc:
            failures.append(f"{label}: {_summary(exc)}")
    assert failures == [], "\n".join(failures)
    print(f"schemathesis: {sum(tried.values())} requests over {len(tried)} operations")


def _summary(exc: BaseException) -> str:
    inner = getattr(exc, "exceptions", None) or [exc]
    return "; ".join(" ".join(str(e).split())[:300] for e in inner)
