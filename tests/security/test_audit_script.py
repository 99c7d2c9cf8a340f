"""``make audit`` (scripts/audit.py): a vulnerability fails, an unreachable vulnerability service is a
plain SKIPPED (never a silent pass), ``--strict`` turns that into a failure."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.cli.conftest import REPO


def run_audit(tmp_path: Path, report: dict[str, Any], *args: str) -> subprocess.CompletedProcess[str]:
    fake = tmp_path / "pip-audit"
    fake.write_text(f"#!/bin/sh\ncat <<'EOF'\n{json.dumps(report)}\nEOF\n", encoding="utf-8")
    fake.chmod(0o755)
    return subprocess.run(
        [sys.executable, str(REPO / "scripts" / "audit.py"), *args],
        env={"AUDIT_PIP_AUDIT": str(fake), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


OFFLINE = {
    "dependencies": [
        {"name": "httpx", "version": "0.28.1", "skip_reason": "Dependency not found on PyPI"},
        {"name": "fastapi", "version": "0.1", "skip_reason": "Dependency not found on PyPI"},
    ]
}
CLEAN = {"dependencies": [{"name": "httpx", "version": "0.28.1", "vulns": []}]}
VULNERABLE = {
    "dependencies": [
        {"name": "httpx", "version": "0.28.1", "vulns": []},
        {
            "name": "jinja2",
            "version": "3.0.0",
            "vulns": [{"id": "GHSA-h5c8-rqwp-cp95", "fix_versions": ["3.1.3"]}],
        },
    ]
}


@pytest.mark.parametrize(
    ("report", "args", "code", "text"),
    [
        (CLEAN, (), 0, "audit: OK - 1 dependencies audited"),
        (VULNERABLE, (), 1, "jinja2 3.0.0: GHSA-h5c8-rqwp-cp95 (fixed in 3.1.3)"),
        (OFFLINE, (), 0, "audit: SKIPPED - the vulnerability service was not reachable"),
        (OFFLINE, ("--strict",), 1, "audit: SKIPPED"),
    ],
    ids=["clean", "vulnerable", "offline", "offline-strict"],
)
def test_audit_outcomes(
    tmp_path: Path, report: dict[str, Any], args: tuple[str, ...], code: int, text: str
) -> None:
    result = run_audit(tmp_path, report, *args)
    assert result.returncode == code, result.stdout + result.stderr
    assert text in result.stdout
