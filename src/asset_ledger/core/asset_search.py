"""Finding assets the way people look for them: by kind, status, source, power state, QEMU vs LXC, tag and
free text, a page at a time with a cursor; and the estate as a tree, Cluster -> Hosts -> VMs.

Read-only; every filter is an indexed column or table filled at ingest (``asset.guest_type``,
``asset_tag``, the substring index of storage.text_search), pages are walks of an index ordered by
``(display_name, id)``, and the total is counted once, for the first page, up to ``COUNT_CAP`` matches
(``total_capped`` says when there are more; ``exact_total`` counts them all): a cursor carries it to the
next pages. So a page costs about the same with ten assets or a hundred thousand.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, Row
from sqlalchemy.sql.expression import UnaryExpression
from sqlalchemy.sql.operators import custom_op

from asset_ledger.contract import LedgerError
from asset_ledger.core.views import Asset
from asset_ledger.storage import read_tx, text_search
from asset_ledger.storage.tables import (
    ASSET_STATUSES,
    INDEXED_TEXT_CHARS,
    TEXT_SEARCH_TABLE,
    asset,
    asset_tag,
    relation,
    source,
)

KINDS = ("vm", "host", "cluster")
GUEST_TYPES = ("qemu", "lxc")
MAX_LIMIT = 500
#: The first page counts matches up to this many; beyond it the total is reported as "10,000+"
#: (``total_capped``), unless the caller asks for the exact total.
COUNT_CAP = 10_000


@dataclass(frozen=True, slots=True)
class AssetFilter:
    kind: str | None = None
    status: str | None = None
    source: str | None = None
    power_state: str | None = None
    guest_type: str | None = None
    tag: str | None = None
    q: str | None = None

    def check(self) -> None:
        for name, value, allowed in (
            ("kind", self.kind, KINDS),
            ("status", self.status, ASSET_STATUSES),
            ("guest_type", self.guest_type, GUEST_TYPES),
        ):
            if value is not None and value not in allowed:
                raise LedgerError("REQUEST_INVALID", f"{name} {value!r} is not one of {', '.join(allowed)}")


@dataclass(frozen=True, slots=True)
class AssetPage:
    """A page of matches. ``total`` is the number of matches when the first page was read, at most
    ``COUNT_CAP`` unless asked for exactly (``total_capped``: there are more than ``total``); pages reached
    with a cursor repeat it instead of counting again (``total_counted`` tells which one this page did)."""

    items: list[Asset]
    total: int
    next_cursor: str | None
    total_counted: bool = True
    total_capped: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "items": [a.to_dict() for a in self.items],
            "total": self.total,
            "total_capped": self.total_capped,
            "total_counted": self.total_counted,
            "next_cursor": self.next_cursor,
        }


def asset_select() -> sa.Select[Any]:
    """Assets joined with what their views need of their source (name, last snapshot)."""
    return sa.select(
        asset,
        source.c.name.label("source_name"),
        source.c.last_snapshot_run_id,
        source.c.last_snapshot_at,
    ).join(source, source.c.id == asset.c.source_id)


def asset_from_row(row: Row[Any]) -> Asset:
    """The view of a row of ``asset_select()``. A present asset was seen in its source's last snapshot
    (see storage.tables.source), so its last-seen time and run are the source's."""
    current = row.status == "present" and row.last_snapshot_run_id is not None
    return Asset(
        id=row.id,
        source_id=row.source_id,
        source_name=row.source_name,
        external_kind=row.external_kind,
        external_id=row.external_id,
        status=row.status,
        display_name=row.display_name,
        power_state=row.power_state,
        first_seen_at=row.first_seen_at,
        last_seen_at=row.last_snapshot_at if current else row.last_seen_at,
        missing_since=row.missing_since,
        first_seen_run_id=row.first_seen_run_id,
        last_seen_run_id=row.last_snapshot_run_id if current else row.last_seen_run_id,
        normalized=row.normalized,
        raw_sha256=row.raw_sha256,
    )


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def encode_cursor(
    display_name: str, asset_id: str, total: int | None = None, total_capped: bool = False
) -> str:
    """Where the next page starts (the last row's sort key) and, for asset lists, the first page's total."""
    state: list[Any] = [display_name, asset_id]
    if total is not None:
        state += [total, total_capped]
    return base64.urlsafe_b64encode(json.dumps(state).encode()).decode().rstrip("=")


