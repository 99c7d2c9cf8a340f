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


def test_a_200_mb_inventory_answer_is_refused_within_bounded_memory() -> None:
    measured = measure("body", 200 * 1000 * 1000)
    assert [e["code"] for e in measured["errors"]] == ["PVE_PARSE_ERROR"]
    assert "MiB" in measured["errors"][0]["message"]
    assert measured["schema_problems"] == []
    assert measured["peak_rss_mib"] < 250, measured


def test_100000_agent_interfaces_are_handled_in_bounded_time_and_memory() -> None:
    measured = measure("interfaces", 100_000)
    assert measured["errors"] == []
    assert measured["schema_problems"] == []
    assert measured["vm_ips"] == 100_000
    assert measured["seconds"] < 30, measured
    assert measured["peak_rss_mib"] < 600, measured
