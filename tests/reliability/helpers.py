"""Shared helpers of the reliability tests: a ledger with a real ``pve`` source on pvesim, and the ledger's
full state (assets, relations, records, raw blobs) to compare before and after a run."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from asset_ledger.core import Ledger, Source
from pvesim import SimServer, Topology

TABLES = ("asset", "relation", "source_record", "relation_record", "raw_blob")


def small_topology(**overrides: Any) -> Topology:
    spec: dict[str, Any] = {"seed": 11, "nodes": 3, "qemu": 8, "lxc": 3, "agent_not_running": 1}
    spec.update(overrides)
    return Topology.generate(**spec)


def add_pve_source(
    ledger: Ledger,
    server: SimServer,
    name: str = "pve",
    principal: str = "reader",
    auth: str | None = None,
    **config: Any,
) -> Source:
    auth = auth or ("api_token" if _has_tokens(server.profile.name) else "user_password")
    cfg: dict[str, Any] = {"endpoint": server.url, "auth_type": auth, "timeout_ms": 5000}
    if "tls_fingerprint" not in config and config.get("tls_verify", True):
        cfg["tls_ca_bundle"] = server.ca_path
    cfg.update(config)
    source = ledger.add_source(name, "pve", cfg)
    ledger.set_credential(name, server.credentials(principal, auth=auth))
    return source


def _has_tokens(profile: str) -> bool:
    major, minor = (int(p) for p in profile.split("-", maxsplit=1)[0].split(".")[:2])
    return (major, minor) >= (6, 2)


def ledger_state(ledger: Ledger) -> dict[str, Any]:
    """Everything a snapshot can change: every row of the asset, relation and record tables, the raw blob
    keys, and each source's last snapshot pointer (runs themselves are excluded: a run always ends)."""
    state: dict[str, Any] = {}
    with ledger.engine.connect() as conn:
        for name in TABLES:
            table = sa.Table(name, sa.MetaData(), autoload_with=conn)
            columns = [c for c in table.c if c.name != "data"]
            rows = conn.execute(sa.select(*columns)).mappings().all()
            state[name] = sorted(repr(sorted(dict(r).items())) for r in rows)
        state["source"] = sorted(
            (r.id, r.last_snapshot_run_id, str(r.last_snapshot_at))
            for r in conn.execute(
                sa.text("SELECT id, last_snapshot_run_id, last_snapshot_at FROM source")
            ).all()
        )
    return state


def orphans(ledger: Ledger) -> dict[str, int]:
    """Integrity of the raw store, precisely:

    - ``records_without_blob``: source/relation records whose raw or normalized digest has no raw_blob row;
    - ``assets_without_blob``: assets whose current digests have no raw_blob row;
    - ``unreferenced_blobs``: raw_blob rows that no record, asset or held run points at. Blobs are written in
      the snapshot's own transaction, so a run that dies leaves none behind.
    """
    with ledger.engine.connect() as conn:

        def count(sql: str) -> int:
            return int(conn.execute(sa.text(sql)).scalar() or 0)

        return {
            "records_without_blob": count(
                "SELECT count(*) FROM source_record r WHERE NOT EXISTS "
                "(SELECT 1 FROM raw_blob b WHERE b.sha256 = r.raw_sha256) OR NOT EXISTS "
                "(SELECT 1 FROM raw_blob b WHERE b.sha256 = r.normalized_sha256)"
            )
            + count(
                "SELECT count(*) FROM relation_record r WHERE r.raw_sha256 IS NOT NULL AND NOT EXISTS "
                "(SELECT 1 FROM raw_blob b WHERE b.sha256 = r.raw_sha256)"
            ),
            "assets_without_blob": count(
                "SELECT count(*) FROM asset a WHERE NOT EXISTS "
                "(SELECT 1 FROM raw_blob b WHERE b.sha256 = a.raw_sha256) OR NOT EXISTS "
                "(SELECT 1 FROM raw_blob b WHERE b.sha256 = a.normalized_sha256)"
            ),
            "unreferenced_blobs": count(
                "SELECT count(*) FROM raw_blob b WHERE "
                "NOT EXISTS (SELECT 1 FROM source_record r WHERE r.raw_sha256 = b.sha256 "
                "OR r.normalized_sha256 = b.sha256) "
                "AND NOT EXISTS (SELECT 1 FROM relation_record r WHERE r.raw_sha256 = b.sha256) "
                "AND NOT EXISTS (SELECT 1 FROM run WHERE run.held_response_sha256 = b.sha256)"
            ),
        }


def codes(items: list[dict[str, Any]]) -> list[str]:
    return [item["code"] for item in items]
