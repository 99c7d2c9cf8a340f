"""The service fixtures of the API tests (the real app on a real ledger, an admin and a viewer)."""

from tests.api.conftest import lab, restore_logging, service

__all__ = ["lab", "restore_logging", "service"]
