"""CLI fixtures: an ``asset-ledger`` invocation helper on a fresh data directory, with the fake collector."""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from asset_ledger.cli.main import cli
from tests.core.fake_collector import TARGET

REPO = Path(__file__).resolve().parents[2]
#: Runs the real console entry point in a subprocess, with the fake collector installed.
LAUNCHER = (
    "import sys; from asset_ledger.collectors import COLLECTORS; "
    f"COLLECTORS['fake'] = {TARGET!r}; "
    "from asset_ledger.cli.main import main; main(sys.argv[1:])"
)


@dataclass
class Cli:
    env: dict[str, str]
    tmp_path: Path

    def __call__(self, *args: str, input: str | None = None) -> Result:
        return CliRunner().invoke(cli, list(args), input=input, env=self.env, catch_exceptions=False)

    def json(self, *args: str) -> Any:
        result = self(*args, "--json")
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    def answer(self, response: dict[str, Any]) -> Path:
        path = self.tmp_path / "answer.json"
        path.write_text(json.dumps(response), encoding="utf-8")
        return path

    def add_source(self, name: str = "lab", token: str = "fake-token-value") -> None:
        path = self.tmp_path / "answer.json"
        result = self(
            "source", "add", name, "--type", "fake", "--set", "endpoint=https://lab.example",
            "--set", f"response_file={path}",
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        result = self("credential", "set", name, "--stdin", input=f"token={token}\n")
        assert result.exit_code == 0, result.output

    def subprocess_env(self) -> dict[str, str]:
        return {**os.environ, **self.env, "PYTHONPATH": str(REPO)}

    def subprocess_args(self, *args: str) -> list[str]:
        return [sys.executable, "-c", LAUNCHER, *args]


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """Take away the log handler each CLI invocation installs, so no test writes into another's files."""
    root = logging.getLogger()
    level = root.level
    yield
    for handler in list(root.handlers):
        if getattr(handler, "_asset_ledger_handler", False):
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)


@pytest.fixture
def run_cli(tmp_path: Path, fake_collector: None) -> Cli:
    """``asset-ledger`` on a fresh SQLite ledger under a temporary data directory (already initialised)."""
    env = {"ASSET_LEDGER_DATA_DIR": str(tmp_path / "data"), "ASSET_LEDGER_DATABASE_URL": ""}
    runner = Cli(env, tmp_path)
    assert runner("init").exit_code == 0
    return runner
