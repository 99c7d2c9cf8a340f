"""A planted secret never shows up in the database, the logs or any output — even when the collector is
careless with it (quotes it in errors, warnings, detect details, raw payloads or an exception)."""

from __future__ import annotations

import json
import logging
import secrets
from pathlib import Path

import pytest
import sqlalchemy as sa

from asset_ledger.storage import raw
from asset_ledger.storage.tables import metadata, raw_blob
from tests.cli.conftest import Cli
from tests.core.fake_collector import snapshot


@pytest.fixture
def cli_on(db_url: str, tmp_path: Path, fake_collector: None) -> Cli:
    env = {
        "ASSET_LEDGER_DATA_DIR": str(tmp_path / "data"),
        "ASSET_LEDGER_DATABASE_URL": db_url,
        "ASSET_LEDGER_LOG_FILE": str(tmp_path / "ledger.log"),
    }
    runner = Cli(env, tmp_path)
    assert runner("init").exit_code == 0
    return runner


def test_a_planted_secret_appears_nowhere(
    cli_on: Cli, db_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = f"planted-{secrets.token_hex(12)}"
    run_cli = cli_on
    outputs: list[str] = []

    def call(*args: str, input: str | None = None) -> None:
        result = run_cli("--log-level", "debug", *args, input=input)
        outputs.append(result.output)

    run_cli.add_source(token=secret)
    run_cli.answer(snapshot(range(1, 4)))
    for mode in ("healthcheck", "detect", "collect"):
        call("run", "lab", "--mode", mode)
    leaky = snapshot(range(1, 4))
    leaky["__leak__"] = True
    run_cli.answer(leaky)
    call("run", "lab", "--mode", "collect")
    run_cli.answer({"__echo_secret__": True})
    call("run", "lab", "--mode", "healthcheck")
    run_cli.answer({"__raise__": "RuntimeError"})
    call("run", "lab", "--mode", "collect")
    call("credential", "rotate-key")
    run_cli.answer(snapshot(range(1, 4)))
    call("run", "lab", "--mode", "collect")
    for args in (["source", "list"], ["source", "show", "lab"], ["runs", "list"], ["assets", "list"]):
        call(*args)
        call(*args, "--json")
    runs = json.loads(run_cli("runs", "list", "--json").stdout)["items"]
    assert {r["status"] for r in runs} == {"succeeded", "failed"}  # the careless runs really ran
    for run in runs:
        call("runs", "show", run["id"], "--json")
    for item in json.loads(run_cli("assets", "list", "--json").stdout)["items"]:
        call("assets", "show", item["id"], "--json", "--all-raw")

    assert outputs
    for text in outputs:
        assert secret not in text
    assert secret not in (tmp_path / "ledger.log").read_text(encoding="utf-8")
    assert secret not in caplog.text
    if db_url.startswith("sqlite"):
        data_dir = tmp_path / "data"
        for path in data_dir.iterdir():
            assert secret.encode() not in path.read_bytes(), path.name
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            for table in metadata.sorted_tables:
                for row in conn.execute(sa.select(table)):
                    assert secret not in repr(tuple(row)), table.name
            keys = list(conn.scalars(sa.select(raw_blob.c.sha256)))
            for data in raw.get_many(conn, keys).values():  # deltas rebuilt against their base
                assert secret.encode() not in data
    finally:
        engine.dispose()
