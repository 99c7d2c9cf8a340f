"""The soak/load script (benchmarks/soak_load.py) at smoke size on PostgreSQL: 3 simulated PVE sources of
different releases, 2 worker processes, the API process read meanwhile, 20 s. The long run's figures are
in docs/reliability.md."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import sqlalchemy as sa

from tests.cli.conftest import REPO
from tests.conftest import PG_URL

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def test_soak_smoke(pg_admin: sa.Engine) -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "soak_load.py"), "--smoke", "--pg-url", PG_URL],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )
    assert result.stdout, result.stderr[-3000:]
    figures = json.loads(result.stdout)
    assert figures["problems"] == [], figures
    assert result.returncode == 0
    assert figures["sources_collected"] == 3
    assert figures["runs_by_status"] == {"succeeded": figures["runs"]}
    assert figures["runs"] >= 6  # the first collect of each source, then at least one more each
    assert figures["api_reads"] > 50
    assert set(figures["api_statuses"]) == {"200"}
