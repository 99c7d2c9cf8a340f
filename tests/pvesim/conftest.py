"""Fixtures for the pvesim tests: one server per profile per module, started lazily."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from pvesim import SimServer
from tests.pvesim.helpers import small_topology


@pytest.fixture(scope="module")
def profile_server() -> Iterator[Callable[[str], SimServer]]:
    """``profile_server("8.4")``: a server on :func:`small_topology` for that profile, shared by the module.

    Delays are scaled down (``time_scale=0.01``: 3 s become 30 ms); tests must not mutate its topology.
    """
    started: dict[str, SimServer] = {}

    def get(profile: str) -> SimServer:
        if profile not in started:
            started[profile] = SimServer(profile=profile, topology=small_topology(), time_scale=0.01).start()
        return started[profile]

    yield get
    for server in started.values():
        server.stop()
