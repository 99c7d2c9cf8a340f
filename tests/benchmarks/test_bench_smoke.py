"""The benchmarks at smoke size, so they cannot rot: the entry script runs, prints the table and writes the
JSON and Markdown with a row for every figure. Timings are not asserted (they depend on the machine)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIGURES = {"1", "2", "3", "4", "5", "6", "7"}


@pytest.mark.slow
def test_bench_smoke_produces_every_figure(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--smoke", "--out", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert "| fig | figure" in proc.stdout
    assert "BROKEN" not in proc.stdout

    document = json.loads((tmp_path / "latest.json").read_text("utf-8"))
    assert not document["meta"]["errors"]
    rows = document["rows"]
    assert {row["figure"] for row in rows} == FIGURES
    for row in rows:
        assert all(row[key] for key in ("name", "target", "measured")), row
    # Figure 1 carries its lower bound; figure 2 found no request made twice.
    scaling = document["details"]["collect"]["scaling"]["smoke"]["points"]
    assert all(point["bound_s"] > 0 and point["wall_s"] > 0 for point in scaling)
    requests = next(row for row in rows if row["figure"] == "2")
    assert requests["data"]["duplicate_count"] == 0
    assert requests["data"]["measured"] == requests["data"]["minimum"]

    markdown = (tmp_path / "latest.md").read_text("utf-8")
    assert "| fig | figure" in markdown
