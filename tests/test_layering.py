"""The layers of the design hold in the code: a layer imports only what it may.

cli / api / web -> core -> storage, collectors -> contract;  pvesim stands alone.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

#: package -> packages it must never import
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "asset_ledger.contract": (
        "asset_ledger.core",
        "asset_ledger.storage",
        "asset_ledger.collectors",
        "asset_ledger.api",
        "asset_ledger.web",
        "asset_ledger.cli",
        "pvesim",
    ),
    "asset_ledger.collectors": (
        "asset_ledger.core",
        "asset_ledger.storage",
        "asset_ledger.api",
        "asset_ledger.web",
        "asset_ledger.cli",
        "pvesim",
    ),
    "asset_ledger.storage": ("asset_ledger.core", "asset_ledger.api", "asset_ledger.web", "asset_ledger.cli"),
    "asset_ledger.core": ("asset_ledger.api", "asset_ledger.web", "asset_ledger.cli", "pvesim"),
    "pvesim": ("asset_ledger",),
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text("utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def _violations(package: str, forbidden: tuple[str, ...]) -> list[str]:
    found = []
    for path in sorted(SRC.rglob("*.py")):
        module = _module_name(path)
        if module != package and not module.startswith(package + "."):
            continue
        for imported in _imports(path):
            for banned in forbidden:
                if imported == banned or imported.startswith(banned + "."):
                    found.append(f"{module} imports {imported}")
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_layer_imports_only_what_it_may(package: str) -> None:
    assert list(SRC.rglob("*.py")), "no sources found: the test would prove nothing"
    assert _violations(package, FORBIDDEN[package]) == []


def test_the_check_sees_real_imports() -> None:
    # the CLI does import the core: if this finds nothing, the import scan is broken
    assert _violations("asset_ledger.cli", ("asset_ledger.core",))
