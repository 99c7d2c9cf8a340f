"""The core: the ledger's rules and the one service API every interface uses.

It validates collector responses, refuses incomplete or inconsistent inventories, keeps every raw payload,
and moves assets between present and missing only from complete snapshots applied in one transaction.
"""

from asset_ledger.core.ledger import UNSET, Ledger
from asset_ledger.core.settings import Settings
from asset_ledger.core.views import Asset, AssetDetail, Page, RawVersion, RelationEnd, Run, Source

__all__ = [
    "UNSET",
    "Asset",
    "AssetDetail",
    "Ledger",
    "Page",
    "RawVersion",
    "RelationEnd",
    "Run",
    "Settings",
    "Source",
]
