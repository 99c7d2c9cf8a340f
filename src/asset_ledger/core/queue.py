"""The run queue: workers claim queued runs, schedules queue collects, dead workers' runs end failed.

A run is queued by ``Ledger.create_run`` (UI, API, CLI or a schedule) and executed by ``Ledger.execute_run``.
This module adds what several workers on several machines need around that:

- *claiming*: a worker marks one queued, unclaimed run as its own in a short transaction. On PostgreSQL the
  candidate row is locked with ``SELECT ... FOR UPDATE SKIP LOCKED``, so concurrent workers never pick the
  same run and never wait on each other; on SQLite the write lock (``BEGIN IMMEDIATE``) serialises claims.
- *leases*: a running run's heartbeat is refreshed by the process executing it; a run whose heartbeat is
  older than the lease (``ASSET_LEDGER_RUN_LEASE_S``), or whose process on this host is gone, is marked
  failed with ``RUN_ABANDONED`` by whichever worker looks next.
- *schedules*: a source with ``schedule_interval_s`` gets a ``collect`` (trigger ``schedule``) queued once its
  last collect is that old. At most one active run per source is the database's own rule, so two workers
  queueing the same schedule at once cannot both succeed.

It never runs a collector itself and never decides what a run's outcome means.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from asset_ledger.contract import LedgerError, error_entry
from asset_ledger.core.ledger import Ledger
from asset_ledger.storage import read_tx, write_tx
from asset_ledger.storage.tables import ACTIVE_RUN_STATUSES, asset, credential, run, source

log = logging.getLogger("asset_ledger.queue")
HOST = socket.gethostname()


def _now() -> datetime:
    return datetime.now(UTC)


def worker_owner() -> str:
    """How a run records the process executing it (the same form the core writes)."""
    return f"{HOST}:{os.getpid()}"


def ping(engine: Engine) -> None:
    """``STORAGE_UNAVAILABLE`` unless the database answers."""
    try:
        with read_tx(engine) as conn:
            conn.execute(sa.text("SELECT 1"))
    except SQLAlchemyError:
        raise LedgerError("STORAGE_UNAVAILABLE", "the database does not answer") from None


# ---------------------------------------------------------------------------------------------- claiming


def claim_next(engine: Engine, owner: str | None = None) -> str | None:
    """Claim the oldest queued, unclaimed run for ``owner``; its id, or ``None`` when there is none."""
    owner = owner or worker_owner()
    now = _now()
    with write_tx(engine) as conn:
        candidate = (
            sa.select(run.c.id)
            .where(run.c.status == "queued", run.c.owner.is_(None))
            .order_by(run.c.created_at, run.c.id)
            .limit(1)
        )
        if conn.dialect.name == "postgresql":
            candidate = candidate.with_for_update(skip_locked=True)
        run_id = conn.scalar(candidate)
        if run_id is None:
            return None
        claimed = conn.execute(
            run.update()
            .where(run.c.id == run_id, run.c.status == "queued", run.c.owner.is_(None))
            .values(owner=owner, heartbeat_at=now)
        ).rowcount
    return str(run_id) if claimed == 1 else None


# ------------------------------------------------------------------------------------------------ leases


def _pid_gone(owner: str | None) -> bool:
    if not owner:
        return False
    host, _, pid = owner.rpartition(":")
    if host != HOST or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def expire_abandoned(engine: Engine, lease_s: float) -> list[str]:
    """Mark failed (``RUN_ABANDONED``) every claimed or running run whose lease expired or whose process on
    this host is gone; returns their ids. Nothing of such a run was applied: a snapshot lands in the same
    transaction that ends its run."""
    now = _now()
    expired: list[str] = []
    with write_tx(engine) as conn:
        query = sa.select(run.c.id, run.c.status, run.c.owner, run.c.heartbeat_at, run.c.errors).where(
            run.c.status.in_(ACTIVE_RUN_STATUSES), run.c.owner.is_not(None)
        )
        if conn.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        for row in conn.execute(query).all():
            if row.heartbeat_at < now - timedelta(seconds=lease_s):
                reason = f"its last heartbeat was at {row.heartbeat_at.isoformat()} (lease {lease_s:g} s)"
            elif _pid_gone(row.owner):
                reason = f"its process {row.owner} is gone"
            else:
                continue
            error = error_entry(
                "RUN_ABANDONED", f"run {row.id} was {row.status} but {reason}; nothing was applied"
            )
            done = conn.execute(
                run.update()
                .where(run.c.id == row.id, run.c.status == row.status, run.c.owner == row.owner)
                .values(status="failed", finished_at=now, errors=[*(row.errors or []), error])
            ).rowcount
            if done:
                expired.append(row.id)
                log.warning(
                    "run.abandoned", extra={"event": "run.abandoned", "run_id": row.id, "reason": reason}
                )
    return expired


# --------------------------------------------------------------------------------------------- schedules


def _last_collect_at(conn: Connection) -> dict[str, datetime]:
    rows = conn.execute(
        sa.select(run.c.source_id, sa.func.max(run.c.created_at).label("last"))
        .where(run.c.mode == "collect")
        .group_by(run.c.source_id)
    ).all()
    result: dict[str, datetime] = {}
    for row in rows:
        value = row.last
        if isinstance(value, str):  # aggregates bypass the column type on SQLite
            value = datetime.fromisoformat(value)
        result[row.source_id] = value.replace(tzinfo=UTC) if value.tzinfo is None else value
    return result


def next_scheduled(engine: Engine) -> dict[str, datetime]:
    """When each scheduled, enabled source's next collect is due (now or later)."""
    with read_tx(engine) as conn:
        last = _last_collect_at(conn)
        rows = conn.execute(
            sa.select(source.c.id, source.c.schedule_interval_s, source.c.created_at).where(
                source.c.enabled.is_(True), source.c.schedule_interval_s.is_not(None)
            )
        ).all()
    due: dict[str, datetime] = {}
    for row in rows:
        previous = last.get(row.id)
        due[row.id] = (
            row.created_at if previous is None else previous + timedelta(seconds=row.schedule_interval_s)
        )
    return due


