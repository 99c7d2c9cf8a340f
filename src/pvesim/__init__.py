"""pvesim — a version-faithful Proxmox VE API simulator (PVE 5.0 – 9.1) for tests, demos and benchmarks.

Stand-alone: it never imports the Asset Ledger. Start one with::

    from pvesim import SimServer, Topology
    with SimServer(profile="8.4", topology=Topology.generate(seed=1, nodes=3, qemu=10, lxc=5)) as server:
        server.url, server.ca_path, server.credentials("reader")

See docs/pvesim.md for profiles, topology files, principals, faults and observation.
"""

from pvesim.faults import Fault
from pvesim.profiles import PROFILES, Profile
from pvesim.server import RequestRecord, SimServer
from pvesim.topology import Acl, Guest, Nic, Node, Storage, Token, Topology, TopologyError, User

__all__ = [
    "PROFILES",
    "Acl",
    "Fault",
    "Guest",
    "Nic",
    "Node",
    "Profile",
    "RequestRecord",
    "SimServer",
    "Storage",
    "Token",
    "Topology",
    "TopologyError",
    "User",
]
