"""``asset-ledger user …``, ``asset-ledger worker`` and ``asset-ledger serve`` (a real server process)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from asset_ledger.cli.main import cli
from asset_ledger.core import Ledger, Settings, accounts
from tests.cli.conftest import LAUNCHER, REPO, Cli
from tests.core.fake_collector import snapshot


def test_the_first_admin_is_added_with_a_prompted_password(run_cli: Cli) -> None:
    added = run_cli(
        "user", "add", "root-admin", "--role", "admin", input="first-password-1\nfirst-password-1\n"
    )
    assert added.exit_code == 0, added.output
    assert "added root-admin (admin)" in added.stdout
    assert "first-password-1" not in added.output
    listed = run_cli("user", "list", "--json")
    assert json.loads(listed.stdout) == [
        {
            "username": "root-admin",
            "role": "admin",
            "disabled": False,
            "created_at": json.loads(listed.stdout)[0]["created_at"],
        }
    ]
    with Ledger(Settings(data_dir=Path(run_cli.env["ASSET_LEDGER_DATA_DIR"]))) as ledger:
        assert accounts.authenticate(ledger.engine, "root-admin", "first-password-1") is not None


def test_user_commands_report_registered_codes(run_cli: Cli) -> None:
    short = run_cli("user", "add", "bob", "--password-stdin", input="short\n")
    assert short.exit_code == 3
    assert "USER_INVALID" in short.stderr
    assert run_cli("user", "add", "bob", "--password-stdin", input="long-enough-pw\n").exit_code == 0
    again = run_cli("user", "add", "bob", "--password-stdin", input="long-enough-pw\n")
    assert (again.exit_code, "USER_EXISTS" in again.stderr) == (3, True)
    assert run_cli("user", "set", "bob", "--role", "admin").exit_code == 0
    assert run_cli("user", "set", "bob", "--disable").exit_code != 0  # the last enabled admin
    assert (
        run_cli(
            "user", "add", "carol", "--role", "admin", "--password-stdin", input="long-enough-pw\n"
        ).exit_code
        == 0
    )
    assert "bob: admin, disabled" in run_cli("user", "set", "bob", "--disable").stdout
    assert run_cli("user", "remove", "bob").exit_code == 0
    missing = run_cli("user", "remove", "bob")
    assert (missing.exit_code, "USER_NOT_FOUND" in missing.stderr) == (3, True)


def test_user_add_before_init_says_what_to_do(tmp_path: Path) -> None:
    runner = Cli(
        {"ASSET_LEDGER_DATA_DIR": str(tmp_path / "empty"), "ASSET_LEDGER_DATABASE_URL": ""}, tmp_path
    )
    result = runner("user", "add", "x", "--password-stdin", input="long-enough-pw\n")
    assert result.exit_code == 4
    assert "LEDGER_NOT_INITIALISED" in result.stderr


def test_worker_once_executes_a_queued_run(run_cli: Cli) -> None:
    run_cli.add_source()
    run_cli.answer(snapshot([1, 2]))
    with Ledger(Settings(data_dir=Path(run_cli.env["ASSET_LEDGER_DATA_DIR"]))) as ledger:
        queued = ledger.create_run("lab", "collect")
        result = run_cli("worker", "--once")
        assert result.exit_code == 0, result.output
        assert f"ran {queued.id}" in result.stdout
        assert ledger.get_run(queued.id).status == "succeeded"
    assert "nothing queued" in run_cli("worker", "--once").stdout


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def serving(run_cli: Cli, **env_extra: str) -> Iterator[tuple[int, list[str]]]:
    """``asset-ledger serve`` in its own process on a free port; yields the port and, once it stopped,
    its output (as the list's only item)."""
    port = _free_port()
    env = {**os.environ, **run_cli.env, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)])}
    env.pop("ASSET_LEDGER_LISTEN", None)
    env.update(env_extra)
    server = subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    output: list[str] = []
    try:
        deadline = time.monotonic() + 30
        while True:
            assert server.poll() is None, server.stdout.read().decode() if server.stdout else ""
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "serve did not start"
                time.sleep(0.1)
        assert health.json() == {"status": "ok", "database": "ok"}
        yield port, output
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        output.append(server.communicate(timeout=30)[0].decode())


def add_admin(run_cli: Cli, password: str = "serve-password-1") -> None:
    result = run_cli("user", "add", "admin", "--role", "admin", "--password-stdin", input=password + "\n")
    assert result.exit_code == 0


def test_serve_listens_on_loopback_and_serves_the_ui_and_the_api(run_cli: Cli) -> None:
    add_admin(run_cli)
    with serving(run_cli) as (port, output):
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            assert client.get("/api/v1/me").status_code == 401
            login = client.get("/login")
            assert login.status_code == 200
        # Only loopback: each socket listening on the port is bound to 127.0.0.1 (/proc/net/tcp, 0A: LISTEN).
        listening = [
            fields[1].split(":")[0]
            for line in Path("/proc/net/tcp").read_text().splitlines()[1:]
            if (fields := line.split())[3] == "0A" and int(fields[1].split(":")[1], 16) == port
        ]
        assert listening == ["0100007F"]
    assert f"Asset Ledger on http://127.0.0.1:{port}/ (worker: embedded)" in output[0]