def queue_due(ledger: Ledger) -> list[str]:
    """Queue a scheduled collect for every source whose interval has passed; returns the new run ids."""
    now = _now()
    with read_tx(ledger.engine) as conn:
        with_credential = set(conn.scalars(sa.select(credential.c.source_id)))
    queued: list[str] = []
    for source_id, due_at in next_scheduled(ledger.engine).items():
        if due_at > now or source_id not in with_credential:
            continue
        try:
            queued.append(ledger.create_run(source_id, "collect", trigger="schedule").id)
        except LedgerError as exc:
            if exc.code not in (
                "RUN_ALREADY_ACTIVE",
                "SOURCE_DISABLED",
                "CREDENTIAL_MISSING",
                "SOURCE_NOT_FOUND",
            ):
                raise
    return queued


# ------------------------------------------------------------------------------------------------ worker


@dataclass
class Worker:
    """One worker: expires dead runs, queues due schedules, claims and executes queued runs."""

    ledger: Ledger
    poll_s: float = 2.0
    schedules: bool = True
    owner: str = field(default_factory=worker_owner)
    stop_event: threading.Event = field(default_factory=threading.Event)

    def run_once(self) -> str | None:
        """One round; the id of the run executed, if any."""
        expire_abandoned(self.ledger.engine, self.ledger.settings.run_lease_s)
        if self.schedules:
            queue_due(self.ledger)
        run_id = claim_next(self.ledger.engine, self.owner)
        if run_id is None:
            return None
        try:
            ended = self.ledger.execute_run(run_id)
        except LedgerError as exc:
            if exc.code != "RUN_NOT_QUEUED":
                raise
            return None
        log.info("worker.ran", extra={"event": "worker.ran", "run_id": run_id, "status": ended.status})
        return run_id

    def serve(self) -> None:
        """Loop until ``stop()``: rounds back to back while there is work, a pause when there is none."""
        log.info("worker.started", extra={"event": "worker.started", "owner": self.owner})
        while not self.stop_event.is_set():
            try:
                busy = self.run_once() is not None
            except LedgerError as exc:
                log.warning("worker.round_failed", extra={"event": "worker.round_failed", "code": exc.code})
                busy = False
            except SQLAlchemyError as exc:
                log.warning(
                    "worker.round_failed",
                    extra={
                        "event": "worker.round_failed",
                        "code": "STORAGE_UNAVAILABLE",
                        "reason": type(exc).__name__,
                    },
                )
                busy = False
            except Exception as exc:
                # The core has already ended the run as failed; the worker lives on. Only the type is
                # logged: an exception's text may quote a credential.
                log.error(
                    "worker.round_failed",
                    extra={
                        "event": "worker.round_failed",
                        "code": "INTERNAL_ERROR",
                        "reason": type(exc).__name__,
                    },
                )
                busy = False
            if not busy:
                self.stop_event.wait(self.poll_s)
        log.info("worker.stopped", extra={"event": "worker.stopped", "owner": self.owner})

    def stop(self) -> None:
        self.stop_event.set()


