"""The ``asset-ledger`` command: set up a ledger, manage sources and credentials, run collectors, read
the inventory.

Every listing and showing command prints a table by default and JSON with ``--json``. Failures print their
registered code, message and suggested action on stderr, never a traceback (``--debug`` shows one), and
end with a stable exit code:

    0  success
    1  the run failed or was held back (``run``), or the collector response has errors (``collector run``)
    2  unusable input: bad options or arguments, an invalid collector request
    3  any other expected failure (a registered code: not found, invalid config, already active, ...)
    4  the database is unavailable or not initialised
   70  an unexpected internal error (INTERNAL_ERROR)

Secrets are read from a hidden prompt, a file or stdin, never from an argument. The click group is exported
as ``cli``; other modules (``cli/service.py``, ``cli/demo.py``) attach their commands through a
``register(group)`` function.
"""

from __future__ import annotations

import asyncio
import getpass
import importlib
import json
import os
import sys
import time
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

import click

from asset_ledger.cli import render
from asset_ledger.collectors import ProgressEvent, get_collector, source_types
from asset_ledger.contract import LedgerError, error_entry, validate
from asset_ledger.core import UNSET, Ledger, Settings
from asset_ledger.core.logs import setup_logging
from asset_ledger.core.secrets import Keyring

EXIT_RUN_FAILED = 1
EXIT_USAGE = 2
EXIT_ERROR = 3
EXIT_STORAGE = 4
EXIT_INTERNAL = 70

#: Credential fields asked for by ``credential set`` when no ``--field`` is given, by the config's auth_type.
AUTH_FIELDS: Mapping[str, tuple[str, ...]] = {
    "api_token": ("api_token_id", "api_token_secret"),
    "user_password": ("username", "password"),
}
SECRET_HINTS = ("secret", "password", "token")
EXTENSIONS = ("service", "demo")


def exit_code_for(error: LedgerError) -> int:
    if error.code == "REQUEST_INVALID":
        return EXIT_USAGE
    if error.entry.category == "storage" or error.code == "LEDGER_NOT_INITIALISED":
        return EXIT_STORAGE
    if error.code == "INTERNAL_ERROR":
        return EXIT_INTERNAL
    return EXIT_ERROR


def report(error: LedgerError) -> None:
    render.echo_err(f"error: {error.code}: {error.message}")
    render.echo_err(f"  action: {error.suggested_action}")


class LedgerGroup(click.Group):
    """The top-level group: turns every failure into a registered code on stderr and a stable exit code.

    Commands of the extension modules (``EXTENSIONS``: the service, the demo) are attached on first need,
    so ``asset-ledger run`` never pays for importing the web stack.
    """

    _extensions_attached = False

    def attach_extensions(self) -> None:
        if self._extensions_attached:
            return
        self._extensions_attached = True
        for name in EXTENSIONS:
            module_name = f"asset_ledger.cli.{name}"
            try:
                module = importlib.import_module(module_name)
            except ModuleNotFoundError as exc:
                if exc.name == module_name:
                    continue
                raise
            module.register(self)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        found = super().get_command(ctx, cmd_name)
        if found is None and not self._extensions_attached:
            self.attach_extensions()
            found = super().get_command(ctx, cmd_name)
        return found

    def list_commands(self, ctx: click.Context) -> list[str]:
        self.attach_extensions()
        return super().list_commands(ctx)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except LedgerError as error:
            if ctx.meta.get("debug"):
                traceback.print_exc()
            report(error)
            ctx.exit(exit_code_for(error))
        except Exception as exc:
            if ctx.meta.get("debug"):
                traceback.print_exc()
            internal = LedgerError("INTERNAL_ERROR", f"unexpected {type(exc).__name__}")
            report(internal)
            if not ctx.meta.get("debug"):
                render.echo_err("  (run with --debug for the traceback)")
            ctx.exit(EXIT_INTERNAL)


def ledger_of(ctx: click.Context) -> Ledger:
    """The ledger for this invocation (from the environment), opened once and closed at the end."""
    root = ctx.find_root()
    ledger = root.meta.get("ledger")
    if ledger is None:
        ledger = Ledger(Settings.from_env())
        root.meta["ledger"] = ledger
        root.call_on_close(ledger.close)
    assert isinstance(ledger, Ledger)
    return ledger


