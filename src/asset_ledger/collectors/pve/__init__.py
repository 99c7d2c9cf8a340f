"""The Proxmox VE collector (PVE 5.0 - 9.x over the HTTPS REST API).

``client`` speaks PVE's protocol, ``normalize`` maps PVE JSON to normalized-v1, ``permissions`` proves
completeness from effective privileges, ``detect`` picks the driver, ``collector`` orchestrates. Nothing here
imports the core, storage or the simulator.
"""

from asset_ledger.collectors.pve.collector import COLLECTOR_VERSION, PveCollector

__all__ = ["COLLECTOR_VERSION", "PveCollector"]
