"""The asset search on its indexed columns and tables (migration 0005), on SQLite and PostgreSQL.

Every filter combination is checked page by page against the search as it was before the migration (the
same database, JSON paths and ``LIKE`` on every row): same assets, same order, same total. The search
columns are kept in step by the ingest (new, changed, renamed, missing assets) and filled by the
migration for a ledger upgraded from 0002; the query plans use the indexes.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command

from asset_ledger.core import Ledger, asset_search
from asset_ledger.core.asset_search import (
    AssetFilter,
    asset_select,
    decode_cursor_total,
    encode_cursor,
    search_assets,
)
from asset_ledger.storage import migrate, text_search
from asset_ledger.storage.tables import TEXT_SEARCH_INDEXES, asset, asset_tag
from tests.conftest import FakeSource, add_fake_source
from tests.core.fake_collector import runs_on, snapshot, vm

TAGS = ["prod", "db", "web", "dev", "eu-west_1", "x%y"]
NAMES = ["web-1", "web-10", "web-2", "db-1", "Web-1", "zürich-db", "odd_name%50", 'quote"name', "ct-100", "a"]


def estate(seed: int, count: int = 60, *, start: int = 1) -> dict[str, Any]:
    """Guests with repeated names (so the id breaks ties), QEMU / LXC / no type, mixed power and tags."""
    rng = random.Random(seed)
    answer = snapshot([], nodes=("node1", "node2"))
    for vmid in range(start, start + count):
        guest = vm(vmid, "node1" if vmid % 2 else "node2", power=rng.choice(["running", "stopped", "paused"]))
        guest["normalized"]["identity"]["hostname"] = rng.choice(NAMES) if vmid % 5 else f"guest-{vmid}"
        kind = rng.choice(["qemu", "lxc", None])
        virtualization: dict[str, Any] = {}
        if kind is not None:
            virtualization["type"] = kind
        tags = rng.sample(TAGS, rng.randint(0, 3))
        if tags:
            virtualization["tags"] = tags
        if virtualization:
            guest["normalized"]["virtualization"] = virtualization
        answer["assets"].append(guest)
        answer["relations"].append(runs_on(vmid, "node1" if vmid % 2 else "node2"))
    return answer


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def before_0005(conn: sa.Connection, filt: AssetFilter, source_id: str | None) -> list[str]:
    """The asset ids the search answered before migration 0005: JSON paths and ``LIKE`` on every row."""
    conditions: list[Any] = []
    if source_id is not None:
        conditions.append(asset.c.source_id == source_id)
    if filt.kind is not None:
        conditions.append(asset.c.external_kind == filt.kind)
    if filt.status is not None:
        conditions.append(asset.c.status == filt.status)
    if filt.power_state is not None:
        conditions.append(asset.c.power_state == filt.power_state)
    if filt.guest_type is not None:
        conditions.append(asset.c.normalized[("virtualization", "type")].as_string() == filt.guest_type)
    if filt.tag:
        tags = sa.cast(asset.c.normalized[("virtualization", "tags")], sa.String)
        conditions.append(tags.like(_like(json.dumps(filt.tag)), escape="\\"))
    if filt.q:
        pattern = _like(filt.q.lower())
        conditions.append(
            sa.or_(
                sa.func.lower(asset.c.display_name).like(pattern, escape="\\"),
                sa.func.lower(asset.c.external_id).like(pattern, escape="\\"),
            )
        )
    query = asset_select().where(*conditions).order_by(asset.c.display_name, asset.c.id)
    return [row.id for row in conn.execute(query)]


def all_pages(ledger: Ledger, filt: AssetFilter, limit: int) -> tuple[list[str], int]:
    """Every page through the cursors; the total of the first page, checked to be repeated by the rest."""
    page = search_assets(ledger.engine, filt, limit=limit)
    assert page.total_counted
    total, ids = page.total, [a.id for a in page.items]
    while page.next_cursor:
        page = search_assets(ledger.engine, filt, limit=limit, cursor=page.next_cursor)
        assert not page.total_counted
        assert page.total == total
        ids += [a.id for a in page.items]
    return ids, total


FILTERS = [
    AssetFilter(),
    AssetFilter(kind="vm", status="present"),
    AssetFilter(kind="vm", status="missing"),
    AssetFilter(kind="host"),
    AssetFilter(kind="vm", status="present", guest_type="lxc"),
    AssetFilter(guest_type="qemu"),
    AssetFilter(kind="vm", power_state="running", tag="prod"),
    AssetFilter(tag="db", status="missing"),
    AssetFilter(tag="eu-west_1"),
    AssetFilter(tag="x%y"),
    AssetFilter(tag="pro"),
    AssetFilter(source="lab2", kind="vm", guest_type="lxc", power_state="stopped"),
    *[
        AssetFilter(q=q)
        for q in ["web-1", "WEB", "eb-", "zür", "ZÜRICH", "_", "%", 'e"n', "1", "qemu/1", "no-such", "a"]
    ],
    AssetFilter(q="web", kind="vm", tag="web", status="present"),
    AssetFilter(q="db", source="lab"),
]


def _known_tags(conn: sa.Connection) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for asset_id, tag in conn.execute(sa.select(asset_tag.c.asset_id, asset_tag.c.tag)):
        found.setdefault(asset_id, set()).add(tag)
    return found


def assert_search_columns_follow_the_records(ledger: Ledger) -> None:
    """guest_type, asset_tag and the SQLite text index say what each asset's stored record says."""
    with ledger.engine.connect() as conn:
        rows = conn.execute(
            sa.select(
                asset.c.id, asset.c.display_name, asset.c.external_id, asset.c.guest_type, asset.c.normalized
            )
        ).all()
        tags = _known_tags(conn)
        for row in rows:
            virtualization = row.normalized.get("virtualization") or {}
            assert row.guest_type == virtualization.get("type")
            assert tags.get(row.id, set()) == set(virtualization.get("tags") or [])
        assert set(tags) <= {row.id for row in rows}
        if conn.dialect.name == "sqlite":
            assert text_search.text_index_state(conn) == "fts5"
            indexed = conn.exec_driver_sql("SELECT asset_id, display_name, external_id FROM asset_text").all()
            assert sorted(map(tuple, indexed)) == sorted((r.id, r.display_name, r.external_id) for r in rows)
        else:
            assert text_search.text_index_state(conn) == "pg_trgm"


