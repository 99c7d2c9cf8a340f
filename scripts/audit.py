"""Audit the installed dependency set for known vulnerabilities with pip-audit (``make audit``).

Exit 1 when pip-audit reports a vulnerability. pip-audit needs the PyPI vulnerability service; when it
cannot reach it (offline machines, a local package mirror) it marks every dependency "not found" and would
still print "No known vulnerabilities found". This script says so plainly and exits 0 with SKIPPED instead
of passing silently; with ``--strict`` (or ``AUDIT_STRICT=1``, for CI with network access) that is a
failure too.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    strict = "--strict" in argv or os.environ.get("AUDIT_STRICT") == "1"
    venv_bin = Path(sys.executable).parent
    tool = (
        os.environ.get("AUDIT_PIP_AUDIT")
        or shutil.which("pip-audit", path=str(venv_bin))
        or shutil.which("pip-audit")
    )
    if tool is None:
        print("audit: SKIPPED - pip-audit is not installed (pip install -e '.[dev]')")
        return 1 if strict else 0
    result = subprocess.run(  # noqa: S603  (the pip-audit of this environment)
        [tool, "--progress-spinner", "off", "--skip-editable", "-f", "json"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    try:
        report = json.loads(result.stdout)
    except ValueError:
        reason = result.stderr.strip()[-500:]
        print(f"audit: SKIPPED - pip-audit gave no report (exit {result.returncode}): {reason}")
        return 1 if strict else 0
    deps = report.get("dependencies", [])
    vulnerable = [d for d in deps if d.get("vulns")]
    unaudited = [d for d in deps if "skip_reason" in d]
    for dep in vulnerable:
        for vuln in dep["vulns"]:
            fixes = ", ".join(vuln.get("fix_versions") or []) or "no fix yet"
            print(f"audit: {dep['name']} {dep['version']}: {vuln['id']} (fixed in {fixes})")
    if vulnerable:
        print(f"audit: FAILED - {len(vulnerable)} of {len(deps)} dependencies have known vulnerabilities")
        return 1
    if deps and len(unaudited) == len(deps):
        print(
            f"audit: SKIPPED - the vulnerability service was not reachable: none of {len(deps)} dependencies "
            "could be audited (pip-audit needs https://pypi.org; run 'make audit' where it is reachable)"
        )
        return 1 if strict else 0
    if unaudited:
        names = ", ".join(sorted(d["name"] for d in unaudited))
        print(f"audit: {len(unaudited)} dependencies could not be audited: {names}")
    print(f"audit: OK - {len(deps) - len(unaudited)} dependencies audited, no known vulnerabilities")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
