"""``asset-ledger serve``, ``asset-ledger worker`` and ``asset-ledger user add|list|set|remove``.

Attached to the main command group by ``register`` (``asset_ledger.cli.main`` calls it on first need).
Passwords are read from a prompt (or stdin with ``--password-stdin``), never from an argument that lands in
shell history.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import signal
import sys
import threading
from types import FrameType

import click
import uvicorn

from asset_ledger.api.app import ServiceOptions, create_app
from asset_ledger.cli.main import ledger_of
from asset_ledger.core import Ledger, accounts
from asset_ledger.core.queue import Worker

DEFAULT_LISTEN = "127.0.0.1:8480"


def _listen(host: str | None, port: int | None) -> tuple[str, int]:
    default_host, _, default_port = (os.environ.get("ASSET_LEDGER_LISTEN") or DEFAULT_LISTEN).rpartition(":")
    try:
        return host or default_host or "127.0.0.1", port or int(default_port)
    except ValueError:
        raise click.UsageError(f"ASSET_LEDGER_LISTEN must be HOST:PORT, not {default_port!r}") from None


def _ledger() -> Ledger:
    """The invocation's ledger, refusing early (``LEDGER_NOT_INITIALISED``) when it has no schema."""
    ledger = ledger_of(click.get_current_context())
    ledger.list_sources()
    return ledger


@click.command("serve")
@click.option(
    "--host", default=None, help="Address to listen on (default 127.0.0.1; see ASSET_LEDGER_LISTEN)."
)
@click.option("--port", type=int, default=None, help="Port to listen on (default 8480).")
@click.option("--no-worker", is_flag=True, help="Do not run the embedded worker (run 'asset-ledger worker').")
def serve(host: str | None, port: int | None, no_worker: bool) -> None:
    """Serve the web UI and the JSON API (/api/v1), with one embedded worker."""
    ledger = _ledger()
    options = ServiceOptions.from_env()
    if no_worker:
        options = dataclasses.replace(options, embedded_worker=False)
    app = create_app(ledger.settings, engine=ledger.engine, options=options)
    bind_host, bind_port = _listen(host, port)
    if not accounts.list_users(ledger.engine):
        click.echo(
            "No users yet: create the first admin with 'asset-ledger user add NAME --role admin'.", err=True
        )
    shown = f"[{bind_host}]" if ":" in bind_host else bind_host
    worker_mode = "embedded" if options.embedded_worker else "none"
    click.echo(f"Asset Ledger on http://{shown}:{bind_port}/ (worker: {worker_mode})")
    if options.trusted_proxies:
        for entry in options.trusted_proxies.split(","):
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise click.UsageError(
                    f"ASSET_LEDGER_TRUSTED_PROXIES must list IP addresses or CIDR ranges, not {entry!r}"
                ) from None
        click.echo(f"Believing X-Forwarded-For from {options.trusted_proxies}")
    uvicorn.run(
        app,
        host=bind_host,
        port=bind_port,
        log_level="info",
        proxy_headers=bool(options.trusted_proxies),
        forwarded_allow_ips=options.trusted_proxies or None,
    )


@click.command("worker")
@click.option("--once", is_flag=True, help="Do one round (expire, schedule, run one queued run) and exit.")
@click.option(
    "--no-schedules", is_flag=True, help="Only execute queued runs; never queue scheduled collects."
)
def worker(once: bool, no_schedules: bool) -> None:
    """Execute queued runs (and queue scheduled collects) until stopped; several may share one database."""
    ledger = _ledger()
    options = ServiceOptions.from_env()
    work = Worker(ledger, poll_s=options.worker_poll_s, schedules=not no_schedules)
    if once:
        ran = work.run_once()
        click.echo(f"ran {ran}" if ran else "nothing queued")
        return

    def stop(_signum: int, _frame: FrameType | None) -> None:
        work.stop()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
    click.echo(f"worker {work.owner} waiting for runs", err=True)
    work.serve()


@click.group("user")
def user() -> None:
    """Accounts of the web UI and the API (roles: admin, viewer)."""


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    password: str = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    return password


@user.command("add")
@click.argument("username")
@click.option("--role", type=click.Choice(["admin", "viewer"]), default="viewer", show_default=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")
def user_add(username: str, role: str, password_stdin: bool) -> None:
    """Add a user; the password is prompted for (10 characters or more)."""
    ledger = _ledger()
    created = accounts.create_user(ledger.engine, username, _read_password(password_stdin), role)
    click.echo(f"added {created.username} ({created.role})")


@user.command("list")
@click.option("--json", "as_json", is_flag=True, help="JSON for scripts.")
def user_list(as_json: bool) -> None:
    """List users (never their passwords)."""
    users = accounts.list_users(_ledger().engine)
    if as_json:
        click.echo(
            json.dumps(
                [
                    {
                        "username": u.username,
                        "role": u.role,
                        "disabled": u.disabled,
                        "created_at": u.created_at.isoformat(),
                    }
                    for u in users
                ],
                indent=2,
            )
        )
        return
    for u in users:
        click.echo(f"{u.username:30} {u.role:7} {'disabled' if u.disabled else 'enabled'}")


@user.command("set")
@click.argument("username")
@click.option("--role", type=click.Choice(["admin", "viewer"]), default=None)
@click.option("--disable/--enable", "disabled", default=None, help="Disable (ends sessions) or enable.")
@click.option("--password", "new_password", is_flag=True, help="Prompt for a new password.")
@click.option("--password-stdin", is_flag=True, help="Read the new password from stdin.")
def user_set(
    username: str, role: str | None, disabled: bool | None, new_password: bool, password_stdin: bool
) -> None:
    """Change a user's role, enabled state or password."""
    ledger = _ledger()
    found = accounts.find_user(ledger.engine, username)
    password = _read_password(password_stdin) if (new_password or password_stdin) else None
    changed = accounts.update_user(ledger.engine, found.id, role=role, disabled=disabled, password=password)
    click.echo(f"{changed.username}: {changed.role}, {'disabled' if changed.disabled else 'enabled'}")


@user.command("remove")
@click.argument("username")
def user_remove(username: str) -> None:
    """Remove a user with their sessions and API tokens."""
    ledger = _ledger()
    accounts.delete_user(ledger.engine, accounts.find_user(ledger.engine, username).id)
    click.echo(f"removed {username}")


def register(group: click.Group) -> None:
    """Attach these commands to the main group."""
    for command in (serve, worker, user):
        group.add_command(command)