def emit(ctx: click.Context, data: Any, text: str, *, as_json: bool) -> None:
    click.echo(render.as_json(data) if as_json else text)


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


@click.group(cls=LedgerGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    default="warning",
    show_default=True,
    help="JSON log lines at this level and above go to stderr or ASSET_LEDGER_LOG_FILE.",
)
@click.option("--debug", is_flag=True, help="Show tracebacks of unexpected errors.")
@click.version_option(package_name="asset-ledger")
@click.pass_context
def cli(ctx: click.Context, log_level: str, debug: bool) -> None:
    """Asset Ledger: a CMDB-style inventory that keeps every raw payload it was built from.

    Data lives under ASSET_LEDGER_DATA_DIR (default ./var), or in the database named by
    ASSET_LEDGER_DATABASE_URL (PostgreSQL: postgresql+psycopg://user@host/db).
    """
    ctx.meta["debug"] = debug
    setup_logging(log_level, log_file=os.environ.get("ASSET_LEDGER_LOG_FILE") or None)


# ---------------------------------------------------------------------------------------------- init


@cli.command()
@click.pass_context
def init(ctx: click.Context) -> None:
    """Create the ledger (or upgrade its schema to this version)."""
    ledger = ledger_of(ctx)
    revision = ledger.init()
    url = ledger.engine.url.render_as_string(hide_password=True)
    click.echo(f"ledger ready at {url} (schema {revision})")


# ---------------------------------------------------------------------------------------------- sources