def seeded(ledger: Ledger, tmp_path: Path) -> None:
    """Two sources holding the same names; some guests renamed, retagged or gone since the first run."""
    lab = add_fake_source(ledger, tmp_path, "lab")
    lab2 = add_fake_source(ledger, tmp_path, "lab2")
    assert lab.collect(estate(1)).status == "succeeded"
    assert lab2.collect(estate(2)).status == "succeeded"
    later = estate(3)  # same vmids, other names, tags and types: changes of every kind
    later["assets"] = [a for a in later["assets"] if a["external_id"] not in {"qemu/7", "qemu/8", "qemu/9"}]
    later["relations"] = [
        r for r in later["relations"] if r["from"]["external_id"] not in {"qemu/7", "qemu/8", "qemu/9"}
    ]
    run = lab.collect(later)
    assert run.status == "succeeded", run.errors
    assert run.summary is not None
    assert run.summary["went_missing"] == 3


def answers(ledger: Ledger) -> dict[str, tuple[list[str], int]]:
    return {repr(f): all_pages(ledger, f, limit=7) for f in FILTERS}


def test_every_filter_pages_and_counts_as_before_0005(
    ledger: Ledger, tmp_path: Path, fake_collector: None
) -> None:
    seeded(ledger, tmp_path)
    assert_search_columns_follow_the_records(ledger)
    with ledger.engine.connect() as conn:
        sources = {row.name: row.id for row in conn.execute(sa.text("SELECT id, name FROM source"))}
        for filt in FILTERS:
            expected = before_0005(conn, filt, sources.get(filt.source) if filt.source else None)
            ids, total = all_pages(ledger, filt, limit=7)
            assert ids == expected, filt
            assert total == len(expected), filt
            if filt.q in {"web-1", "zür", "_", "%", 'e"n'} or filt.tag in {"prod", "x%y"}:
                assert expected, f"{filt} should match something in the estate"


