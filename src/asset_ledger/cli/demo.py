"""``asset-ledger demo``: the real PVE path end to end on embedded defaults.

It initialises (or upgrades) the ledger in the data directory (SQLite under ``./var`` unless
``ASSET_LEDGER_DATABASE_URL`` says otherwise), starts the built-in PVE simulator on a loopback port, registers
a ``pve`` source for it with a least-privilege API token and the simulator's CA, runs healthcheck, detect and
collect exactly as for a real cluster, prints what the ledger now holds, and then serves the web UI over
that data until Ctrl-C. Running it again collects the same simulated cluster again, so the second run shows
an unchanged inventory (and almost no new raw bytes).
"""

from __future__ import annotations

import logging
import secrets
from collections import Counter
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from asset_ledger.cli import render
from asset_ledger.contract import LedgerError
from asset_ledger.core import Ledger, Settings, accounts

SOURCE_NAME = "demo-pve"
ADMIN = "admin"


def _demo_topology(nodes: int, qemu: int, lxc: int, offline: int) -> Any:
    from pvesim import Topology  # noqa: PLC0415 - the simulator is only needed by the demo

    return Topology.generate(
        seed=42,
        nodes=nodes,
        qemu=qemu,
        lxc=lxc,
        cluster_name="demo",
        offline_nodes=offline,
        paused=1 if qemu >= 10 else 0,
        hibernated=1 if qemu >= 10 else 0,
        templates=1 if qemu >= 10 else 0,
        agent_not_running=1 if qemu >= 10 else 0,
        agent_timeout=1 if qemu >= 10 else 0,
    )


def _tokens_supported(profile: str) -> bool:
    """API tokens exist from PVE 6.2; older releases are collected with a user and password (ticket)."""
    major, minor = (int(part) for part in profile.split("-", maxsplit=1)[0].split(".")[:2])
    return (major, minor) >= (6, 2)


def _register_source(ledger: Ledger, server: Any, profile: str) -> None:
    auth = "api_token" if _tokens_supported(profile) else "user_password"
    config = {
        "endpoint": server.url,
        "tls_verify": True,
        "tls_ca_bundle": server.ca_path,
        "scope": "auto",
        "auth_type": auth,
        "max_parallel_nodes": 5,
        "timeout_ms": 30000,
    }
    try:
        ledger.get_source(SOURCE_NAME)
    except LedgerError as exc:
        if exc.code != "SOURCE_NOT_FOUND":
            raise
        ledger.add_source(SOURCE_NAME, "pve", config)
    else:
        ledger.update_source(SOURCE_NAME, config=config, enabled=True)
    ledger.set_credential(SOURCE_NAME, server.credentials("reader", auth=auth))


def _admin_password(ledger: Ledger, data_dir: Path) -> str | None:
    """The demo admin's password: created once, kept (0600) beside the ledger so a rerun can show it."""
    path = data_dir / "demo-admin-password"
    try:
        accounts.find_user(ledger.engine, ADMIN)
    except LedgerError:
        password = secrets.token_urlsafe(12)
        accounts.create_user(ledger.engine, ADMIN, password, "admin")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(password + "\n", "utf-8")
        return password
    return path.read_text("utf-8").strip() if path.exists() else None


def _inventory_summary(ledger: Ledger) -> str:
    assets = []
    offset = 0
    while True:
        page = ledger.list_assets(source=SOURCE_NAME, limit=500, offset=offset)
        assets.extend(page.items)
        offset += len(page.items)
        if not page.items or offset >= page.total:
            break
    kinds = Counter(a.external_kind for a in assets if a.status == "present")
    missing = sum(1 for a in assets if a.status == "missing")
    states: Counter[str] = Counter()
    virt: Counter[str] = Counter()
    for a in assets:
        if a.external_kind == "vm" and a.status == "present":
            states[(a.normalized.get("runtime") or {}).get("power_state", "?")] += 1
            virt[(a.normalized.get("virtualization") or {}).get("type", "?")] += 1
    lines = [
        f"ledger now holds: {kinds.get('cluster', 0)} cluster, {kinds.get('host', 0)} hosts, "
        f"{kinds.get('vm', 0)} guests ({virt.get('qemu', 0)} QEMU VMs, {virt.get('lxc', 0)} LXC containers)"
        + (f", {missing} missing" if missing else ""),
        "guest power states: " + ", ".join(f"{n} {state}" for state, n in states.most_common()),
        f"raw store: {render.size(ledger.raw_store_bytes())} for every payload ever collected",
    ]
    return "\n".join(lines)


