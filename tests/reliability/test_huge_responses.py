"""Huge answers are refused or handled within bounded memory and time, measured in a child process
(``huge_child.py``): a 200 MB body on the inventory call, and a guest agent reporting 100,000 interfaces."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from tests.cli.conftest import REPO

pytestmark = pytest.mark.slow


def measure(case: str, size: int) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-m", "tests.reliability.huge_child", case, str(size)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    measured: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    print(case, size, measured)
    return measured


@pytest.mark.parametrize("size", [200 * 1000 * 1000, 2000 * 1000 * 1000], ids=["200MB", "2GB"])
def test_a_huge_inventory_answer_is_refused_within_bounded_memory(size: int) -> None:
    measured = measure("body", size)
    assert [e["code"] for e in measured["errors"]] == ["PVE_PARSE_ERROR"]
    assert "MiB" in measured["errors"][0]["message"]
    assert measured["schema_problems"] == []
    # The same bound for 200 MB and 2 GB: the interpreter and the collector (~100-150 MiB) plus at most
    # the 64 MiB cap held twice while the body is assembled.
    assert measured["peak_rss_mib"] < 400, measured
    assert measured["seconds"] < 30, measured


def test_100000_agent_interfaces_are_handled_in_bounded_time_and_memory() -> None:
    measured = measure("interfaces", 100_000)
    assert measured["errors"] == []
    assert measured["schema_problems"] == []
    assert measured["vm_ips"] == 100_000
    assert measured["seconds"] < 30, measured
    assert measured["peak_rss_mib"] < 600, measured