def test_without_the_substring_index_the_text_search_gives_the_same_answers(
    ledger: Ledger, tmp_path: Path, fake_collector: None
) -> None:
    seeded(ledger, tmp_path)
    indexed = answers(ledger)
    with ledger.engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("DROP TABLE asset_text")
        else:
            for name in TEXT_SEARCH_INDEXES:
                conn.exec_driver_sql(f"DROP INDEX {name}")
        assert text_search.text_index_state(conn) == "none"
    assert answers(ledger) == indexed
    # The ingest still works without it, and the search still finds new assets.
    lab3 = add_fake_source(ledger, tmp_path, "lab3")
    assert lab3.collect(estate(4, 5, start=500)).status == "succeeded"
    assert search_assets(ledger.engine, AssetFilter(q="qemu/50", source="lab3")).total == 5


def test_the_ingest_keeps_type_tags_and_names_in_step(fake_source: FakeSource) -> None:
    ledger = fake_source.ledger

    def one(vmid: int, name: str, kind: str | None, tags: list[str]) -> dict[str, Any]:
        answer = snapshot([2])
        guest = vm(vmid)
        guest["normalized"]["identity"]["hostname"] = name
        guest["normalized"]["virtualization"] = {
            **({"type": kind} if kind else {}),
            **({"tags": tags} if tags else {}),
        }
        answer["assets"].append(guest)
        answer["relations"].append(runs_on(vmid))
        return answer

    def names(**filters: Any) -> list[str]:
        return [a.display_name for a in search_assets(ledger.engine, AssetFilter(**filters)).items]

    fake_source.collect(one(1, "billing-db", "lxc", ["prod", "db"]))
    assert_search_columns_follow_the_records(ledger)
    assert names(guest_type="lxc") == names(tag="prod") == names(q="LLING") == ["billing-db"]

    fake_source.collect(one(1, "invoice-db", "qemu", ["db", "eu"]))  # renamed, retyped, retagged
    assert_search_columns_follow_the_records(ledger)
    assert names(guest_type="lxc") == names(tag="prod") == names(q="billing") == []
    assert names(guest_type="qemu") == names(tag="eu") == names(q="voice") == ["invoice-db"]
    assert names(tag="db") == ["invoice-db"]

    fake_source.collect(snapshot([2]))  # gone: missing, keeps what it was last seen with
    assert_search_columns_follow_the_records(ledger)
    assert names(tag="eu", status="missing") == names(q="invoice", guest_type="qemu") == ["invoice-db"]
    assert names(tag="eu", status="present") == []

    fake_source.collect(one(1, "invoice-db", None, []))  # back, without type or tags
    assert_search_columns_follow_the_records(ledger)
    assert names(tag="eu") == names(guest_type="qemu") == []
    assert names(q="invoice", status="present") == ["invoice-db"]


def test_tags_match_exactly(fake_source: FakeSource) -> None:
    answer = snapshot([1, 2])
    answer["assets"][1]["normalized"]["virtualization"] = {"tags": ["prod"]}
    answer["assets"][2]["normalized"]["virtualization"] = {"tags": ["Prod", "production"]}
    fake_source.collect(answer)

    def names(tag: str) -> list[str]:
        return [a.display_name for a in search_assets(fake_source.ledger.engine, AssetFilter(tag=tag)).items]

    assert names("prod") == ["vm1"]
    assert names("Prod") == names("production") == ["vm2"]
    assert names("PROD") == names("prod*") == names("pro") == []