def decode_cursor_total(cursor: str) -> tuple[str, str, int | None, bool]:
    """The sort key of a cursor and the total it carries (``None`` in cursors without one)."""
    invalid = LedgerError("REQUEST_INVALID", "cursor is not one this server handed out")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        state = json.loads(raw)
    except (ValueError, binascii.Error, TypeError):
        raise invalid from None
    if not isinstance(state, list) or len(state) not in {2, 4}:
        raise invalid
    name, asset_id, total, capped = (*state, None, False) if len(state) == 2 else state
    if not isinstance(name, str) or not isinstance(asset_id, str) or not isinstance(capped, bool):
        raise invalid
    if total is not None and (isinstance(total, bool) or not isinstance(total, int) or total < 0):
        raise invalid
    return name, asset_id, total, capped


def decode_cursor(cursor: str) -> tuple[str, str]:
    name, asset_id, _, _ = decode_cursor_total(cursor)
    return name, asset_id


def _unindexed(column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    """SQLite's unary ``+``: the same value, but the planner will not pick an index on it."""
    return UnaryExpression(column, operator=custom_op("+"), type_=column.type)


def _conditions(
    filt: AssetFilter, source_id: str | None, text_index: str, dialect: str
) -> list[sa.ColumnElement[bool]]:
    """The WHERE terms of a filter.

    SQLite plans without statistics (none are gathered: with them it trades the short sort of a selective
    kind for a walk of the whole name index). Its rule of thumb rates an equality on an indexed column as
    selective, so with a tag or an indexed text search it would walk every VM of the kind index and test
    the tag on each; the columns are then compared through unary ``+`` so that the tag or text match -- the
    selective set -- drives the query instead (index lookups by id, then the short sort).
    """
    sets_drive = dialect == "sqlite" and bool(
        filt.tag or (filt.q and text_index == "fts5" and len(filt.q) >= text_search.MIN_INDEXED_QUERY)
    )

    def col(column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
        return _unindexed(column) if sets_drive else column

    conditions: list[sa.ColumnElement[bool]] = []
    if source_id is not None:
        conditions.append(col(asset.c.source_id) == source_id)
    if filt.kind is not None:
        conditions.append(col(asset.c.external_kind) == filt.kind)
    if filt.status is not None:
        conditions.append(col(asset.c.status) == filt.status)
    if filt.power_state is not None:
        conditions.append(col(asset.c.power_state) == filt.power_state)
    if filt.guest_type is not None:
        conditions.append(col(asset.c.guest_type) == filt.guest_type)
    if filt.tag:
        conditions.append(
            asset.c.id.in_(
                sa.select(asset_tag.c.asset_id).where(asset_tag.c.tag == filt.tag[:INDEXED_TEXT_CHARS])
            )
        )
    if filt.q and text_index == "fts5" and len(filt.q) >= text_search.MIN_INDEXED_QUERY:
        # SQLite's FTS5 trigram table: the same case-insensitive substring match on name or external id.
        phrase = text_search.sqlite_phrase(filt.q)
        matches: sa.Select[Any] = (
            sa.select(sa.column("asset_id"))
            .select_from(sa.table(TEXT_SEARCH_TABLE))
            .where(sa.literal_column(TEXT_SEARCH_TABLE).op("MATCH")(phrase))
        )
        conditions.append(asset.c.id.in_(matches))
    elif filt.q:
        # PostgreSQL: the pg_trgm indexes on lower(display_name) / lower(external_id) serve this LIKE.
        pattern = _like(filt.q.lower())
        conditions.append(
            sa.or_(
                sa.func.lower(asset.c.display_name).like(pattern, escape="\\"),
                sa.func.lower(asset.c.external_id).like(pattern, escape="\\"),
            )
        )
    return conditions


def search_assets(
    engine: Engine,
    filt: AssetFilter,
    *,
    limit: int = 50,
    cursor: str | None = None,
    exact_total: bool = False,
) -> AssetPage:
    """One page of matching assets ordered by name; ``next_cursor`` continues after it.

    The first page (no cursor) counts the matches, up to ``COUNT_CAP`` unless ``exact_total``; the
    cursor carries that total to the next pages, which do not count again.
    """
    filt.check()
    limit = max(1, min(limit, MAX_LIMIT))
    with read_tx(engine) as conn:
        if conn.dialect.name == "postgresql":
            # psycopg prepares a statement run five times; PostgreSQL then plans it once for any values
            # (a generic plan), the same for kind=host as for kind=vm and for every tag: 3x slower here.
            conn.exec_driver_sql("SET LOCAL plan_cache_mode = force_custom_plan")
        source_id = None
        if filt.source:
            source_id = conn.scalar(
                sa.select(source.c.id).where(sa.or_(source.c.id == filt.source, source.c.name == filt.source))
            )
            if source_id is None:
                raise LedgerError("SOURCE_NOT_FOUND", f"no source named or with id {filt.source!r}")
        text_index = text_search.text_index_state(conn) if filt.q else "none"
        conditions = _conditions(filt, source_id, text_index, conn.dialect.name)
        query = asset_select().where(*conditions)
        total, capped = None, False
        if cursor:
            name, asset_id, total, capped = decode_cursor_total(cursor)
            query = query.where(sa.tuple_(asset.c.display_name, asset.c.id) > sa.tuple_(name, asset_id))
        counted = total is None
        if total is None:
            total, capped = _count(conn, conditions, exact_total)
        name_order: sa.ColumnElement[Any] = asset.c.display_name
        if text_index == "pg_trgm" and filt.q and len(filt.q) >= text_search.MIN_INDEXED_QUERY:
            # Names matching a substring sit together in name order, so PostgreSQL's guess that a walk of
            # the name index finds a page early can cost a walk of most of it. Ordering by an expression
            # no index has (the same order) lets the trigram match drive: fetch the matches, sort them.
            name_order = asset.c.display_name.concat("")
        rows = conn.execute(query.order_by(name_order, asset.c.id).limit(limit + 1)).all()
    items = [asset_from_row(r) for r in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        next_cursor = encode_cursor(items[-1].display_name, items[-1].id, total, capped)
    return AssetPage(
        items=items, total=total, next_cursor=next_cursor, total_counted=counted, total_capped=capped
    )


def _count(conn: Connection, conditions: list[sa.ColumnElement[bool]], exact: bool) -> tuple[int, bool]:
    """The number of matches and whether it was capped at ``COUNT_CAP``."""
    if exact:
        return int(conn.scalar(sa.select(sa.func.count()).select_from(asset).where(*conditions)) or 0), False
    matches = sa.select(asset.c.id).where(*conditions).limit(COUNT_CAP + 1).subquery()
    found = int(conn.scalar(sa.select(sa.func.count()).select_from(matches)) or 0)
    return min(found, COUNT_CAP), found > COUNT_CAP


def all_tags(engine: Engine) -> list[str]:
    """Every tag a present guest carries (for the filter's choices)."""
    # The distinct tags (a walk of the tag index), each kept if one present guest carries it: a handful of
    # index probes per tag instead of joining every tag row with its asset.
    distinct = sa.select(asset_tag.c.tag).distinct().subquery("d")
    carrier = asset_tag.alias("t")
    worn = (
        sa.select(sa.literal(1))
        .select_from(carrier.join(asset, asset.c.id == carrier.c.asset_id))
        .where(carrier.c.tag == distinct.c.tag, asset.c.external_kind == "vm", asset.c.status == "present")
    )
    with read_tx(engine) as conn:
        return list(conn.scalars(sa.select(distinct.c.tag).where(worn.exists()).order_by(distinct.c.tag)))


# ---------------------------------------------------------------------------------------------- topology


@dataclass
class TreeNode:
    asset: Asset
    children: list[TreeNode] = field(default_factory=list)

    @property
    def is_lxc(self) -> bool:
        return (self.asset.normalized.get("virtualization") or {}).get("type") == "lxc"

    def count(self, kind: str) -> int:
        return sum((1 if c.asset.external_kind == kind else 0) + c.count(kind) for c in self.children)

    def power_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for child in self.children:
            if child.asset.external_kind == "vm":
                state = child.asset.power_state or "unknown"
                counts[state] = counts.get(state, 0) + 1
            for state, n in child.power_counts().items():
                counts[state] = counts.get(state, 0) + n
        return counts


def topology(
    engine: Engine, *, source_name: str | None = None, include_missing: bool = False
) -> list[TreeNode]:
    """Clusters with their hosts and each host's guests; hosts outside a cluster and guests without a host
    are roots of their own."""
    with read_tx(engine) as conn:
        query = asset_select()
        if source_name:
            query = query.where(sa.or_(source.c.name == source_name, source.c.id == source_name))
        if not include_missing:
            query = query.where(asset.c.status == "present")
        assets = {
            r.id: asset_from_row(r) for r in conn.execute(query.order_by(asset.c.display_name, asset.c.id))
        }
        edges = conn.execute(
            sa.select(relation.c.type, relation.c.from_asset_id, relation.c.to_asset_id).where(
                relation.c.status == "present"
            )
        ).all()
    nodes = {asset_id: TreeNode(view) for asset_id, view in assets.items()}
    parent: dict[str, str] = {}
    for edge in edges:
        if (
            edge.from_asset_id in nodes
            and edge.to_asset_id in nodes
            and edge.type in ("runs_on", "member_of")
        ):
            parent.setdefault(edge.from_asset_id, edge.to_asset_id)
    roots: list[TreeNode] = []
    for asset_id, node in nodes.items():
        up = parent.get(asset_id)
        if up is None:
            roots.append(node)
        else:
            nodes[up].children.append(node)
    order = {"cluster": 0, "host": 1, "vm": 2}
    roots.sort(key=lambda n: (order.get(n.asset.external_kind, 3), n.asset.display_name))
    for node in nodes.values():
        node.children.sort(key=lambda n: (order.get(n.asset.external_kind, 3), n.asset.display_name))
    return roots


# --------------------------------------------------------------------------------------------- relations

RELATION_TYPES = ("runs_on", "member_of")


@dataclass(frozen=True, slots=True)
class RelationPage:
    items: list[dict[str, Any]]
    total: int
    next_cursor: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"items": self.items, "total": self.total, "next_cursor": self.next_cursor}


def search_relations(
    engine: Engine,
    *,
    source_ref: str | None = None,
    type: str | None = None,
    status: str | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> RelationPage:
    """Relations with both ends named, ordered by id; ``next_cursor`` continues after the page."""
    if type is not None and type not in RELATION_TYPES:
        raise LedgerError("REQUEST_INVALID", f"type {type!r} is not one of {', '.join(RELATION_TYPES)}")
    if status is not None and status not in ASSET_STATUSES:
        raise LedgerError("REQUEST_INVALID", f"status {status!r} is not one of {', '.join(ASSET_STATUSES)}")
    limit = max(1, min(limit, MAX_LIMIT))
    src, dst = asset.alias("src"), asset.alias("dst")
    with read_tx(engine) as conn:
        conditions: list[sa.ColumnElement[bool]] = []
        if source_ref:
            source_id = conn.scalar(
                sa.select(source.c.id).where(sa.or_(source.c.id == source_ref, source.c.name == source_ref))
            )
            if source_id is None:
                raise LedgerError("SOURCE_NOT_FOUND", f"no source named or with id {source_ref!r}")
            conditions.append(relation.c.source_id == source_id)
        if type is not None:
            conditions.append(relation.c.type == type)
        if status is not None:
            conditions.append(relation.c.status == status)
        total = int(conn.scalar(sa.select(sa.func.count()).select_from(relation).where(*conditions)) or 0)
        query = (
            sa.select(
                relation.c.id,
                relation.c.source_id,
                relation.c.type,
                relation.c.status,
                relation.c.first_seen_at,
                relation.c.missing_since,
                src.c.id.label("from_id"),
                src.c.external_kind.label("from_kind"),
                src.c.external_id.label("from_external_id"),
                src.c.display_name.label("from_name"),
                dst.c.id.label("to_id"),
                dst.c.external_kind.label("to_kind"),
                dst.c.external_id.label("to_external_id"),
                dst.c.display_name.label("to_name"),
            )
            .join(src, src.c.id == relation.c.from_asset_id)
            .join(dst, dst.c.id == relation.c.to_asset_id)
            .where(*conditions)
        )
        if cursor:
            _, after = decode_cursor(cursor)
            query = query.where(relation.c.id > after)
        rows = conn.execute(query.order_by(relation.c.id).limit(limit + 1)).all()
    items = []
    for row in rows[:limit]:
        m = row._mapping
        items.append(
            {
                "id": m["id"],
                "source_id": m["source_id"],
                "type": m["type"],
                "status": m["status"],
                "first_seen_at": m["first_seen_at"].isoformat(),
                "missing_since": m["missing_since"].isoformat() if m["missing_since"] else None,
                "from": {k: m[f"from_{k}"] for k in ("id", "kind", "external_id", "name")},
                "to": {k: m[f"to_{k}"] for k in ("id", "kind", "external_id", "name")},
            }
        )
    next_cursor = encode_cursor("", items[-1]["id"]) if len(rows) > limit else None
    return RelationPage(items=items, total=total, next_cursor=next_cursor)
