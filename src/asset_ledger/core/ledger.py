"""The ledger service: sources, credentials, runs, snapshots and the asset views built from them.

Every interface (CLI, HTTP API, web UI, demo) calls this class and nothing below it. Failures are
``LedgerError`` with a registered code; database trouble becomes ``STORAGE_UNAVAILABLE`` (or
``LEDGER_NOT_INITIALISED``). Credentials are decrypted in exactly one place (``_build_request``) and
scrubbed from anything a collector sends back before it is stored.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, ParamSpec, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, Row
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from asset_ledger.collectors import Collector, ProgressCallback, ProgressEvent, get_collector
from asset_ledger.contract import LedgerError, error_entry
from asset_ledger.core import ingest
from asset_ledger.core.asset_search import asset_from_row, asset_select
from asset_ledger.core.ingest import redact
from asset_ledger.core.secrets import Keyring, new_key, write_key_file
from asset_ledger.core.settings import Settings
from asset_ledger.core.views import Asset, AssetDetail, Page, RawVersion, RelationEnd, Run, Source
from asset_ledger.storage import current_revision, head_revision, make_engine, raw, read_tx, upgrade, write_tx
from asset_ledger.storage.tables import (
    ACTIVE_RUN_STATUSES,
    ASSET_STATUSES,
    RUN_MODES,
    RUN_STATUSES,
    RUN_TRIGGERS,
    asset,
    credential,
    relation,
    relation_record,
    run,
    source,
    source_record,
)

log = logging.getLogger("asset_ledger.core")
#: The source table under a name that listing parameters called ``source`` cannot shadow.
SOURCE_TABLE: Final = source

P = ParamSpec("P")
R = TypeVar("R")

NAME_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
#: Credential keys treated as secret even when a collector forgets to list them.
SECRET_HINTS: Final = ("secret", "password", "passwd", "token_secret", "private")
HOST: Final = socket.gethostname()


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = _Unset()


def _now() -> datetime:
    return datetime.now(UTC)


def _storage_errors(method: Callable[P, R]) -> Callable[P, R]:
    """Turn database failures into ``STORAGE_UNAVAILABLE`` (never a driver traceback, never a secret)."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        except SQLAlchemyError as exc:
            raise LedgerError(
                "STORAGE_UNAVAILABLE", f"the database refused the operation ({ingest.db_reason(exc)})"
            ) from exc

    return wrapper


def secret_values(collector: Collector, cred: Mapping[str, Any]) -> list[str]:
    """The credential's secret strings, longest first (what is scrubbed from everything stored)."""
    values = []
    for key, value in cred.items():
        if (
            isinstance(value, str)
            and value
            and (key in collector.secret_fields or any(h in key.lower() for h in SECRET_HINTS))
        ):
            values.append(value)
    return sorted(set(values), key=len, reverse=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True, slots=True)
class _Outcome:
    status: str
    errors: list[dict[str, Any]]
    response: dict[str, Any] | None = None
    summary: dict[str, Any] | None = None
    held_sha256: str | None = None