def test_cursor_pages_repeat_the_first_pages_total(fake_source: FakeSource, tmp_path: Path) -> None:
    ledger = fake_source.ledger
    fake_source.collect(snapshot(range(1, 11)))
    first = search_assets(ledger.engine, AssetFilter(kind="vm"), limit=4)
    assert (first.total, first.total_counted) == (10, True)
    assert first.next_cursor is not None
    fake_source.collect(snapshot(range(1, 21)))  # ten more while the user pages
    second = search_assets(ledger.engine, AssetFilter(kind="vm"), limit=4, cursor=first.next_cursor)
    assert (second.total, second.total_counted) == (10, False)
    again = search_assets(ledger.engine, AssetFilter(kind="vm"), limit=4)
    assert (again.total, again.total_counted) == (20, True)
    assert second.to_dict()["total_counted"] is False
    # A cursor without a total (as handed out before) is still accepted; the page then counts.
    name, asset_id, total, capped = decode_cursor_total(first.next_cursor)
    assert (total, capped) == (10, False)
    old_style = search_assets(
        ledger.engine, AssetFilter(kind="vm"), limit=4, cursor=encode_cursor(name, asset_id)
    )
    assert (old_style.total, old_style.total_counted) == (20, True)
    assert [a.id for a in old_style.items] == [a.id for a in second.items]
    # cut short, empty, negative / non-boolean / boolean totals, a total without its flag
    for bad in (
        encode_cursor(name, asset_id) + "x",
        "W10",
        [
            "WyJhIiwgImIiLCAtMSwgZmFsc2Vd",
            "WyJhIiwgImIiLCA1LCAibm8iXQ",
            "WyJhIiwgImIiLCB0cnVlLCBmYWxzZV0",
            "WyJhIiwgImIiLCA1XQ",
        ],
    ):
        with pytest.raises(Exception, match="cursor is not one this server handed out"):
            search_assets(ledger.engine, AssetFilter(kind="vm"), limit=4, cursor=bad)