def parse_value(text: str) -> Any:
    """``--set`` values: JSON when they parse (true, 5, "x", [..]), plain text otherwise."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_assignments(items: Sequence[str], option: str) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint=option)
        values[key.strip()] = parse_value(value)
    return values


def read_config_file(path: Path) -> dict[str, Any]:
    """A config file: JSON, or YAML when the name ends in .yaml/.yml."""
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix in (".yaml", ".yml"):
            import yaml  # noqa: PLC0415 -- only needed for YAML files

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except ValueError as exc:
        raise click.BadParameter(
            f"{path} is not valid JSON/YAML: {exc}", param_hint="--config-file"
        ) from None
    if not isinstance(data, dict):
        raise click.BadParameter(f"{path} must hold an object of settings", param_hint="--config-file")
    return data


@cli.group()
def source() -> None:
    """Sources: where assets come from (one per PVE cluster or standalone node)."""


@source.command("add")
@click.argument("name")
@click.option("--type", "source_type", required=True, help=f"Source type: {', '.join(source_types())}.")
@click.option(
    "--config-file", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="JSON/YAML."
)
@click.option(
    "--set", "assignments", multiple=True, metavar="KEY=VALUE", help="A config setting (repeatable)."
)
@click.option("--disabled", is_flag=True, help="Add the source disabled.")
@click.option("--schedule-interval", type=int, help="Collect automatically every N seconds (service mode).")
@click.option(
    "--missing-guard-share", type=float, help="Hold snapshots marking more than this share missing."
)
@json_option
@click.pass_context
def source_add(
    ctx: click.Context,
    *,
    name: str,
    source_type: str,
    config_file: Path | None,
    assignments: tuple[str, ...],
    disabled: bool,
    schedule_interval: int | None,
    missing_guard_share: float | None,
    as_json: bool,
) -> None:
    """Add a source; its config is checked by its collector."""
    config = read_config_file(config_file) if config_file else {}
    config.update(parse_assignments(assignments, "--set"))
    added = ledger_of(ctx).add_source(
        name,
        source_type,
        config,
        enabled=not disabled,
        schedule_interval_s=schedule_interval,
        missing_guard_share=missing_guard_share,
    )
    hint = f"\nnext: asset-ledger credential set {added.name}" if not added.credential_set else ""
    emit(ctx, added.to_dict(), f"added source {added.name} ({added.id}){hint}", as_json=as_json)


@source.command("list")
@json_option
@click.pass_context
def source_list(ctx: click.Context, as_json: bool) -> None:
    """List sources."""
    sources = ledger_of(ctx).list_sources()
    emit(ctx, [s.to_dict() for s in sources], render.sources_table(sources), as_json=as_json)


@source.command("show")
@click.argument("name")
@json_option
@click.pass_context
def source_show(ctx: click.Context, name: str, as_json: bool) -> None:
    """Show a source (the credential only as set or not: it is never shown)."""
    shown = ledger_of(ctx).get_source(name)
    emit(ctx, shown.to_dict(), render.source_block(shown), as_json=as_json)


@source.command("update")
@click.argument("name")
@click.option(
    "--config-file", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="Replace config."
)
@click.option(
    "--set", "assignments", multiple=True, metavar="KEY=VALUE", help="Change a setting (repeatable)."
)
@click.option("--unset", "unset", multiple=True, metavar="KEY", help="Remove a setting (repeatable).")
@click.option("--rename", help="A new name.")
@click.option("--enable/--disable", "enabled", default=None, help="Enable or disable the source.")
@click.option("--schedule-interval", type=int, help="Collect every N seconds.")
@click.option("--no-schedule", is_flag=True, help="Stop collecting on a schedule.")
@click.option("--missing-guard-share", type=float, help="Per-source mass-disappearance share.")
@click.option("--default-guard", is_flag=True, help="Use the global mass-disappearance share again.")
@json_option
@click.pass_context
def source_update(
    ctx: click.Context,
    *,
    name: str,
    config_file: Path | None,
    assignments: tuple[str, ...],
    unset: tuple[str, ...],
    rename: str | None,
    enabled: bool | None,
    schedule_interval: int | None,
    no_schedule: bool,
    missing_guard_share: float | None,
    default_guard: bool,
    as_json: bool,
) -> None:
    """Change a source; the resulting config is checked again."""
    updated = ledger_of(ctx).update_source(
        name,
        name=rename,
        config=read_config_file(config_file) if config_file else None,
        config_patch=parse_assignments(assignments, "--set"),
        config_unset=unset,
        enabled=enabled,
        schedule_interval_s=None
        if no_schedule
        else (UNSET if schedule_interval is None else schedule_interval),
        missing_guard_share=None
        if default_guard
        else (missing_guard_share if missing_guard_share else UNSET),
    )
    emit(ctx, updated.to_dict(), f"updated source {updated.name}", as_json=as_json)


@source.command("remove")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def source_remove(ctx: click.Context, name: str, yes: bool) -> None:
    """Remove a source with its credential, runs and assets."""
    ledger = ledger_of(ctx)
    target = ledger.get_source(name)
    if not yes:
        click.confirm(f"remove source {target.name} with its runs and assets?", abort=True, err=True)
    ledger.remove_source(target.id)
    click.echo(f"removed source {target.name}")


# ---------------------------------------------------------------------------------------------- credentials


def parse_secret_document(text: str, origin: str) -> dict[str, Any]:
    """A credential given as a JSON object or as KEY=VALUE lines."""
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            data = json.loads(stripped)
        except json.JSONDecodeError:
            raise LedgerError("CREDENTIAL_INVALID", f"{origin} is not valid JSON") from None
        if not isinstance(data, dict):
            raise LedgerError("CREDENTIAL_INVALID", f"{origin} must hold a JSON object")
        return data
    values: dict[str, Any] = {}
    for number, line in enumerate(stripped.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            # Never echo the line: it may be a secret typed in the wrong format.
            raise LedgerError("CREDENTIAL_INVALID", f"{origin} line {number} is not KEY=VALUE")
        values[key.strip()] = value.strip()
    return values


@cli.group()
def credential() -> None:
    """Credentials: stored encrypted, write-only, used only when a run starts."""


@credential.command("set", context_settings={"allow_extra_args": True})
@click.argument("source_name", metavar="SOURCE")
@click.option(
    "--from-file", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="JSON or KEY=VALUE."
)
@click.option("--stdin", "from_stdin", is_flag=True, help="Read JSON or KEY=VALUE lines from stdin.")
@click.option("--field", "fields", multiple=True, help="A field to prompt for (repeatable).")
@click.pass_context
def credential_set(
    ctx: click.Context, source_name: str, from_file: Path | None, from_stdin: bool, fields: tuple[str, ...]
) -> None:
    """Set a source's credential from a hidden prompt, a file or stdin (never from an argument)."""
    if ctx.args:
        # Not echoed: an argument here is most likely the secret itself.
        raise click.UsageError(
            f"{len(ctx.args)} unexpected argument(s): a credential is never taken from the command line "
            "(it would land in shell history); use the prompt, --from-file or --stdin"
        )
    ledger = ledger_of(ctx)
    target = ledger.get_source(source_name)
    if from_file and from_stdin:
        raise click.UsageError("give --from-file or --stdin, not both")
    if from_file:
        secret = parse_secret_document(from_file.read_text(encoding="utf-8"), str(from_file))
    elif from_stdin:
        secret = parse_secret_document(sys.stdin.read(), "stdin")
    else:
        names = fields or AUTH_FIELDS.get(str(target.config.get("auth_type", "")), ())
        if not names:
            raise click.UsageError("name the credential fields with --field, or use --from-file/--stdin")
        hidden = get_collector(target.source_type).secret_fields
        secret = {}
        for field in names:
            is_secret = field in hidden or any(h in field.lower() for h in SECRET_HINTS)
            secret[field] = click.prompt(field, hide_input=is_secret, err=True)
    updated = ledger.set_credential(target.id, secret)
    click.echo(f"credential of {updated.name} set (updated {render.when(updated.credential_updated_at)})")