# -------------------------------------------------------------------------------------- service figures


@dataclass(frozen=True, slots=True)
class ServiceFigures:
    finished: dict[tuple[str, str], int]
    durations: dict[str, tuple[int, float]]
    active: dict[str, int]
    assets: dict[tuple[str, str], int]


def service_figures(engine: Engine) -> ServiceFigures:
    """Counts for ``/metrics``: ended runs by mode and status, their durations, the queue, the assets."""
    with read_tx(engine) as conn:
        finished: dict[tuple[str, str], int] = {}
        durations: dict[str, tuple[int, float]] = {}
        for row in conn.execute(
            sa.select(run.c.mode, run.c.status, run.c.started_at, run.c.finished_at).where(
                run.c.status.not_in(ACTIVE_RUN_STATUSES)
            )
        ):
            finished[(row.mode, row.status)] = finished.get((row.mode, row.status), 0) + 1
            if row.started_at is not None and row.finished_at is not None:
                count, total = durations.get(row.mode, (0, 0.0))
                durations[row.mode] = (count + 1, total + (row.finished_at - row.started_at).total_seconds())
        active = {status: 0 for status in ACTIVE_RUN_STATUSES}
        for status, count in conn.execute(
            sa.select(run.c.status, sa.func.count())
            .where(run.c.status.in_(ACTIVE_RUN_STATUSES))
            .group_by(run.c.status)
        ):
            active[status] = int(count)
        assets = {
            (kind, status): int(count)
            for kind, status, count in conn.execute(
                sa.select(asset.c.external_kind, asset.c.status, sa.func.count()).group_by(
                    asset.c.external_kind, asset.c.status
                )
            )
        }
    return ServiceFigures(finished=finished, durations=durations, active=active, assets=assets)


def latest_runs(engine: Engine) -> dict[str, dict[str, dict[str, Any]]]:
    """Per source and mode, the newest run's id, status and times (for the sources page)."""
    newest = (
        sa.select(run.c.source_id, run.c.mode, sa.func.max(run.c.created_at).label("created_at"))
        .group_by(run.c.source_id, run.c.mode)
        .subquery()
    )
    with read_tx(engine) as conn:
        rows = conn.execute(
            sa.select(
                run.c.id, run.c.source_id, run.c.mode, run.c.status, run.c.created_at, run.c.finished_at
            ).join(
                newest,
                sa.and_(
                    run.c.source_id == newest.c.source_id,
                    run.c.mode == newest.c.mode,
                    run.c.created_at == newest.c.created_at,
                ),
            )
        ).all()
    result: dict[str, dict[str, dict[str, Any]]] = {}
    for row in rows:
        result.setdefault(row.source_id, {})[row.mode] = {
            "id": row.id,
            "status": row.status,
            "created_at": row.created_at,
            "finished_at": row.finished_at,
        }
    return result
