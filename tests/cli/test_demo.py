"""``asset-ledger demo``: the newcomer's first command collects a simulated cluster into a fresh ledger."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def _demo(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSET_LEDGER_")}
    env["ASSET_LEDGER_DATA_DIR"] = str(data_dir)
    return subprocess.run(
        [sys.executable, "-m", "asset_ledger.cli", "demo", "--no-serve", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_demo_collects_then_an_unchanged_rerun_adds_nothing(tmp_path: Path) -> None:
    first = _demo(tmp_path, "--nodes", "2", "--qemu", "10", "--lxc", "4", "--offline-nodes", "1")
    assert first.returncode == 0, first.stderr
    assert "healthcheck of demo-pve succeeded" in first.stdout
    assert "detect: version 8.4" in first.stdout
    assert "collect of demo-pve succeeded" in first.stdout
    assert "1 cluster, 2 hosts, 14 guests (10 QEMU VMs, 4 LXC containers)" in first.stdout
    assert "warning PVE_NODE_OFFLINE" in first.stdout
    assert (tmp_path / "ledger.db").exists()
    assert (tmp_path / "demo-admin-password").stat().st_mode & 0o077 == 0

    second = _demo(tmp_path, "--nodes", "2", "--qemu", "10", "--lxc", "4", "--offline-nodes", "1")
    assert second.returncode == 0, second.stderr
    assert "unchanged 17, went missing 0" in second.stdout
    assert "raw store: 0 new blob(s), 0 B" in second.stdout
    assert "Traceback" not in second.stderr


def test_demo_on_an_old_release_runs_the_ticket_path(tmp_path: Path) -> None:
    result = _demo(
        tmp_path, "--profile", "5.4", "--nodes", "1", "--qemu", "3", "--lxc", "2", "--offline-nodes", "0"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "detect: version 5.4" in result.stdout
    assert "0 cluster, 1 hosts, 5 guests" in result.stdout
