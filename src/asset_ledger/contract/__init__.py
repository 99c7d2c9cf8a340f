"""The contract between the core and every collector: JSON schemas and the error-code registry.

The JSON files next to this module are the single source of truth; this package only loads them and offers
thin typed views. It must never import the core, storage or a collector.
"""

from asset_ledger.contract.errors import (
    CATEGORIES,
    REGISTRY,
    ErrorCode,
    LedgerError,
    error_entry,
    warning_entry,
)
from asset_ledger.contract.schemas import (
    SCHEMA_NAMES,
    SchemaIssue,
    load_schema,
    validate,
    volatile_paths,
)

__all__ = [
    "CATEGORIES",
    "REGISTRY",
    "SCHEMA_NAMES",
    "ErrorCode",
    "LedgerError",
    "SchemaIssue",
    "error_entry",
    "load_schema",
    "validate",
    "volatile_paths",
    "warning_entry",
]