def test_totals_are_capped_honestly_unless_asked_for_exactly(
    fake_source: FakeSource, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = fake_source.ledger
    fake_source.collect(snapshot(range(1, 13)))
    monkeypatch.setattr(asset_search, "COUNT_CAP", 5)
    first = search_assets(ledger.engine, AssetFilter(kind="vm"), limit=4)
    assert (first.total, first.total_capped, first.total_counted) == (5, True, True)
    assert first.to_dict()["total_capped"] is True
    assert first.next_cursor is not None
    second = search_assets(ledger.engine, AssetFilter(kind="vm"), limit=4, cursor=first.next_cursor)
    assert (second.total, second.total_capped, second.total_counted) == (5, True, False)
    exact = search_assets(ledger.engine, AssetFilter(kind="vm"), limit=4, exact_total=True)
    assert (exact.total, exact.total_capped) == (12, False)
    assert [a.id for a in exact.items] == [a.id for a in first.items]
    at_the_cap = search_assets(ledger.engine, AssetFilter(kind="vm", q="vm1"), limit=4)  # vm1, vm10-vm12
    assert (at_the_cap.total, at_the_cap.total_capped) == (4, False)
    five = search_assets(ledger.engine, AssetFilter(kind="host"), limit=4)
    assert (five.total, five.total_capped) == (1, False)
    ids, total = all_pages(ledger, AssetFilter(kind="vm"), limit=5)
    assert (len(ids), total) == (12, 5)  # every asset is still listed; only the count stopped


def _downgrade(ledger: Ledger, revision: str) -> None:
    with ledger.engine.connect() as conn, conn.begin():
        cfg = migrate._config()
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


def test_an_upgrade_to_the_search_migration_fills_the_search_columns_with_the_same_answers(
    ledger: Ledger, tmp_path: Path, fake_collector: None
) -> None:
    seeded(ledger, tmp_path)
    expected = answers(ledger)
    _downgrade(ledger, "0004_raw_delta")
    with ledger.engine.connect() as conn:
        inspector = sa.inspect(conn)
        assert "asset_tag" not in inspector.get_table_names()
        assert "guest_type" not in {c["name"] for c in inspector.get_columns("asset")}
        assert text_search.text_index_state(conn) == "none"
        assert migrate.current_revision(conn) == "0004_raw_delta"
    assert migrate.upgrade(ledger.engine) == "0005_asset_search"
    assert_search_columns_follow_the_records(ledger)
    assert answers(ledger) == expected


def _plan(conn: sa.Connection, filt: AssetFilter, *, count: bool) -> str:
    from asset_ledger.core import asset_search

    conditions = asset_search._conditions(filt, None, text_search.text_index_state(conn), conn.dialect.name)
    if count:
        query: Any = sa.select(sa.func.count()).select_from(asset).where(*conditions)
    else:
        query = asset_select().where(*conditions).order_by(asset.c.display_name, asset.c.id).limit(51)
    sql = str(query.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
    if conn.dialect.name == "sqlite":
        return "\n".join(str(row[-1]) for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql))
    conn.exec_driver_sql("SET LOCAL enable_seqscan = off")  # a tiny table: ask whether the index serves
    return "\n".join(str(row[0]) for row in conn.exec_driver_sql("EXPLAIN " + sql))


def test_the_query_plans_use_the_search_indexes(ledger: Ledger, tmp_path: Path, fake_collector: None) -> None:
    seeded(ledger, tmp_path)
    with ledger.engine.connect() as conn, conn.begin():
        ordered = _plan(conn, AssetFilter(kind="vm", status="present"), count=False)
        assert "ix_asset_kind_status_name" in ordered
        lxc = _plan(conn, AssetFilter(kind="vm", status="present", guest_type="lxc"), count=True)
        assert "ix_asset_kind_guest_type_status_name" in lxc
        tagged = _plan(conn, AssetFilter(kind="vm", power_state="running", tag="prod"), count=True)
        assert "ix_asset_tag_tag" in tagged
        text = _plan(conn, AssetFilter(q="web-1"), count=True)
        if conn.dialect.name == "sqlite":
            assert "TEMP B-TREE" not in ordered
            assert "asset_text VIRTUAL TABLE" in text
            assert "ix_asset_tag_tag" in _plan(conn, AssetFilter(kind="vm", tag="prod"), count=False)
        else:
            assert "ix_asset_name_trgm" in text
            assert "ix_asset_external_id_trgm" in text
            assert "Sort Key" not in ordered


def test_all_tags_lists_the_tags_of_present_guests(fake_source: FakeSource) -> None:
    from asset_ledger.core.asset_search import all_tags

    answer = snapshot([1, 2, 3])
    answer["assets"][1]["normalized"]["virtualization"] = {"tags": ["prod", "db"]}
    answer["assets"][2]["normalized"]["virtualization"] = {"tags": ["web"]}
    answer["assets"][3]["normalized"]["virtualization"] = {"tags": ["gone"]}
    fake_source.collect(answer)
    later = snapshot([1, 2])
    later["assets"][1]["normalized"]["virtualization"] = {"tags": ["prod", "db"]}
    later["assets"][2]["normalized"]["virtualization"] = {"tags": ["web"]}
    fake_source.collect(later)
    assert all_tags(fake_source.ledger.engine) == ["db", "prod", "web"]


def test_without_fts5_the_migration_warns_and_the_search_reads_every_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, fake_collector: None
) -> None:
    # An SQLite library without FTS5 (or its trigram tokenizer) refuses the CREATE VIRTUAL TABLE.
    monkeypatch.setattr(
        text_search,
        "SQLITE_CREATE",
        "CREATE VIRTUAL TABLE asset_text USING fts5(asset_id, tokenize = 'no_such_tokenizer')",
    )
    from tests.conftest import make_settings

    with caplog.at_level("WARNING"), Ledger(make_settings(tmp_path, None)) as ledger:
        ledger.init()
        with ledger.engine.connect() as conn:
            assert text_search.text_index_state(conn) == "none"
            assert migrate.current_revision(conn) == "0005_asset_search"
        lab = add_fake_source(ledger, tmp_path, "lab")
        assert lab.collect(estate(5, 20)).status == "succeeded"
        with ledger.engine.connect() as conn:
            expected = before_0005(conn, AssetFilter(q="web-1"), None)
        assert expected
        assert all_pages(ledger, AssetFilter(q="web-1"), limit=3) == (expected, len(expected))
    assert any("no substring index for the asset search" in r.getMessage() for r in caplog.records)


