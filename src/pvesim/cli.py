"""``pvesim serve``: run a simulated PVE API on loopback until interrupted."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType

import click

from pvesim.faults import parse_fault_spec
from pvesim.profiles import PROFILES
from pvesim.server import SimServer
from pvesim.topology import DEFAULT_PRINCIPALS, Topology


@click.group()
def main() -> None:
    """pvesim — a version-faithful Proxmox VE API simulator."""


@main.command()
@click.option("--profile", type=click.Choice(list(PROFILES)), default="8.4", show_default=True)
@click.option("--topology", "topology_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--seed", type=int, default=1, show_default=True, help="seed for a generated topology")
@click.option("--nodes", type=int, default=3, show_default=True)
@click.option("--guests", type=int, default=50, show_default=True, help="guests (2/3 QEMU, 1/3 LXC)")
@click.option("--offline-nodes", type=int, default=0, show_default=True)
@click.option("--standalone", is_flag=True, help="single node without cluster")
@click.option("--host", default="127.0.0.1", show_default=True, help="loopback address to bind")
@click.option("--port", type=int, default=8006, show_default=True, help="0 = any free port")
@click.option("--latency-ms", type=float, default=0.0, show_default=True)
@click.option("--time-scale", type=float, default=1.0, show_default=True, help="multiplies the 3 s delays")
@click.option("--tls-dir", type=click.Path(file_okay=False, path_type=Path), help="keep/reuse the CA here")
@click.option(
    "--fault", "faults", multiple=True, help="kind[:key=value,...], e.g. status:path=/version,status=503"
)
def serve(  # noqa: PLR0917 - click passes every option by name
    profile: str,
    topology_file: Path | None,
    seed: int,
    nodes: int,
    guests: int,
    offline_nodes: int,
    standalone: bool,
    host: str,
    port: int,
    latency_ms: float,
    time_scale: float,
    tls_dir: Path | None,
    faults: tuple[str, ...],
) -> None:
    """Serve the PVE API over HTTPS and print how to reach it."""
    if topology_file is not None:
        topology = Topology.load(topology_file)
    else:
        qemu = guests * 2 // 3
        topology = Topology.generate(
            seed=seed,
            nodes=1 if standalone else nodes,
            qemu=qemu,
            lxc=guests - qemu,
            standalone=standalone or None,
            offline_nodes=offline_nodes,
        )
    try:
        fault_objs = [parse_fault_spec(spec) for spec in faults]
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--fault") from exc
    try:
        server = SimServer(
            profile=profile,
            topology=topology,
            host=host,
            port=port,
            latency_ms=latency_ms,
            time_scale=time_scale,
            tls_dir=tls_dir,
            faults=fault_objs,
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--host") from exc
    server.start()
    done = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        click.echo(f"pvesim {server.profile.name} (pve-manager {server.profile.version}) listening")
        click.echo(f"url:         {server.url}")
        click.echo(f"ca:          {server.ca_path}")
        click.echo(f"fingerprint: {server.fingerprint}")
        click.echo(
            f"topology:    {len(topology.nodes)} node(s), {len(topology.guests)} guest(s), "
            f"cluster={topology.cluster_name or '-'}"
        )
        for name in DEFAULT_PRINCIPALS:
            user, token = topology.principal(name)
            line = f"{name:8} {user.userid} password={user.password}"
            if token is not None:
                line += f" token={user.userid}!{token.name}={token.secret} privsep={int(token.privsep)}"
            click.echo(line)
        click.echo("Ctrl-C to stop", err=False)
        while not done.wait(0.5):
            pass
    finally:
        server.stop()
        click.echo("stopped")


if __name__ == "__main__":
    main()