def register(group: click.Group) -> None:
    @group.command("demo")
    @click.option("--profile", default="8.4", show_default=True, help="PVE release the simulator plays.")
    @click.option("--nodes", type=click.IntRange(1, 32), default=3, show_default=True)
    @click.option("--qemu", type=click.IntRange(0, 5000), default=24, show_default=True)
    @click.option("--lxc", type=click.IntRange(0, 5000), default=12, show_default=True)
    @click.option("--offline-nodes", type=click.IntRange(0, 31), default=1, show_default=True)
    @click.option("--serve/--no-serve", default=True, show_default=True, help="Serve the web UI afterwards.")
    @click.option("--port", type=int, default=None, help="Web UI port (default 8480).")
    @click.pass_context
    def demo(  # noqa: PLR0917 - click passes every option by name
        ctx: click.Context,
        profile: str,
        nodes: int,
        qemu: int,
        lxc: int,
        offline_nodes: int,
        serve: bool,
        port: int | None,
    ) -> None:
        """Collect a simulated PVE cluster into the ledger, show the result, then serve the web UI."""
        from asset_ledger.cli.main import ProgressPrinter  # noqa: PLC0415 - main imports this module
        from pvesim import PROFILES, SimServer  # noqa: PLC0415 - the simulator is only needed by the demo

        if profile not in PROFILES:
            raise click.BadParameter(f"one of {', '.join(PROFILES)}", param_hint="--profile")
        if offline_nodes >= nodes:
            raise click.BadParameter("must leave at least one node online", param_hint="--offline-nodes")
        parent = ctx.parent
        if parent is not None and parent.get_parameter_source("log_level") is ParameterSource.DEFAULT:
            # the run summaries below already show every warning; keep the terminal readable
            logging.getLogger("asset_ledger").setLevel(logging.ERROR)
        settings = Settings.from_env()
        ledger = Ledger(settings)
        click.echo(f"ledger: {ledger.init()} ({settings.resolved_database_url.split('?')[0]})")
        server = SimServer(
            profile=profile,
            topology=_demo_topology(nodes, qemu, lxc, offline_nodes),
            latency_ms=2,
            time_scale=0.1,
            tls_dir=str(settings.data_dir / "pvesim"),
        )
        server.start()
        try:
            click.echo(f"simulated PVE {profile}: {server.url} (CA {server.ca_path})")
            _register_source(ledger, server, profile)
            failed = False
            for mode in ("healthcheck", "detect", "collect"):
                printer = ProgressPrinter(mode)
                try:
                    ended = ledger.run_now(SOURCE_NAME, mode, progress=printer)
                finally:
                    printer.close()
                click.echo(render.run_summary(ended))
                failed = failed or ended.status != "succeeded"
            click.echo("")
            click.echo(_inventory_summary(ledger))
            click.echo("browse it: asset-ledger assets list --source demo-pve   (or the web UI below)")
            password = _admin_password(ledger, settings.data_dir)
            ledger.close()
            if failed:
                ctx.exit(1)
            if serve:
                login = f"log in as '{ADMIN}'" + (
                    f" with password {password}" if password else " (password set on an earlier run)"
                )
                click.echo(f"web UI: {login}; the simulated cluster stays up until Ctrl-C")
                ctx.invoke(group.commands["serve"], host=None, port=port, no_worker=False)
        finally:
            server.stop()