class Ledger:
    """The asset ledger on one database. Use as a context manager, or call ``close()``."""

    def __init__(self, settings: Settings | None = None, *, engine: Engine | None = None) -> None:
        self.settings = settings or Settings.from_env()
        self.engine = engine or make_engine(self.settings.resolved_database_url)
        self._ready = False
        self._keyring: Keyring | None = None

    @classmethod
    def from_env(cls) -> Ledger:
        return cls(Settings.from_env())

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ schema

    @property
    def _sqlite_file(self) -> Path | None:
        url = self.engine.url
        if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
            return Path(str(url.database))
        return None

    @_storage_errors
    def init(self) -> str:
        """Create the schema, or upgrade it to the newest revision; returns the revision."""
        db_file = self._sqlite_file
        if db_file is not None:
            db_file.parent.mkdir(parents=True, exist_ok=True)
        revision = upgrade(self.engine)
        self._ready = True
        log.info("ledger.initialised", extra={"event": "ledger.initialised", "revision": revision})
        return revision

    def _require_schema(self) -> None:
        if self._ready:
            return
        db_file = self._sqlite_file
        if db_file is not None and not db_file.exists():
            raise LedgerError("LEDGER_NOT_INITIALISED", f"there is no ledger database at {db_file}")
        with read_tx(self.engine) as conn:
            revision = current_revision(conn)
        if revision != head_revision():
            raise LedgerError(
                "LEDGER_NOT_INITIALISED",
                f"the database schema is at {revision or 'nothing'}, this version needs {head_revision()}",
            )
        self._ready = True

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        self._require_schema()
        with read_tx(self.engine) as conn:
            yield conn

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        self._require_schema()
        with write_tx(self.engine) as conn:
            yield conn

    # ------------------------------------------------------------------ sources

    @staticmethod
    def _source_view(row: Row[Any]) -> Source:
        return Source(
            id=row.id,
            name=row.name,
            source_type=row.source_type,
            config=row.config,
            enabled=row.enabled,
            schedule_interval_s=row.schedule_interval_s,
            missing_guard_share=row.missing_guard_share,
            created_at=row.created_at,
            updated_at=row.updated_at,
            credential_set=row.credential_updated_at is not None,
            credential_updated_at=row.credential_updated_at,
        )

    @staticmethod
    def _source_query() -> sa.Select[Any]:
        return sa.select(source, credential.c.updated_at.label("credential_updated_at")).outerjoin(
            credential, credential.c.source_id == source.c.id
        )

    def _find_source(self, conn: Connection, ref: str) -> Row[Any]:
        query = self._source_query()
        row = conn.execute(query.where(source.c.name == ref)).first()
        if row is None:
            row = conn.execute(query.where(source.c.id == ref)).first()
        if row is None:
            raise LedgerError("SOURCE_NOT_FOUND", f"no source named or with id {ref!r}")
        return row

    @staticmethod
    def _check_name(name: str) -> None:
        if not NAME_RE.match(name):
            raise LedgerError(
                "SOURCE_CONFIG_INVALID",
                f"source name {name!r} must start with a letter or digit and use only letters, digits, "
                "'.', '_' and '-' (at most 200)",
            )

    @staticmethod
    def _check_share(share: float | None) -> None:
        if share is not None and not 0.0 <= share <= 1.0:
            raise LedgerError("SOURCE_CONFIG_INVALID", f"missing_guard_share={share} must be between 0 and 1")

    @staticmethod
    def _check_interval(interval: int | None) -> None:
        if interval is not None and interval < 60:
            raise LedgerError(
                "SOURCE_CONFIG_INVALID", f"schedule_interval_s={interval} must be at least 60 seconds"
            )

    @_storage_errors
    def add_source(
        self,
        name: str,
        source_type: str,
        config: Mapping[str, Any],
        *,
        enabled: bool = True,
        schedule_interval_s: int | None = None,
        missing_guard_share: float | None = None,
    ) -> Source:
        """Register a source; its config is checked (defaults filled in) by its collector."""
        self._check_name(name)
        self._check_share(missing_guard_share)
        self._check_interval(schedule_interval_s)
        checked = get_collector(source_type).check_config(dict(config))
        now = _now()
        source_id = str(uuid.uuid4())
        try:
            with self._write() as conn:
                conn.execute(
                    source.insert().values(
                        id=source_id,
                        name=name,
                        source_type=source_type,
                        config=checked,
                        enabled=enabled,
                        schedule_interval_s=schedule_interval_s,
                        missing_guard_share=missing_guard_share,
                        created_at=now,
                        updated_at=now,
                    )
                )
        except IntegrityError:
            raise LedgerError("SOURCE_EXISTS", f"a source named {name!r} already exists") from None
        log.info(
            "source.added",
            extra={"event": "source.added", "source_id": source_id, "source_type": source_type},
        )
        return self.get_source(source_id)

    @_storage_errors
    def get_source(self, ref: str) -> Source:
        """A source by name or id."""
        with self._read() as conn:
            return self._source_view(self._find_source(conn, ref))

    @_storage_errors
    def list_sources(self) -> list[Source]:
        with self._read() as conn:
            rows = conn.execute(self._source_query().order_by(source.c.name)).all()
        return [self._source_view(row) for row in rows]

    @_storage_errors
    def update_source(
        self,
        ref: str,
        *,
        name: str | None = None,
        config: Mapping[str, Any] | None = None,
        config_patch: Mapping[str, Any] | None = None,
        config_unset: tuple[str, ...] = (),
        enabled: bool | None = None,
        schedule_interval_s: int | _Unset | None = UNSET,
        missing_guard_share: float | _Unset | None = UNSET,
    ) -> Source:
        """Change a source: ``config`` replaces it, ``config_patch``/``config_unset`` edit keys of it.
        The resulting config is checked by the collector again."""
        values: dict[str, Any] = {}
        if name is not None:
            self._check_name(name)
            values["name"] = name
        if not isinstance(missing_guard_share, _Unset):
            self._check_share(missing_guard_share)
            values["missing_guard_share"] = missing_guard_share
        if not isinstance(schedule_interval_s, _Unset):
            self._check_interval(schedule_interval_s)
            values["schedule_interval_s"] = schedule_interval_s
        if enabled is not None:
            values["enabled"] = enabled
        try:
            with self._write() as conn:
                row = self._find_source(conn, ref)
                if config is not None or config_patch or config_unset:
                    new_config = dict(config if config is not None else row.config)
                    new_config.update(config_patch or {})
                    for key in config_unset:
                        new_config.pop(key, None)
                    values["config"] = get_collector(row.source_type).check_config(new_config)
                values["updated_at"] = _now()
                conn.execute(source.update().where(source.c.id == row.id).values(**values))
                source_id = row.id
        except IntegrityError:
            raise LedgerError("SOURCE_EXISTS", f"a source named {name!r} already exists") from None
        return self.get_source(source_id)

    @_storage_errors
    def remove_source(self, ref: str) -> Source:
        """Delete a source with its credential, runs, assets and relations (shared raw blobs stay)."""
        with self._write() as conn:
            row = self._find_source(conn, ref)
            view = self._source_view(row)
            active = self._active_run(conn, row.id)
            if active is not None:
                raise LedgerError("RUN_ALREADY_ACTIVE", f"run {active.id} of {row.name} is {active.status}")
            runs = sa.select(run.c.id).where(run.c.source_id == row.id).scalar_subquery()
            assets = sa.select(asset.c.id).where(asset.c.source_id == row.id).scalar_subquery()
            relations = sa.select(relation.c.id).where(relation.c.source_id == row.id).scalar_subquery()
            conn.execute(relation_record.delete().where(relation_record.c.relation_id.in_(relations)))
            conn.execute(source_record.delete().where(source_record.c.asset_id.in_(assets)))
            conn.execute(source_record.delete().where(source_record.c.run_id.in_(runs)))
            conn.execute(relation.delete().where(relation.c.source_id == row.id))
            conn.execute(asset.delete().where(asset.c.source_id == row.id))
            conn.execute(run.delete().where(run.c.source_id == row.id))
            conn.execute(credential.delete().where(credential.c.source_id == row.id))
            conn.execute(source.delete().where(source.c.id == row.id))
        log.info("source.removed", extra={"event": "source.removed", "source_id": view.id})
        return view

    # ------------------------------------------------------------------ credentials

    @property
    def keyring(self) -> Keyring:
        if self._keyring is None:
            self._keyring = Keyring.load(self.settings.secret_key, self.settings.key_file)
        return self._keyring

    @_storage_errors
    def set_credential(self, ref: str, secret: Mapping[str, Any]) -> Source:
        """Store (replace) a source's credential, encrypted; it can never be read back through the API."""
        if not isinstance(secret, Mapping) or not secret:
            raise LedgerError("CREDENTIAL_INVALID", "the credential must be a non-empty set of fields")
        current = self.get_source(ref)
        collector = get_collector(current.source_type)
        try:
            collector.check_credential(current.config, secret)
        except LedgerError as exc:
            scrub = secret_values(collector, secret)
            raise LedgerError(
                exc.code, redact(exc.message, scrub), suggested_action=redact(exc.suggested_action, scrub)
            ) from None
        ciphertext, kid = self.keyring.encrypt(secret)
        with self._write() as conn:
            conn.execute(credential.delete().where(credential.c.source_id == current.id))
            conn.execute(
                credential.insert().values(
                    source_id=current.id, ciphertext=ciphertext, key_id=kid, updated_at=_now()
                )
            )
        log.info("credential.set", extra={"event": "credential.set", "source_id": current.id, "key_id": kid})
        return self.get_source(current.id)

    @_storage_errors
    def rotate_key(self, new: bytes | None = None) -> int:
        """Re-encrypt every credential with a new key; returns how many were re-encrypted.

        With a key file, the new key (made here unless given) waits in ``secret.key.new`` until the
        re-encryption has committed, then replaces ``secret.key``. With ``ASSET_LEDGER_SECRET_KEY`` the new
        key must be given, and the caller switches the variable afterwards.
        """
        if new is None:
            if self.settings.secret_key:
                raise LedgerError(
                    "SECRET_KEY_INVALID",
                    "the key comes from ASSET_LEDGER_SECRET_KEY: give the new key, then switch the variable",
                )
            new = new_key()
        old = self.keyring
        ring = old.with_new_key(new)
        pending = self.settings.key_file.with_name(self.settings.key_file.name + ".new")
        use_file = not self.settings.secret_key
        if use_file:
            write_key_file(pending, new)
        with self._write() as conn:
            rows = conn.execute(
                sa.select(credential.c.source_id, credential.c.ciphertext, credential.c.key_id)
            ).all()
            for row in rows:
                ciphertext, kid = ring.encrypt(ring.decrypt(row.ciphertext, row.key_id))
                conn.execute(
                    credential.update()
                    .where(credential.c.source_id == row.source_id)
                    .values(ciphertext=ciphertext, key_id=kid)
                )
        if use_file:
            os.replace(pending, self.settings.key_file)
        self._keyring = Keyring(new, origin=old.origin if use_file else "the new key")
        log.info(
            "credential.key_rotated", extra={"event": "credential.key_rotated", "credentials": len(rows)}
        )
        return len(rows)

    # ------------------------------------------------------------------ runs

    def _run_query(self) -> sa.Select[Any]:
        return sa.select(run, source.c.name.label("source_name")).join(source, source.c.id == run.c.source_id)

    @staticmethod
    def _run_view(row: Row[Any]) -> Run:
        return Run(
            id=row.id,
            source_id=row.source_id,
            source_name=row.source_name,
            mode=row.mode,
            status=row.status,
            trigger=row.trigger,
            created_at=row.created_at,
            started_at=row.started_at,
            finished_at=row.finished_at,
            heartbeat_at=row.heartbeat_at,
            collector_version=row.collector_version,
            detect=row.detect,
            stats=row.stats,
            errors=row.errors,
            warnings=row.warnings,
            progress=row.progress,
            summary=row.summary,
            held=row.held_response_sha256 is not None and row.status == "held",
            confirmed_by=row.confirmed_by,
            confirmed_at=row.confirmed_at,
        )

    def _find_run(self, conn: Connection, run_id: str) -> Row[Any]:
        row = conn.execute(self._run_query().where(run.c.id == run_id)).first()
        if row is None and len(run_id) >= 6 and re.fullmatch(r"[0-9a-f-]+", run_id):
            rows = conn.execute(self._run_query().where(run.c.id.startswith(run_id)).limit(2)).all()
            row = rows[0] if len(rows) == 1 else None
        if row is None:
            raise LedgerError("RUN_NOT_FOUND", f"no run with id {run_id!r}")
        return row

    def _active_run(self, conn: Connection, source_id: str) -> Row[Any] | None:
        return conn.execute(
            sa.select(run).where(run.c.source_id == source_id, run.c.status.in_(ACTIVE_RUN_STATUSES))
        ).first()

    def _abandoned(self, row: Row[Any], now: datetime) -> str | None:
        """Why an active run is dead (its process is gone or its lease expired), or ``None`` if alive."""
        if row.owner:
            host, _, pid = str(row.owner).rpartition(":")
            if host == HOST and pid.isdigit() and not _pid_alive(int(pid)):
                return f"its process {pid} on {host} is gone"
        if row.heartbeat_at < now - timedelta(seconds=self.settings.run_lease_s):
            return f"its last heartbeat was at {row.heartbeat_at.isoformat()}"
        return None

    def _expire_abandoned(self, conn: Connection, source_id: str, now: datetime) -> None:
        row = self._active_run(conn, source_id)
        if row is None:
            return
        reason = self._abandoned(row, now)
        if reason is None:
            return
        error = error_entry(
            "RUN_ABANDONED", f"run {row.id} was {row.status} but {reason}; nothing was applied"
        )
        conn.execute(
            run.update()
            .where(run.c.id == row.id, run.c.status == row.status)
            .values(status="failed", finished_at=now, errors=[*row.errors, error])
        )
        log.warning(
            "run.abandoned",
            extra={"event": "run.abandoned", "run_id": row.id, "source_id": source_id, "reason": reason},
        )

    @_storage_errors
    def create_run(self, ref: str, mode: str, *, trigger: str = "manual", owner: str | None = None) -> Run:
        """Queue a run; ``RUN_ALREADY_ACTIVE`` while another run of the source is queued or running.

        ``owner`` claims the run for a process at once (workers leave it alone, and it is failed as
        abandoned as soon as that process is gone); without it the run waits for a worker."""
        if mode not in RUN_MODES:
            raise LedgerError("REQUEST_INVALID", f"mode {mode!r} is not one of {', '.join(RUN_MODES)}")
        if trigger not in RUN_TRIGGERS:
            raise LedgerError(
                "REQUEST_INVALID", f"trigger {trigger!r} is not one of {', '.join(RUN_TRIGGERS)}"
            )
        run_id = str(uuid.uuid4())
        try:
            with self._write() as conn:
                row = self._find_source(conn, ref)
                if not row.enabled:
                    raise LedgerError("SOURCE_DISABLED", f"source {row.name} is disabled")
                if get_collector(row.source_type).secret_fields and row.credential_updated_at is None:
                    raise LedgerError("CREDENTIAL_MISSING", f"source {row.name} has no credential")
                now = _now()
                self._expire_abandoned(conn, row.id, now)
                active = self._active_run(conn, row.id)
                if active is not None:
                    raise LedgerError(
                        "RUN_ALREADY_ACTIVE", f"run {active.id} of {row.name} is {active.status}"
                    )
                conn.execute(
                    run.insert().values(
                        id=run_id,
                        source_id=row.id,
                        mode=mode,
                        status="queued",
                        trigger=trigger,
                        created_at=now,
                        heartbeat_at=now,
                        owner=owner,
                        errors=[],
                        warnings=[],
                    )
                )
        except IntegrityError:
            raise LedgerError(
                "RUN_ALREADY_ACTIVE", f"another run of {ref} was started at the same moment"
            ) from None
        return self.get_run(run_id)

    @_storage_errors
    def get_run(self, run_id: str) -> Run:
        """A run by id (or an unambiguous prefix of at least 6 characters)."""
        with self._read() as conn:
            return self._run_view(self._find_run(conn, run_id))

    @_storage_errors
    def list_runs(
        self,
        *,
        source: str | None = None,
        status: str | None = None,
        mode: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> Page[Run]:
        """Runs, newest first; ``mode`` is healthcheck, detect or collect."""
        if status is not None and status not in RUN_STATUSES:
            raise LedgerError("REQUEST_INVALID", f"status {status!r} is not one of {', '.join(RUN_STATUSES)}")
        if mode is not None and mode not in RUN_MODES:
            raise LedgerError("REQUEST_INVALID", f"mode {mode!r} is not one of {', '.join(RUN_MODES)}")
        with self._read() as conn:
            conditions = []
            if source is not None:
                conditions.append(run.c.source_id == self._find_source(conn, source).id)
            if status is not None:
                conditions.append(run.c.status == status)
            if mode is not None:
                conditions.append(run.c.mode == mode)
            total = conn.scalar(sa.select(sa.func.count()).select_from(run).where(*conditions)) or 0
            rows = conn.execute(
                self._run_query()
                .where(*conditions)
                .order_by(run.c.created_at.desc(), run.c.id)
                .limit(limit)
                .offset(offset)
            ).all()
        return Page([self._run_view(r) for r in rows], total, limit, offset)

    def run_now(
        self, ref: str, mode: str, *, progress: ProgressCallback | None = None, trigger: str = "manual"
    ) -> Run:
        """Queue a run and execute it in this process."""
        # Claimed by this process from the start: if it dies before executing, the run is not left queued
        # blocking the source until its lease runs out.
        queued = self.create_run(ref, mode, trigger=trigger, owner=f"{HOST}:{os.getpid()}")
        return self.execute_run(queued.id, progress=progress)

    @_storage_errors
    def execute_run(self, run_id: str, *, progress: ProgressCallback | None = None) -> Run:
        """Execute a queued run: call its collector, check the response, apply it; returns the ended run.

        The run itself failing (collector errors, ingest rules, a held snapshot) is not an exception: the
        returned run says ``failed`` or ``held`` and carries the errors.
        """
        owner = f"{HOST}:{os.getpid()}"
        with self._write() as conn:
            row = self._find_run(conn, run_id)
            if row.status != "queued":
                raise LedgerError("RUN_NOT_QUEUED", f"run {row.id} is {row.status}, not queued")
            now = _now()
            conn.execute(
                run.update()
                .where(run.c.id == row.id)
                .values(status="running", started_at=now, heartbeat_at=now, owner=owner)
            )
            src = self._find_source(conn, row.source_id)
            run_id = row.id
        log.info(
            "run.started",
            extra={"event": "run.started", "run_id": run_id, "source_id": src.id, "mode": row.mode},
        )
        started = time.monotonic()
        heartbeat = _Heartbeat(
            self.engine, run_id, interval=max(1.0, min(30.0, self.settings.run_lease_s / 4))
        )
        heartbeat.start()
        try:
            outcome = self._execute(run_id, row.mode, src, progress)
        except BaseException as exc:
            heartbeat.stop()
            self._finish(
                run_id,
                _Outcome("failed", [error_entry("INTERNAL_ERROR", f"{type(exc).__name__} while running")]),
            )
            raise
        heartbeat.stop()
        self._finish(run_id, outcome)
        ended = self.get_run(run_id)
        log.log(
            logging.INFO if ended.status == "succeeded" else logging.WARNING,
            "run.finished",
            extra={
                "event": "run.finished",
                "run_id": run_id,
                "source_id": src.id,
                "mode": ended.mode,
                "status": ended.status,
                "error_codes": [e["code"] for e in ended.errors],
                "duration_ms": int((time.monotonic() - started) * 1000),
            },
        )
        return ended

    def _build_request(self, run_id: str, mode: str, src: Row[Any], collector: Collector) -> dict[str, Any]:
        request: dict[str, Any] = {
            "schema_version": "collector-request-v1",
            "mode": mode,
            "run_id": run_id,
            "source": {"id": src.id, "type": src.source_type, "name": src.name, "config": src.config},
            "credential": None,
        }
        with self._read() as conn:
            stored = conn.execute(sa.select(credential).where(credential.c.source_id == src.id)).first()
        if stored is None:
            if collector.secret_fields:
                raise LedgerError("CREDENTIAL_MISSING", f"source {src.name} has no credential")
        else:
            request["credential"] = self.keyring.decrypt(stored.ciphertext, stored.key_id)
        return request

    def _execute(self, run_id: str, mode: str, src: Row[Any], progress: ProgressCallback | None) -> _Outcome:
        secrets: list[str] = []
        try:
            collector = get_collector(src.source_type)
            request = self._build_request(run_id, mode, src, collector)
            secrets = secret_values(collector, request["credential"] or {})
            reporter = _ProgressRecorder(self.engine, run_id, progress)
            try:
                response: Any = asyncio.run(collector.run(request, reporter))
            except Exception as exc:
                # Only the type: an exception's text may quote a URL, a header or the credential itself.
                raise LedgerError(
                    "COLLECTOR_CRASHED", f"the {src.source_type} collector raised {type(exc).__name__}"
                ) from None
            finally:
                del request
            if isinstance(response, dict):
                # The run record must never quote a secret, whatever a collector puts in its messages.
                for field in ("errors", "warnings", "detect", "stats"):
                    if field in response:
                        response[field] = redact(response[field], secrets)
            problems = ingest.validate_response(response, mode=mode, source_type=src.source_type)
            if problems:
                return _Outcome("failed", problems, response if isinstance(response, dict) else None)
            if response["errors"]:
                return _Outcome("failed", response["errors"], response)
            if mode != "collect":
                return _Outcome("succeeded", [], response)
            problems = ingest.check_snapshot(response)
            if problems:
                return _Outcome("failed", problems, response)
            return self._apply(run_id, src, response, guarded=True, secrets=secrets)
        except LedgerError as exc:
            return _Outcome("failed", [redact(exc.as_error(), secrets)])
        except SQLAlchemyError as exc:
            # The database failed mid-run (connection killed, disk full, read-only): the snapshot's
            # transaction rolled back; the run says why, if the database lets us record it.
            message = (
                f"the database failed while the run was applied ({ingest.db_reason(exc)}); nothing changed"
            )
            return _Outcome("failed", [error_entry("STORAGE_UNAVAILABLE", redact(message, secrets))])

    def _guard(self, src: Row[Any]) -> ingest.Guard:
        share = src.missing_guard_share
        return ingest.Guard(
            share=self.settings.missing_guard_share if share is None else share,
            min_known=self.settings.missing_guard_min_known,
        )

    def _apply(
        self, run_id: str, src: Row[Any], response: dict[str, Any], *, guarded: bool, secrets: list[str]
    ) -> _Outcome:
        """Apply a snapshot and end the run in the same transaction (all of it lands, or none)."""
        now = _now()
        with self._write() as conn:
            # The run must still be this process's: a run failed as abandoned while its process stalled
            # (lease expired) may already have a newer run after it, which a late snapshot must not undo.
            current = conn.execute(
                sa.select(run.c.status, run.c.owner).where(run.c.id == run_id).with_for_update()
            ).first()
            if current is None or current.status != "running" or current.owner != f"{HOST}:{os.getpid()}":
                log.warning(
                    "run.snapshot_discarded",
                    extra={"event": "run.snapshot_discarded", "run_id": run_id, "source_id": src.id},
                )
                return _Outcome(
                    "failed",
                    [
                        error_entry(
                            "RUN_ABANDONED",
                            f"run {run_id} was ended by another process while it collected; "
                            "its snapshot was discarded",
                        )
                    ],
                )
            result = ingest.apply_snapshot(
                conn,
                source_id=src.id,
                run_id=run_id,
                response=response,
                now=now,
                guard=self._guard(src) if guarded else None,
                secrets=secrets,
            )
            if isinstance(result, ingest.Held):
                guard = self._guard(src)
                held_sha = raw.put_json(conn, ingest.scrub(response, secrets))
                error = error_entry(
                    "INVENTORY_MASS_DISAPPEARANCE",
                    f"the snapshot would mark {result.disappearing} of {result.known} known assets missing "
                    f"(more than {guard.share:.0%}); it was held back, nothing changed",
                    context={
                        "known": result.known,
                        "disappearing": result.disappearing,
                        "share": guard.share,
                    },
                )
                outcome = _Outcome("held", [error], response, held_sha256=held_sha)
            else:
                outcome = _Outcome("succeeded", [], response, summary=dict(result))
                # An older held snapshot must never be applied over a newer one.
                conn.execute(
                    run.update()
                    .where(run.c.source_id == src.id, run.c.status == "held", run.c.id != run_id)
                    .values(status="failed", summary={"superseded_by": run_id})
                )
            self._finish_in(conn, run_id, outcome, now)
        return outcome

    def _finish(self, run_id: str, outcome: _Outcome) -> None:
        with self._write() as conn:
            current = conn.scalar(sa.select(run.c.status).where(run.c.id == run_id))
            if current in ACTIVE_RUN_STATUSES:
                self._finish_in(conn, run_id, outcome, _now())

    @staticmethod
    def _finish_in(conn: Connection, run_id: str, outcome: _Outcome, now: datetime) -> None:
        response = outcome.response or {}
        values: dict[str, Any] = {
            "status": outcome.status,
            "finished_at": now,
            "heartbeat_at": now,
            "errors": outcome.errors,
            "warnings": response.get("warnings") or [],
            "summary": outcome.summary,
            "held_response_sha256": outcome.held_sha256,
        }
        if response:
            values["collector_version"] = str(response.get("collector_version", ""))[:100] or None
            values["detect"] = response.get("detect")
            values["stats"] = response.get("stats")
        conn.execute(run.update().where(run.c.id == run_id).values(**values))

    @_storage_errors
    def confirm_run(self, run_id: str, *, confirmed_by: str) -> Run:
        """Apply a snapshot the mass-disappearance guard held back (an admin's explicit decision)."""
        with self._write() as conn:
            row = self._find_run(conn, run_id)
            if row.status != "held" or row.held_response_sha256 is None:
                raise LedgerError("RUN_NOT_HELD", f"run {row.id} is {row.status}, not held")
            active = self._active_run(conn, row.source_id)
            if active is not None:
                raise LedgerError(
                    "RUN_ALREADY_ACTIVE", f"run {active.id} of {row.source_name} is {active.status}"
                )
            data = raw.get(conn, row.held_response_sha256)
            src = self._find_source(conn, row.source_id)
            held_error = row.errors
            # Take the source's run slot while applying, as any run does.
            now = _now()
            conn.execute(
                run.update()
                .where(run.c.id == row.id)
                .values(status="running", heartbeat_at=now, owner=f"{HOST}:{os.getpid()}")
            )
        if data is None:
            raise LedgerError(
                "RAW_BLOB_CORRUPT",
                f"the response held by run {row.id} ({row.held_response_sha256}) is not in the raw store",
                context={"sha256": row.held_response_sha256},
            )
        response = json.loads(data)
        try:
            outcome = self._apply(row.id, src, response, guarded=False, secrets=[])
        except BaseException:
            with self._write() as conn:
                conn.execute(run.update().where(run.c.id == row.id).values(status="held", errors=held_error))
            raise
        with self._write() as conn:
            conn.execute(
                run.update()
                .where(run.c.id == row.id)
                .values(
                    confirmed_by=confirmed_by,
                    confirmed_at=_now(),
                    summary={**(outcome.summary or {}), "held_because": held_error[0]["message"]},
                )
            )
        log.warning(
            "run.confirmed",
            extra={
                "event": "run.confirmed",
                "run_id": row.id,
                "source_id": src.id,
                "confirmed_by": confirmed_by,
            },
        )
        return self.get_run(row.id)

    # ------------------------------------------------------------------ assets

    @_storage_errors
    def list_assets(
        self,
        *,
        source: str | None = None,
        kind: str | None = None,
        status: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> Page[Asset]:
        """Assets, ordered by source, kind and name."""
        if status is not None and status not in ASSET_STATUSES:
            raise LedgerError(
                "REQUEST_INVALID", f"status {status!r} is not one of {', '.join(ASSET_STATUSES)}"
            )
        with self._read() as conn:
            conditions = []
            if source is not None:
                conditions.append(asset.c.source_id == self._find_source(conn, source).id)
            if kind is not None:
                conditions.append(asset.c.external_kind == kind)
            if status is not None:
                conditions.append(asset.c.status == status)
            total = conn.scalar(sa.select(sa.func.count()).select_from(asset).where(*conditions)) or 0
            rows = conn.execute(
                asset_select()
                .where(*conditions)
                .order_by(
                    SOURCE_TABLE.c.name, asset.c.external_kind, asset.c.display_name, asset.c.external_id
                )
                .limit(limit)
                .offset(offset)
            ).all()
        return Page([asset_from_row(r) for r in rows], total, limit, offset)

    @_storage_errors
    def get_asset(self, asset_id: str, *, history_limit: int = 20) -> AssetDetail:
        """An asset with its relations (both directions) and its distinct raw payloads, newest first."""
        with self._read() as conn:
            row = conn.execute(asset_select().where(asset.c.id == asset_id)).first()
            if row is None and len(asset_id) >= 6 and re.fullmatch(r"[0-9a-f-]+", asset_id):
                rows = conn.execute(asset_select().where(asset.c.id.startswith(asset_id)).limit(2)).all()
                row = rows[0] if len(rows) == 1 else None
            if row is None:
                raise LedgerError("ASSET_NOT_FOUND", f"no asset with id {asset_id!r}")
            view = asset_from_row(row)
            return AssetDetail(
                view, self._relations_of(conn, view.id), self._raw_history(conn, view.id, history_limit)
            )

    @staticmethod
    def _relations_of(conn: Connection, asset_id: str) -> list[RelationEnd]:
        other = asset.alias("other")
        ends: list[RelationEnd] = []
        for direction, mine, theirs in (
            ("out", relation.c.from_asset_id, relation.c.to_asset_id),
            ("in", relation.c.to_asset_id, relation.c.from_asset_id),
        ):
            rows = conn.execute(
                sa.select(
                    relation,
                    other.c.external_kind,
                    other.c.external_id,
                    other.c.display_name,
                    source.c.last_snapshot_at,
                )
                .join(other, other.c.id == theirs)
                .join(source, source.c.id == relation.c.source_id)
                .where(mine == asset_id)
                .order_by(relation.c.status.desc(), relation.c.type, other.c.display_name)
            ).all()
            ends.extend(
                RelationEnd(
                    type=r.type,
                    direction=direction,
                    status=r.status,
                    other_id=r.to_asset_id if direction == "out" else r.from_asset_id,
                    other_kind=r.external_kind,
                    other_external_id=r.external_id,
                    other_name=r.display_name,
                    first_seen_at=r.first_seen_at,
                    last_seen_at=r.last_snapshot_at if r.status == "present" else r.last_seen_at,
                    missing_since=r.missing_since,
                )
                for r in rows
            )
        return ends

    @staticmethod
    def _raw_history(conn: Connection, asset_id: str, limit: int) -> list[RawVersion]:
        started = sa.func.coalesce(run.c.started_at, run.c.created_at)
        rows = conn.execute(
            sa.select(
                source_record.c.raw_sha256,
                sa.func.count().label("runs"),
                sa.func.min(started).label("first_seen_at"),
                sa.func.max(started).label("last_seen_at"),
                sa.func.min(source_record.c.id).label("first_record"),
                sa.func.max(source_record.c.id).label("last_record"),
            )
            .join(run, run.c.id == source_record.c.run_id)
            .where(source_record.c.asset_id == asset_id)
            .group_by(source_record.c.raw_sha256)
            .order_by(sa.func.max(source_record.c.id).desc())
            .limit(limit)
        ).all()
        # Every version in one read; a delta is rebuilt against its base (RAW_BLOB_CORRUPT if it cannot be).
        payloads = raw.get_many(conn, [r.raw_sha256 for r in rows])
        versions = []
        for r in rows:
            first_run, last_run = (
                conn.scalar(sa.select(source_record.c.run_id).where(source_record.c.id == record_id))
                for record_id in (r.first_record, r.last_record)
            )
            data = payloads.get(r.raw_sha256)
            if data is None:
                raise LedgerError(
                    "RAW_BLOB_CORRUPT",
                    f"raw blob {r.raw_sha256} of asset {asset_id} is missing from the raw store",
                    context={"sha256": r.raw_sha256},
                )
            versions.append(
                RawVersion(
                    sha256=r.raw_sha256,
                    first_run_id=str(first_run),
                    last_run_id=str(last_run),
                    runs=r.runs,
                    first_seen_at=_utc(r.first_seen_at),
                    last_seen_at=_utc(r.last_seen_at),
                    size_raw=len(data),
                    data=data,
                )
            )
        return versions

    @_storage_errors
    def raw_payload(self, sha256: str) -> bytes:
        """The exact bytes of a stored raw payload."""
        with self._read() as conn:
            data = raw.get(conn, sha256)
        if data is None:
            raise LedgerError("ASSET_NOT_FOUND", f"no raw payload {sha256}")
        return data

    @_storage_errors
    def verify_raw_store(self) -> raw.VerifyReport:
        """Rebuild every stored blob (deltas against their base) and check each against its SHA-256 key."""
        with self._read() as conn:
            return raw.verify(conn)

    @_storage_errors
    def raw_store_bytes(self) -> int:
        """Compressed bytes held by the raw store."""
        with self._read() as conn:
            return raw.stored_bytes(conn)


def _utc(value: Any) -> datetime | None:
    """Aggregates bypass column types on SQLite (they come back as text); make them UTC datetimes."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class _Heartbeat:
    """Refreshes a running run's lease from a side thread, so a live run is never taken for abandoned."""

    def __init__(self, engine: Engine, run_id: str, *, interval: float) -> None:
        self._engine = engine
        self._run_id = run_id
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"heartbeat-{run_id[:8]}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                with write_tx(self._engine) as conn:
                    conn.execute(
                        run.update()
                        .where(run.c.id == self._run_id, run.c.status == "running")
                        .values(heartbeat_at=_now())
                    )
            except SQLAlchemyError as exc:
                log.warning(
                    "run.heartbeat_failed",
                    extra={
                        "event": "run.heartbeat_failed",
                        "run_id": self._run_id,
                        "reason": ingest.db_reason(exc),
                    },
                )


class _ProgressRecorder:
    """Passes a collector's progress events on and keeps the latest one on the run (at most once a second)."""

    def __init__(self, engine: Engine, run_id: str, forward: ProgressCallback | None) -> None:
        self._engine = engine
        self._run_id = run_id
        self._forward = forward
        self._last_write = 0.0

    def __call__(self, event: ProgressEvent) -> None:
        if self._forward is not None:
            self._forward(event)
        now = time.monotonic()
        if now - self._last_write < 1.0 and event.get("done") != event.get("total"):
            return
        self._last_write = now
        try:
            with write_tx(self._engine) as conn:
                conn.execute(
                    run.update()
                    .where(run.c.id == self._run_id)
                    .values(progress=dict(event), heartbeat_at=_now())
                )
        except SQLAlchemyError as exc:
            log.warning(
                "run.progress_not_saved",
                extra={
                    "event": "run.progress_not_saved",
                    "run_id": self._run_id,
                    "reason": ingest.db_reason(exc),
                },
            )
