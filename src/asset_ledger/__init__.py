"""Asset Ledger: a CMDB-style inventory that keeps every raw payload it was built from."""

__version__ = "0.1.0"
