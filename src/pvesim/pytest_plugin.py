"""pytest fixtures that start pvesim servers on free loopback ports.

Registered as the ``pvesim`` pytest11 entry point. Usage::

    def test_x(pvesim_server):
        server = pvesim_server(profile="8.4", topology=Topology.generate(seed=1, nodes=3, qemu=10, lxc=5))
        httpx.get(server.url + "/api2/json/version", verify=server.ca_path, headers=...)

Every server a fixture started is stopped at the end of its scope.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from pvesim.server import SimServer

ServerFactory = Callable[..., SimServer]


def _factory() -> tuple[ServerFactory, list[SimServer]]:
    started: list[SimServer] = []

    def make(**kwargs: Any) -> SimServer:
        kwargs.setdefault("port", 0)
        server = SimServer(**kwargs)
        server.start()
        started.append(server)
        return server

    return make, started


@pytest.fixture
def pvesim_server() -> Iterator[ServerFactory]:
    """Factory fixture ``pvesim_server(profile=..., topology=..., **kwargs)``; stopped after the test."""
    make, started = _factory()
    yield make
    for server in reversed(started):
        server.stop()


@pytest.fixture(scope="module")
def pvesim_module_server() -> Iterator[ServerFactory]:
    """Like ``pvesim_server`` but the servers live for the whole test module."""
    make, started = _factory()
    yield make
    for server in reversed(started):
        server.stop()
