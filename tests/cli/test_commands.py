"""The ``asset-ledger`` commands as a user runs them: tables, ``--json``, exit codes, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from asset_ledger.contract import validate
from asset_ledger.core import Ledger
from tests.cli.conftest import Cli
from tests.core.fake_collector import snapshot


def test_collect_then_read_the_inventory(run_cli: Cli) -> None:
    run_cli.add_source()
    run_cli.answer(snapshot(range(1, 4)))
    result = run_cli("run", "lab", "--mode", "collect")
    assert result.exit_code == 0, result.output
    assert "collect of lab succeeded" in result.stdout
    assert "assets: 4 (added 4" in result.stdout
    assert "collect: inventory 4/4" in result.stderr  # progress from the collector's events

    table = run_cli("assets", "list", "--kind", "vm").stdout
    assert table.splitlines()[0].split()[:3] == ["ID", "SOURCE", "KIND"]
    assert "qemu/2" in table
    assert "node1" not in table

    listing = run_cli.json("assets", "list", "--source", "lab")
    assert listing["total"] == 4
    vm = next(a for a in listing["items"] if a["external_id"] == "qemu/1")
    detail = run_cli.json("assets", "show", vm["id"][:8])
    assert detail["normalized"]["runtime"]["power_state"] == "running"
    assert [(r["type"], r["other_external_id"]) for r in detail["relations"]] == [("runs_on", "node1")]
    assert detail["raw_history"][0]["payload"]["vmid"] == 1
    human = run_cli("assets", "show", vm["id"]).stdout
    assert "runs_on -> host node1" in human
    assert '"vmid": 1' in human

    runs = run_cli.json("runs", "list", "--source", "lab")
    assert [r["status"] for r in runs["items"]] == ["succeeded"]
    shown = run_cli.json("runs", "show", runs["items"][0]["id"])
    assert shown["summary"]["added"] == 4

    assert run_cli("run", "lab", "--mode", "healthcheck").exit_code == 0
    assert [r["mode"] for r in run_cli.json("runs", "list")["items"]] == ["healthcheck", "collect"]
    assert [r["mode"] for r in run_cli.json("runs", "list", "--mode", "collect")["items"]] == ["collect"]
    assert run_cli("runs", "list", "--mode", "inventory").exit_code == 2


def test_a_failed_run_exits_1_with_codes_and_actions(run_cli: Cli) -> None:
    run_cli.add_source()
    run_cli.answer(snapshot(range(1, 3), relations=[]))
    result = run_cli("run", "lab")
    assert result.exit_code == 1
    assert "error INVENTORY_RELATIONS_EMPTY" in result.stdout
    assert "action: Check that the credential can read node lists" in result.stdout
    assert "Traceback" not in result.output
    data = run_cli.json("runs", "list", "--status", "failed")
    assert data["items"][0]["errors"][0]["code"] == "INVENTORY_RELATIONS_EMPTY"


def test_a_held_run_exits_1_and_confirm_applies_it(run_cli: Cli) -> None:
    run_cli.add_source()
    run_cli.answer(snapshot(range(1, 10)))
    assert run_cli("run", "lab").exit_code == 0
    run_cli.answer(snapshot([1]))
    held = run_cli("run", "lab", "--json")
    assert held.exit_code == 1
    run = json.loads(held.stdout)
    assert run["status"] == "held"
    assert run["errors"][0]["code"] == "INVENTORY_MASS_DISAPPEARANCE"
    human = run_cli("runs", "show", run["id"]).stdout
    assert f"asset-ledger runs confirm {run['id']}" in human
    confirmed = run_cli("runs", "confirm", run["id"], "--by", "alice")
    assert confirmed.exit_code == 0, confirmed.output
    assert "confirmed by alice" in confirmed.stdout
    assert run_cli.json("assets", "list", "--status", "missing")["total"] == 8
    again = run_cli("runs", "confirm", run["id"])
    assert again.exit_code == 3
    assert "RUN_NOT_HELD" in again.stderr


def test_source_lifecycle(run_cli: Cli, tmp_path: Path) -> None:
    config = tmp_path / "lab.yaml"
    config.write_text("endpoint: https://lab.example\nresponse_file: /nowhere\n", encoding="utf-8")
    added = run_cli("source", "add", "lab", "--type", "fake", "--config-file", str(config))
    assert added.exit_code == 0, added.output
    assert "asset-ledger credential set lab" in added.stdout
    assert run_cli.json("source", "show", "lab")["credential_set"] is False

    updated = run_cli("source", "update", "lab", "--set", "timeout_ms=2500", "--disable", "--rename", "lab2")
    assert updated.exit_code == 0, updated.output
    shown = run_cli.json("source", "show", "lab2")
    assert (shown["config"]["timeout_ms"], shown["enabled"]) == (2500, False)
    assert "lab2" in run_cli("source", "list").stdout

    bad = run_cli("source", "update", "lab2", "--set", "endpoint=ftp://nope")
    assert bad.exit_code == 3
    assert "SOURCE_CONFIG_INVALID" in bad.stderr
    assert "endpoint" in bad.stderr

    assert run_cli("source", "remove", "lab2", "--yes").exit_code == 0
    assert run_cli.json("source", "list") == []


def test_a_credential_is_never_printed(run_cli: Cli, tmp_path: Path) -> None:
    run_cli.add_source(token="first-secret-token")
    secret_file = tmp_path / "cred.json"
    secret_file.write_text(json.dumps({"token": "second-secret-token"}), encoding="utf-8")
    from_file = run_cli("credential", "set", "lab", "--from-file", str(secret_file))
    prompted = run_cli("credential", "set", "lab", "--field", "token", input="third-secret-token\n")
    assert from_file.exit_code == 0, from_file.output
    assert prompted.exit_code == 0, prompted.output
    human = run_cli("source", "show", "lab").stdout
    assert "credential:  set (updated" in human
    outputs = from_file.output + prompted.output + human + run_cli("source", "show", "lab", "--json").output
    for secret in ("first-secret-token", "second-secret-token", "third-secret-token"):
        assert secret not in outputs


def test_a_credential_cannot_be_given_as_an_argument(run_cli: Cli) -> None:
    run_cli.add_source()
    result = run_cli("credential", "set", "lab", "token=abcdef")
    assert result.exit_code == 2
    assert "abcdef" not in result.output


def test_rotate_key_then_runs_still_work(run_cli: Cli) -> None:
    run_cli.add_source()
    key_file = Path(run_cli.env["ASSET_LEDGER_DATA_DIR"]) / "secret.key"
    before = key_file.read_bytes()
    rotated = run_cli("credential", "rotate-key")
    assert rotated.exit_code == 0, rotated.output
    assert "re-encrypted 1 credential(s)" in rotated.stdout
    assert key_file.read_bytes() != before
    run_cli.answer(snapshot([1]))
    assert run_cli("run", "lab", "--mode", "healthcheck").exit_code == 0


@pytest.mark.parametrize(
    ("args", "code", "exit_code"),
    [
        (["source", "show", "nope"], "SOURCE_NOT_FOUND", 3),
        (["runs", "show", "00000000"], "RUN_NOT_FOUND", 3),
        (["assets", "show", "nope"], "ASSET_NOT_FOUND", 3),
        (["run", "nope"], "SOURCE_NOT_FOUND", 3),
        (["source", "add", "x", "--type", "nosuch"], "COLLECTOR_UNKNOWN_TYPE", 3),
    ],
)
def test_failures_print_code_and_action_without_traceback(
    run_cli: Cli, args: list[str], code: str, exit_code: int
) -> None:
    result = run_cli(*args)
    assert result.exit_code == exit_code
    assert f"error: {code}:" in result.stderr
    assert "  action: " in result.stderr
    assert "Traceback" not in result.output


def test_an_uninitialised_ledger_exits_4(run_cli: Cli, tmp_path: Path) -> None:
    fresh = Cli({**run_cli.env, "ASSET_LEDGER_DATA_DIR": str(tmp_path / "empty")}, tmp_path)
    result = fresh("source", "list")
    assert result.exit_code == 4
    assert "LEDGER_NOT_INITIALISED" in result.stderr
    assert "asset-ledger init" in result.stderr


def test_an_unreachable_database_exits_4(run_cli: Cli) -> None:
    gone = Cli(
        {**run_cli.env, "ASSET_LEDGER_DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:9/x"},
        run_cli.tmp_path,
    )
    result = gone("source", "list")
    assert result.exit_code == 4
    assert "STORAGE_UNAVAILABLE" in result.stderr
    assert "Traceback" not in result.output


def test_an_unexpected_error_is_internal_error_and_debug_shows_the_traceback(
    run_cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: Ledger) -> None:
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(Ledger, "list_sources", broken)
    plain = run_cli("source", "list")
    assert plain.exit_code == 70
    assert "INTERNAL_ERROR: unexpected ZeroDivisionError" in plain.stderr
    assert "Traceback" not in plain.output
    debug = run_cli("--debug", "source", "list")
    assert debug.exit_code == 70
    assert "Traceback" in debug.stderr


def test_structured_logs_carry_event_fields(run_cli: Cli, tmp_path: Path) -> None:
    log_file = tmp_path / "ledger.log"
    run_cli.env["ASSET_LEDGER_LOG_FILE"] = str(log_file)
    run_cli.add_source()
    run_cli.answer(snapshot([1]))
    assert run_cli("--log-level", "info", "run", "lab").exit_code == 0
    records = [json.loads(line) for line in log_file.read_text(encoding="utf-8").splitlines()]
    finished = next(r for r in records if r.get("event") == "run.finished")
    assert finished["status"] == "succeeded"
    assert finished["level"] == "info"
    assert set(finished) >= {"ts", "logger", "message", "run_id", "source_id", "duration_ms"}


def _request(tmp_path: Path, mode: str = "collect") -> dict[str, object]:
    answer = tmp_path / "answer.json"
    return {
        "schema_version": "collector-request-v1",
        "mode": mode,
        "source": {
            "id": "s1",
            "type": "fake",
            "config": {"endpoint": "https://x", "response_file": str(answer)},
        },
        "credential": {"token": "abcd1234"},
    }


def test_collector_run_is_the_process_form_of_the_contract(run_cli: Cli, tmp_path: Path) -> None:
    run_cli.answer(snapshot(range(1, 3)))
    result = run_cli("collector", "run", "fake", "--mode", "collect", "--request", "-",
                     input=json.dumps(_request(tmp_path)))  # fmt: skip
    assert result.exit_code == 0, result.output
    response = json.loads(result.stdout)
    assert validate("collector-response-v1", response) == []
    assert len(response["assets"]) == 3


def test_collector_run_exits_1_when_the_response_has_errors(run_cli: Cli, tmp_path: Path) -> None:
    run_cli.answer({"__echo_secret__": True})
    request_file = tmp_path / "request.json"
    request_file.write_text(json.dumps(_request(tmp_path, "healthcheck")), encoding="utf-8")
    result = run_cli("collector", "run", "fake", "--mode", "healthcheck", "--request", str(request_file))
    assert result.exit_code == 1
    assert json.loads(result.stdout)["errors"][0]["code"] == "CREDENTIAL_INVALID"


@pytest.mark.parametrize(
    "request_text",
    ["not json", json.dumps({"schema_version": "collector-request-v1", "mode": "collect"}), "[]"],
)
def test_collector_run_refuses_an_unusable_request_with_exit_2(run_cli: Cli, request_text: str) -> None:
    result = run_cli("collector", "run", "fake", "--mode", "collect", "--request", "-", input=request_text)
    assert result.exit_code == 2
    assert "REQUEST_INVALID" in result.stderr
    assert result.stdout == ""


def test_collector_list_names_the_installed_collectors(run_cli: Cli) -> None:
    rows = run_cli.json("collector", "list")
    assert {"type": "fake", "version": "fake-1.0", "installed": True} in rows


def test_raw_verify_rebuilds_every_blob_and_names_a_broken_one(run_cli: Cli, tmp_path: Path) -> None:
    import sqlite3

    run_cli.add_source()
    first = snapshot(range(1, 4))
    run_cli.answer(first)
    assert run_cli("run", "lab").exit_code == 0
    for item in first["assets"]:
        item["raw_payload"]["netin"] = 123456789  # counters moved: new versions, stored as deltas
    run_cli.answer(first)
    ran = run_cli("run", "lab")
    assert ran.exit_code == 0, ran.output
    # The VMs' payloads went in as deltas (the host's is too small for a delta to pay).
    assert "raw store: 4 new blob(s)" in ran.stdout
    assert "(3 stored as deltas)" in ran.stdout
    assert "changed 0, refreshed 4" in ran.stdout  # raw payloads moved, the inventory did not

    ok = run_cli.json("raw", "verify")
    assert ok["deltas"] == 3
    assert ok["problems"] == []
    assert "every blob rebuilds the exact bytes" in run_cli("raw", "verify").stdout

    with sqlite3.connect(tmp_path / "data" / "ledger.db") as db:
        [(delta, base)] = db.execute(
            "SELECT sha256, base_sha256 FROM raw_blob WHERE codec = 'zstd-delta' LIMIT 1"
        ).fetchall()
        db.execute("UPDATE raw_blob SET data = x'00' WHERE sha256 = ?", (base,))
    broken = run_cli("raw", "verify")
    assert broken.exit_code == 4
    assert delta in broken.stdout
    assert base in broken.stdout
    assert "error: RAW_BLOB_CORRUPT:" in broken.stderr
    assert "Traceback" not in broken.output
