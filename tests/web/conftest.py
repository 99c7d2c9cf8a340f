"""The pages use the same service fixtures as the API tests."""

from tests.api.conftest import lab, service

__all__ = ["lab", "service"]