@credential.command("rotate-key")
@click.option(
    "--new-key-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The new key (needed when the key comes from ASSET_LEDGER_SECRET_KEY).",
)
@click.pass_context
def credential_rotate_key(ctx: click.Context, new_key_file: Path | None) -> None:
    """Re-encrypt every credential with a new key."""
    ledger = ledger_of(ctx)
    new = new_key_file.read_bytes().strip() if new_key_file else None
    if new is not None:
        Keyring(new, origin=str(new_key_file))  # refuses a malformed key before anything changes
    count = ledger.rotate_key(new)
    where = (
        "switch ASSET_LEDGER_SECRET_KEY to the new key now"
        if ledger.settings.secret_key
        else f"new key in {ledger.settings.key_file}"
    )
    click.echo(f"re-encrypted {count} credential(s); {where}")


# ---------------------------------------------------------------------------------------------- runs


class ProgressPrinter:
    """Collector progress on stderr: one updating line on a terminal, a line a second otherwise."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.tty = sys.stderr.isatty()
        self.last = 0.0
        self.last_phase: str | None = None

    def __call__(self, event: ProgressEvent) -> None:
        now = time.monotonic()
        phase = str(event.get("phase", ""))
        done, total = event.get("done"), event.get("total")
        final = done is not None and done == total
        if not self.tty and phase == self.last_phase and not final and now - self.last < 1.0:
            return
        self.last, self.last_phase = now, phase
        count = f" {done}/{total}" if total else ""
        node = f" [{event['node']}]" if event.get("node") else ""
        message = f" {event['message']}" if event.get("message") else ""
        line = f"{self.mode}: {phase}{count}{node}{message}"
        if self.tty:
            click.echo(f"\r\033[K{line}", nl=False, err=True)
        else:
            click.echo(line, err=True)

    def close(self) -> None:
        if self.tty and self.last_phase is not None:
            click.echo("", err=True)


@cli.command("run")
@click.argument("source_name", metavar="SOURCE")
@click.option(
    "--mode", type=click.Choice(["healthcheck", "detect", "collect"]), default="collect", show_default=True
)
@click.option("--quiet", is_flag=True, help="No progress on stderr.")
@json_option
@click.pass_context
def run_command(ctx: click.Context, source_name: str, mode: str, quiet: bool, as_json: bool) -> None:
    """Run a source now (in this process): healthcheck, detect or collect.

    Exits 1 when the run failed or was held back; its errors and suggested actions are printed.
    """
    printer = None if quiet else ProgressPrinter(mode)
    try:
        ended = ledger_of(ctx).run_now(source_name, mode, progress=printer)
    finally:
        if printer is not None:
            printer.close()
    emit(ctx, ended.to_dict(), render.run_summary(ended), as_json=as_json)
    if ended.status != "succeeded":
        ctx.exit(EXIT_RUN_FAILED)


@cli.group()
def runs() -> None:
    """Runs: what each healthcheck, detect and collect did."""


@runs.command("list")
@click.option("--source", "source_name", help="Only this source.")
@click.option("--status", type=click.Choice(["queued", "running", "succeeded", "failed", "held"]))
@click.option("--mode", type=click.Choice(["healthcheck", "detect", "collect"]))
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@click.option("--offset", type=click.IntRange(0), default=0)
@json_option
@click.pass_context
def runs_list(
    ctx: click.Context,
    *,
    source_name: str | None,
    status: str | None,
    mode: str | None,
    limit: int,
    offset: int,
    as_json: bool,
) -> None:
    """List runs, newest first."""
    page = ledger_of(ctx).list_runs(source=source_name, status=status, mode=mode, limit=limit, offset=offset)
    footer = f"\n{len(page.items)} of {page.total} run(s)" if page.total > len(page.items) else ""
    emit(ctx, page.to_dict(), render.runs_table(page.items) + footer, as_json=as_json)


@runs.command("show")
@click.argument("run_id")
@json_option
@click.pass_context
def runs_show(ctx: click.Context, run_id: str, as_json: bool) -> None:
    """Show a run: status, detect output, counts, errors with suggested actions."""
    shown = ledger_of(ctx).get_run(run_id)
    emit(ctx, shown.to_dict(), render.run_summary(shown), as_json=as_json)


@runs.command("confirm")
@click.argument("run_id")
@click.option("--by", "confirmed_by", help="Who confirms (default: the current user).")
@json_option
@click.pass_context
def runs_confirm(ctx: click.Context, run_id: str, confirmed_by: str | None, as_json: bool) -> None:
    """Apply a snapshot the mass-disappearance guard held back."""
    who = confirmed_by or _current_user()
    ended = ledger_of(ctx).confirm_run(run_id, confirmed_by=who)
    emit(ctx, ended.to_dict(), render.run_summary(ended), as_json=as_json)


def _current_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


# ---------------------------------------------------------------------------------------------- assets


@cli.group()
def assets() -> None:
    """Assets: clusters, hosts and VMs with their relations and raw payload history."""


@assets.command("list")
@click.option("--kind", type=click.Choice(["vm", "host", "cluster"]))
@click.option("--status", type=click.Choice(["present", "missing"]))
@click.option("--source", "source_name", help="Only this source.")
@click.option("--limit", type=click.IntRange(1, 100_000), default=100, show_default=True)
@click.option("--offset", type=click.IntRange(0), default=0)
@json_option
@click.pass_context
def assets_list(
    ctx: click.Context,
    *,
    kind: str | None,
    status: str | None,
    source_name: str | None,
    limit: int,
    offset: int,
    as_json: bool,
) -> None:
    """List assets."""
    page = ledger_of(ctx).list_assets(
        source=source_name, kind=kind, status=status, limit=limit, offset=offset
    )
    footer = f"\n{len(page.items)} of {page.total} asset(s)" if page.total > len(page.items) else ""
    emit(ctx, page.to_dict(), render.assets_table(page.items) + footer, as_json=as_json)


@assets.command("show")
@click.argument("asset_id")
@click.option("--all-raw", is_flag=True, help="Print every raw payload version, not only the newest.")
@click.option(
    "--history", type=click.IntRange(1, 1000), default=20, show_default=True, help="Versions to list."
)
@json_option
@click.pass_context
def assets_show(ctx: click.Context, asset_id: str, all_raw: bool, history: int, as_json: bool) -> None:
    """Show an asset: normalized data, relations and raw payload history."""
    detail = ledger_of(ctx).get_asset(asset_id, history_limit=history)
    emit(ctx, detail.to_dict(), render.asset_block(detail, all_raw=all_raw), as_json=as_json)


# ---------------------------------------------------------------------------------------------- raw store


@cli.group("raw")
def raw_group() -> None:
    """The raw store: every raw payload and normalized record, kept as exact bytes."""


@raw_group.command("verify")
@json_option
@click.pass_context
def raw_verify(ctx: click.Context, as_json: bool) -> None:
    """Rebuild every stored blob (deltas against their base) and check it against its SHA-256 key."""
    report_ = ledger_of(ctx).verify_raw_store()
    data = {
        "blobs": report_.blobs,
        "deltas": report_.deltas,
        "problems": [{"sha256": p.sha256, "reason": p.reason} for p in report_.problems],
    }
    lines = [f"{report_.blobs} blob(s) checked ({report_.deltas} delta(s))"]
    lines += [f"  {p.sha256}: {p.reason}" for p in report_.problems]
    if not report_.problems:
        lines.append("every blob rebuilds the exact bytes its key names")
    emit(ctx, data, "\n".join(lines), as_json=as_json)
    if report_.problems:
        raise LedgerError(
            "RAW_BLOB_CORRUPT",
            f"{len(report_.problems)} of {report_.blobs} blob(s) do not rebuild their exact bytes",
        )


# ---------------------------------------------------------------------------------------------- collectors


@cli.group()
def collector() -> None:
    """Collectors: list them, or run one as a process (the contract's process form)."""


@collector.command("list")
@json_option
@click.pass_context
def collector_list(ctx: click.Context, as_json: bool) -> None:
    """List installed collectors."""
    rows = []
    for name in source_types():
        try:
            found = get_collector(name)
            rows.append({"type": name, "version": found.version, "installed": True})
        except (LedgerError, ImportError):
            rows.append({"type": name, "version": None, "installed": False})
    text = render.table(
        ["TYPE", "VERSION", "INSTALLED"],
        ([r["type"], r["version"], "yes" if r["installed"] else "no"] for r in rows),
    )
    emit(ctx, rows, text, as_json=as_json)


def _request_invalid(message: str) -> NoReturn:
    raise LedgerError("REQUEST_INVALID", message)


@collector.command("run")
@click.argument("source_type", metavar="TYPE")
@click.option("--mode", type=click.Choice(["healthcheck", "detect", "collect"]), required=True)
@click.option(
    "--request", "request_file", required=True, help="collector-request-v1 JSON file, or - for stdin."
)
@click.option("--quiet", is_flag=True, help="No progress on stderr.")
@click.pass_context
def collector_run(ctx: click.Context, source_type: str, mode: str, request_file: str, quiet: bool) -> None:
    """Answer one collector-request-v1 with a collector-response-v1 on stdout.

    Exit 0 when the response has no errors, 1 when it has, 2 on an unusable request.
    """
    try:
        text = sys.stdin.read() if request_file == "-" else Path(request_file).read_text("utf-8")
    except OSError as exc:
        _request_invalid(f"cannot read {request_file}: {exc.strerror}")
    try:
        request = json.loads(text)
    except json.JSONDecodeError as exc:
        _request_invalid(f"the request is not JSON: {exc.msg} at line {exc.lineno}")
    issues = validate("collector-request-v1", request)
    if issues:
        _request_invalid(
            "the request does not match collector-request-v1: " + "; ".join(map(str, issues[:3]))
        )
    if request["mode"] != mode:
        _request_invalid(f"/mode: the request says {request['mode']!r}, --mode says {mode!r}")
    if request["source"]["type"] != source_type:
        _request_invalid(f"/source/type: the request says {request['source']['type']!r}, not {source_type!r}")
    found = get_collector(source_type)
    printer = None if quiet else ProgressPrinter(mode)
    try:
        response: Any = asyncio.run(found.run(request, printer))
    except Exception as exc:
        response = {
            "schema_version": "collector-response-v1",
            "mode": mode,
            "source_type": source_type,
            "collector_version": found.version,
            "stats": {"inventory_complete": False},
            "errors": [
                error_entry("COLLECTOR_CRASHED", f"the {source_type} collector raised {type(exc).__name__}")
            ],
            "warnings": [],
        }
    finally:
        if printer is not None:
            printer.close()
    click.echo(json.dumps(response, ensure_ascii=False))
    problems = validate("collector-response-v1", response)
    if problems:
        report(
            LedgerError(
                "SCHEMA_VALIDATION_FAILED",
                "the response does not match collector-response-v1: " + "; ".join(map(str, problems[:3])),
            )
        )
        ctx.exit(EXIT_RUN_FAILED)
    if response["errors"]:
        for error in response["errors"]:
            render.echo_err(f"error: {error['code']}: {error['message']}")
        ctx.exit(EXIT_RUN_FAILED)


# ---------------------------------------------------------------------------------------------- entry point


def main(argv: Sequence[str] | None = None) -> None:
    """The ``asset-ledger`` console script."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="asset-ledger")