def sign_in(port: int, username: str, password: str, client_address: str) -> int:
    """One sign-in through a reverse proxy that says the browser is at ``client_address``."""
    headers = {"X-Forwarded-For": client_address}
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers) as client:
        form = client.get("/login")
        csrf = form.cookies["ledger_login_csrf"]
        answer = client.post(
            "/login", data={"username": username, "password": password, "csrf_token": csrf, "next": "/"}
        )
    return answer.status_code


@pytest.mark.parametrize("trusted", [True, False])
def test_sign_in_throttle_per_browser_address_behind_a_trusted_proxy(run_cli: Cli, trusted: bool) -> None:
    """Behind a reverse proxy every request comes from the proxy's address: unless the proxy is trusted,
    five wrong passwords from one browser lock everyone out; a forged header from anyone else is ignored."""
    add_admin(run_cli)
    env = {"ASSET_LEDGER_COOKIE_SECURE": "0"}  # plain http on loopback in this test
    if trusted:
        env["ASSET_LEDGER_TRUSTED_PROXIES"] = "127.0.0.1"
    with serving(run_cli, **env) as (port, output):
        for n in range(5):
            assert sign_in(port, f"guess{n}", "wrong-password-1", "203.0.113.7") == 401
        assert sign_in(port, "guess9", "wrong-password-1", "203.0.113.7") == 429
        other_browser = sign_in(port, "admin", "serve-password-1", "198.51.100.9")
    if trusted:
        assert other_browser == 303
        assert "Believing X-Forwarded-For from 127.0.0.1" in output[0]
    else:
        assert other_browser == 429
        assert "X-Forwarded-For" not in output[0]


def test_a_standalone_worker_runs_queued_runs_until_terminated(run_cli: Cli) -> None:
    run_cli.add_source()
    run_cli.answer(snapshot([1, 2, 3]))
    env = {
        **os.environ,
        **run_cli.env,
        "ASSET_LEDGER_WORKER_POLL_S": "0.1",
        "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)]),
    }
    worker = subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, "worker"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        with Ledger(Settings(data_dir=Path(run_cli.env["ASSET_LEDGER_DATA_DIR"]))) as ledger:
            for mode in ("detect", "collect"):
                queued = ledger.create_run("lab", mode)
                deadline = time.monotonic() + 30
                while ledger.get_run(queued.id).status in ("queued", "running"):
                    assert worker.poll() is None, worker.stdout.read().decode() if worker.stdout else ""
                    assert time.monotonic() < deadline, "the worker never ran the run"
                    time.sleep(0.05)
                assert ledger.get_run(queued.id).status == "succeeded"
            assert ledger.list_assets(kind="vm").total == 3
    finally:
        worker.send_signal(signal.SIGTERM)
        output = worker.communicate(timeout=30)[0].decode()
    assert worker.returncode == 0, output
    assert "waiting for runs" in output


def test_service_settings_come_from_the_environment() -> None:
    from asset_ledger.api.app import ServiceOptions

    assert ServiceOptions.from_env({}) == ServiceOptions(
        cookie_secure=True, metrics_public=False, embedded_worker=True, worker_poll_s=2.0
    )
    options = ServiceOptions.from_env(
        {
            "ASSET_LEDGER_COOKIE_SECURE": "0",
            "ASSET_LEDGER_METRICS_PUBLIC": "yes",
            "ASSET_LEDGER_EMBEDDED_WORKER": "off",
            "ASSET_LEDGER_WORKER_POLL_S": "0.5",
            "ASSET_LEDGER_TRUSTED_PROXIES": " 10.0.0.1, 192.168.0.0/24 ,",
        }
    )
    assert options == ServiceOptions(
        cookie_secure=False,
        metrics_public=True,
        embedded_worker=False,
        worker_poll_s=0.5,
        trusted_proxies="10.0.0.1,192.168.0.0/24",
    )


def test_serve_refuses_a_bad_listen_address(run_cli: Cli) -> None:
    result = CliRunner().invoke(
        cli, ["serve"], env={**run_cli.env, "ASSET_LEDGER_LISTEN": "127.0.0.1:http"}, catch_exceptions=False
    )
    assert result.exit_code == 2
    assert "ASSET_LEDGER_LISTEN must be HOST:PORT" in result.output


def test_serve_refuses_a_trusted_proxy_that_is_not_an_address(run_cli: Cli) -> None:
    env = {**run_cli.env, "ASSET_LEDGER_TRUSTED_PROXIES": "127.0.0.1,proxy.example"}
    result = CliRunner().invoke(cli, ["serve"], env=env, catch_exceptions=False)
    assert result.exit_code == 2
    assert "must list IP addresses or CIDR ranges, not 'proxy.example'" in result.output
