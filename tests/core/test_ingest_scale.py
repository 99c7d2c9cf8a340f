"""Ingest at scale: 10,000 guests land, and re-land unchanged, in seconds on both backends (set-based
writes, COPY on PostgreSQL); the benchmark's target is 3 s, the bound here leaves room for a busy CI box."""

from __future__ import annotations

import time

import pytest

from tests.conftest import FakeSource
from tests.core.fake_collector import snapshot

pytestmark = pytest.mark.slow
GUESTS = 10_000
BOUND_S = 20.0


def test_ten_thousand_guests(fake_source: FakeSource) -> None:
    answer = snapshot(range(1, GUESTS + 1), nodes=tuple(f"node{i}" for i in range(1, 17)))
    fake_source.respond(answer)
    started = time.perf_counter()
    first = fake_source.run("collect")
    first_s = time.perf_counter() - started
    assert first.status == "succeeded", first.errors
    assert first.summary is not None
    assert first.summary["added"] == GUESTS + 16

    started = time.perf_counter()
    again = fake_source.run("collect")
    again_s = time.perf_counter() - started
    assert again.summary is not None
    assert again.summary["unchanged"] == GUESTS + 16
    assert again.summary["raw_bytes_added"] == 0
    print(f"10k guests: first ingest {first_s:.2f} s, unchanged re-collect {again_s:.2f} s")
    assert first_s < BOUND_S
    assert again_s < BOUND_S