@pytest.mark.postgres
def test_a_snapshot_that_grows_the_ledger_refreshes_the_planner_statistics(
    pg_url: str, tmp_path: Path, fake_collector: None
) -> None:
    """PostgreSQL only: SQLite is left without statistics on purpose (see core.asset_search)."""
    from tests.conftest import make_settings

    with Ledger(make_settings(tmp_path, pg_url)) as ledger:
        ledger.init()
        _grow_and_check(ledger, tmp_path)


def _grow_and_check(ledger: Ledger, tmp_path: Path) -> None:
    lab = add_fake_source(ledger, tmp_path, "lab")
    assert lab.collect(estate(6, 1200)).status == "succeeded"
    with ledger.engine.connect() as conn:
        estimate = conn.exec_driver_sql("SELECT reltuples FROM pg_class WHERE relname = 'asset'").scalar()
        columns = {
            row[0]
            for row in conn.exec_driver_sql("SELECT attname FROM pg_stats WHERE tablename = 'asset'").all()
        }
        tag_stats = conn.exec_driver_sql(
            "SELECT count(*) FROM pg_stats WHERE tablename = 'asset_tag'"
        ).scalar()
    assert estimate is not None
    assert estimate >= 1200
    assert {"external_kind", "status", "guest_type", "display_name"} <= columns
    assert "normalized" not in columns  # only the searched columns: the JSON would cost most of the time
    assert tag_stats
    # A snapshot adding a few assets to a ledger of 1,200 does not analyze again.
    assert lab.collect(estate(6, 1250)).status == "succeeded"
    with ledger.engine.connect() as conn:
        again = conn.exec_driver_sql("SELECT reltuples FROM pg_class WHERE relname = 'asset'").scalar()
    assert again == estimate


def test_names_and_tags_as_long_as_the_schema_allows_are_ingested_and_found(fake_source: FakeSource) -> None:
    """normalized-v1 allows 1,024 characters; in a 3-byte script that is beyond what one PostgreSQL B-tree
    entry takes (~2,700 bytes). The indexed copies are cut to 256 characters (a tag filter compares those),
    the record keeps the whole value."""
    rng = random.Random(5)
    name = "".join(chr(rng.randrange(0x4E00, 0x9FA0)) for _ in range(1020)) + "四号"  # 3,066 bytes
    tag = "".join(chr(rng.randrange(0x4E00, 0x9FA0)) for _ in range(1024))  # random: nothing to compress
    answer = snapshot([1, 2])
    answer["assets"][1]["normalized"]["identity"]["hostname"] = name
    answer["assets"][1]["normalized"]["virtualization"] = {"tags": [tag, "prod"]}
    answer["assets"][2]["normalized"]["virtualization"] = {"tags": ["x" + tag[1:]]}
    assert fake_source.collect(answer).status == "succeeded"
    engine = fake_source.ledger.engine
    found = search_assets(engine, AssetFilter(tag=tag)).items
    assert [a.external_id for a in found] == ["qemu/1"]
    assert found[0].normalized["identity"]["hostname"] == name
    assert found[0].normalized["virtualization"]["tags"] == [tag, "prod"]
    assert [a.external_id for a in search_assets(engine, AssetFilter(q="四号")).items] == []  # cut off
    assert [a.external_id for a in search_assets(engine, AssetFilter(q=name[:12])).items] == ["qemu/1"]
    assert [a.external_id for a in search_assets(engine, AssetFilter(tag="prod")).items] == ["qemu/1"]
