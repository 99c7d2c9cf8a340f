"""The ledger's JSON API: sources and write-only credentials, runs, assets with filters and cursors,
relations, topology, OpenAPI and metrics; on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from asset_ledger.core import Ledger
from asset_ledger.storage import write_tx
from asset_ledger.storage.tables import raw_blob
from tests.api.conftest import Service, make_service
from tests.conftest import FakeSource, add_fake_source
from tests.core.fake_collector import runs_on, snapshot, vm

SECRET = "api-secret-value-0123456789"


@pytest.fixture
def api_service(ledger: Ledger) -> Service:
    """The app on both backends."""
    return make_service(ledger)


@pytest.fixture
def api_lab(api_service: Service, tmp_path: Path, fake_collector: None) -> FakeSource:
    return add_fake_source(api_service.ledger, tmp_path)


def pve_source(**config: Any) -> dict[str, Any]:
    return {
        "name": "pve-a",
        "source_type": "pve",
        "config": {"endpoint": "https://pve-a.example.net:8006", **config},
        "credential": {"api_token_id": "ledger@pve!inv", "api_token_secret": SECRET},
    }


def test_creating_a_pve_source_validates_fields_and_never_returns_the_credential(
    api_service: Service,
) -> None:
    api = api_service.client(api_service.admin_token)
    bad = api.post("/api/v1/sources", json=pve_source(endpoint="ftp://pve", timeout_ms=5))
    assert bad.status_code == 400
    error = bad.json()["error"]
    assert error["code"] == "PVE_CONFIG_INVALID"
    assert set(error["context"]["fields"]) == {"config.endpoint", "config.timeout_ms"}
    bad_credential = api.post("/api/v1/sources", json={**pve_source(), "credential": {"api_token_id": "x"}})
    assert bad_credential.json()["error"]["code"] == "PVE_CONFIG_INVALID"
    assert api.get("/api/v1/sources").json()["items"] == []  # nothing half-made
    created = api.post("/api/v1/sources", json=pve_source())
    assert created.status_code == 201
    body = created.json()
    assert body["credential_set"] is True
    assert body["config"]["tls_verify"] is True
    assert body["last_runs"] == {}
    assert SECRET not in created.text
    assert SECRET not in api.get(f"/api/v1/sources/{body['id']}").text
    assert SECRET not in api.get("/api/v1/sources").text


def test_switching_tls_verification_off_needs_an_explicit_acknowledgement(api_service: Service) -> None:
    api = api_service.client(api_service.admin_token)
    refused = api.post("/api/v1/sources", json=pve_source(tls_verify=False))
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "SOURCE_CONFIG_INVALID"
    assert "tls_fingerprint" in refused.json()["error"]["message"]
    created = api.post("/api/v1/sources", json={**pve_source(), "name": "pinned"})
    source_id = created.json()["id"]
    patch = api.patch(f"/api/v1/sources/{source_id}", json={"config_patch": {"tls_verify": False}})
    assert patch.json()["error"]["code"] == "SOURCE_CONFIG_INVALID"
    accepted = api.patch(
        f"/api/v1/sources/{source_id}",
        json={"config_patch": {"tls_verify": False}, "acknowledge_tls_risk": True},
    )
    assert accepted.status_code == 200
    assert accepted.json()["config"]["tls_verify"] is False


def test_source_schedule_and_next_run_are_reported(api_service: Service, api_lab: FakeSource) -> None:
    api = api_service.client(api_service.admin_token)
    updated = api.patch("/api/v1/sources/lab", json={"schedule_interval_s": 600}).json()
    assert updated["schedule_interval_s"] == 600
    assert updated["next_scheduled_at"] is not None
    too_often = api.patch("/api/v1/sources/lab", json={"schedule_interval_s": 5})
    assert too_often.json()["error"]["code"] == "SOURCE_CONFIG_INVALID"
    cleared = api.patch("/api/v1/sources/lab", json={"schedule_interval_s": None}).json()
    assert cleared["next_scheduled_at"] is None
    api_lab.collect(snapshot([1]))
    listed = api.get("/api/v1/sources").json()["items"][0]
    assert listed["last_runs"]["collect"]["status"] == "succeeded"


def test_runs_filter_by_source_and_status(api_service: Service, api_lab: FakeSource, tmp_path: Path) -> None:
    other = add_fake_source(api_service.ledger, tmp_path, name="other")
    api_lab.collect(snapshot([1]))
    bad = snapshot([2])
    bad["relations"] = []
    api_lab.collect(bad)
    other.collect(snapshot([3]))
    api = api_service.client(api_service.viewer_token)
    assert api.get("/api/v1/runs").json()["total"] == 3
    failed = api.get("/api/v1/runs", params={"source": "lab", "status": "failed"}).json()
    assert failed["total"] == 1
    (run,) = failed["items"]
    assert run["errors"][0]["code"] == "INVENTORY_RELATIONS_EMPTY"
    assert {"category", "retryable", "suggested_action"} <= set(run["errors"][0])
    assert api.get("/api/v1/runs", params={"status": "bogus"}).json()["error"]["code"] == "REQUEST_INVALID"
    assert api.get("/api/v1/runs/not-a-run").status_code == 404


def test_runs_filter_by_mode(api_service: Service, api_lab: FakeSource) -> None:
    api_lab.respond(snapshot([1]))
    health = api_lab.run("healthcheck")
    api_lab.run("detect")
    collect = api_lab.run("collect")
    api_lab.run("collect")
    api = api_service.client(api_service.viewer_token)
    by_mode = {
        mode: api.get("/api/v1/runs", params={"mode": mode}).json()
        for mode in ("healthcheck", "detect", "collect")
    }
    assert {mode: page["total"] for mode, page in by_mode.items()} == {
        "healthcheck": 1,
        "detect": 1,
        "collect": 2,
    }
    assert all(r["mode"] == mode for mode, page in by_mode.items() for r in page["items"])
    assert [r["id"] for r in by_mode["healthcheck"]["items"]] == [health.id]
    assert collect.id in [r["id"] for r in by_mode["collect"]["items"]]
    # Combined with the other filters.
    both = api.get("/api/v1/runs", params={"mode": "collect", "source": "lab", "status": "succeeded"}).json()
    assert both["total"] == 2
    # A mode that does not exist is the registered validation error, naming the allowed modes.
    bad = api.get("/api/v1/runs", params={"mode": "inventory"})
    assert bad.status_code == 422
    error = bad.json()["error"]
    assert error["code"] == "REQUEST_INVALID"
    assert "healthcheck, detect, collect" in error["message"]


def estate() -> dict[str, Any]:
    answer = snapshot(range(1, 6), nodes=("node1", "node2"))
    container = vm(900, "node2", power="stopped")
    container["external_id"] = "lxc/900"
    container["normalized"]["virtualization"] = {"type": "lxc", "tags": ["db", "prod"]}
    answer["assets"].append(container)
    relation = runs_on(900, "node2")
    relation["from"]["external_id"] = "lxc/900"
    answer["relations"].append(relation)
    return answer


def test_assets_filter_and_page_with_cursors(api_service: Service, api_lab: FakeSource) -> None:
    api_lab.collect(estate())
    api = api_service.client(api_service.viewer_token)

    def names(**params: Any) -> list[str]:
        body = api.get("/api/v1/assets", params=params).json()
        return [a["display_name"] for a in body["items"]]

    assert names(guest_type="lxc") == ["vm900"]
    assert names(tag="prod") == ["vm900"]
    assert names(tag="pro") == []
    assert names(power_state="stopped") == ["vm900"]
    assert names(kind="host") == ["node1", "node2"]
    assert names(q="VM90") == ["vm900"]
    assert names(kind="vm", status="missing") == []
    assert api.get("/api/v1/assets", params={"kind": "disk"}).json()["error"]["code"] == "REQUEST_INVALID"
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = api.get("/api/v1/assets", params=params).json()
        assert page["total"] == 8
        seen += [a["id"] for a in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 8
    assert (
        api.get("/api/v1/assets", params={"cursor": "garbage!"}).json()["error"]["code"] == "REQUEST_INVALID"
    )


def test_asset_list_total_is_counted_for_the_first_page_and_carried_by_the_cursor(
    api_service: Service, api_lab: FakeSource
) -> None:
    api_lab.collect(estate())
    api = api_service.client(api_service.viewer_token)
    first = api.get("/api/v1/assets", params={"kind": "vm", "limit": 4}).json()
    assert (first["total"], first["total_counted"]) == (6, True)
    api_lab.collect(snapshot(range(1, 9), nodes=("node1", "node2")))  # changes while the user pages
    second = api.get(
        "/api/v1/assets", params={"kind": "vm", "limit": 4, "cursor": first["next_cursor"]}
    ).json()
    assert (second["total"], second["total_counted"]) == (6, False)
    again = api.get("/api/v1/assets", params={"kind": "vm", "limit": 4}).json()
    assert (again["total"], again["total_counted"]) == (9, True)  # 8 present, the container missing
    document = api.get("/api/v1/openapi.json").json()
    described = document["paths"]["/api/v1/assets"]["get"]["description"]
    assert "total_counted" in described
    assert "total_capped" in described
    assert "first page" in described
    assert "exact_total" in {p["name"] for p in document["paths"]["/api/v1/assets"]["get"]["parameters"]}


def test_asset_list_total_is_capped_unless_asked_for_exactly(
    api_service: Service, api_lab: FakeSource, monkeypatch: pytest.MonkeyPatch
) -> None:
    from asset_ledger.core import asset_search

    api_lab.collect(estate())
    monkeypatch.setattr(asset_search, "COUNT_CAP", 4)
    api = api_service.client(api_service.viewer_token)
    capped = api.get("/api/v1/assets", params={"kind": "vm", "limit": 2}).json()
    assert (capped["total"], capped["total_capped"]) == (4, True)
    following = api.get("/api/v1/assets", params={"kind": "vm", "limit": 2, "cursor": capped["next_cursor"]})
    assert (following.json()["total"], following.json()["total_capped"]) == (4, True)
    exact = api.get("/api/v1/assets", params={"kind": "vm", "limit": 2, "exact_total": "true"}).json()
    assert (exact["total"], exact["total_capped"]) == (6, False)
    assert [a["id"] for a in exact["items"]] == [a["id"] for a in capped["items"]]


def test_asset_detail_relations_and_topology(api_service: Service, api_lab: FakeSource) -> None:
    api_lab.collect(estate())
    api = api_service.client(api_service.viewer_token)
    container = api.get("/api/v1/assets", params={"guest_type": "lxc"}).json()["items"][0]
    detail = api.get(f"/api/v1/assets/{container['id']}").json()
    assert detail["normalized"]["virtualization"]["type"] == "lxc"
    (history,) = detail["raw_history"]
    assert history["payload"]["vmid"] == 900
    relations = api.get(f"/api/v1/assets/{container['id']}/relations").json()["items"]
    assert [(r["type"], r["direction"], r["other_name"]) for r in relations] == [("runs_on", "out", "node2")]
    tree = api.get("/api/v1/topology").json()["items"]
    hosts = {node["name"]: node for node in tree}
    assert set(hosts) == {"node1", "node2"}
    assert {c["name"] for c in hosts["node2"]["children"]} == {"vm2", "vm4", "vm900"}
    assert next(c for c in hosts["node2"]["children"] if c["name"] == "vm900")["guest_type"] == "lxc"
    assert api.get("/api/v1/assets/nope").json()["error"]["code"] == "ASSET_NOT_FOUND"


def test_raw_history_of_delta_versions_and_a_broken_base(api_service: Service, api_lab: FakeSource) -> None:
    answers = []
    for poll in range(3):
        answer = snapshot(range(1, 4))
        for item in answer["assets"]:
            item["raw_payload"].update(netin=10**10 + poll * 7_654_321, uptime=3600 * poll)
        answers.append(answer)
        assert api_lab.collect(answer).status == "succeeded"
    api = api_service.client(api_service.viewer_token)
    vm1 = next(a for a in api.get("/api/v1/assets").json()["items"] if a["external_id"] == "qemu/1")
    detail = api.get(f"/api/v1/assets/{vm1['id']}").json()
    sent = [
        next(a["raw_payload"] for a in answer["assets"] if a["external_id"] == "qemu/1") for answer in answers
    ]
    assert [v["payload"] for v in detail["raw_history"]] == sent[::-1]
    newest = detail["raw_history"][0]["sha256"]
    with api_service.ledger.engine.connect() as conn:
        base = conn.scalar(sa.select(raw_blob.c.base_sha256).where(raw_blob.c.sha256 == newest))
    assert base is not None  # the newest version is a delta
    with write_tx(api_service.ledger.engine) as conn:
        conn.execute(
            raw_blob.update().where(raw_blob.c.sha256 == base).values(data=b"\x28\xb5\x2f\xfd broken")
        )
    broken = api.get(f"/api/v1/assets/{vm1['id']}")
    assert broken.status_code == 500
    assert broken.json()["error"]["code"] == "RAW_BLOB_CORRUPT"
    assert base in broken.json()["error"]["message"]


def test_openapi_document_describes_the_api(api_service: Service) -> None:
    document = api_service.client(api_service.viewer_token).get("/api/v1/openapi.json").json()
    assert document["info"]["title"] == "Asset Ledger"
    paths = document["paths"]
    assert {"/api/v1/sources", "/api/v1/runs/{run_id}", "/api/v1/assets", "/api/v1/tokens"} <= set(paths)
    assert not any(p.startswith(("/login", "/assets")) for p in paths)


def test_metrics_expose_runs_assets_and_the_pve_registry(api_service: Service, api_lab: FakeSource) -> None:
    api_lab.collect(snapshot([1, 2]))
    text = api_service.client(api_service.viewer_token).get("/metrics").text
    assert 'asset_ledger_runs_total{mode="collect",status="succeeded"} 1.0' in text
    assert 'asset_ledger_run_duration_seconds_count{mode="collect"} 1.0' in text
    assert 'asset_ledger_assets{kind="vm",status="present"} 2.0' in text
    assert 'asset_ledger_runs_active{status="queued"} 0.0' in text
    assert "# TYPE pve_rate_limit_count_total counter" in text
    assert "# TYPE pve_collect_success_rate gauge" in text
    # A browser session is not enough: metrics are for scrapers with a token.
    browser = api_service.browser("victor", "viewer-password-1")
    assert browser.get("/metrics").status_code == 401


def test_metrics_can_be_opened_to_a_trusted_network(sqlite_ledger: Ledger) -> None:
    from asset_ledger.api.app import ServiceOptions

    service = make_service(sqlite_ledger, options=ServiceOptions(embedded_worker=False, metrics_public=True))
    assert service.client().get("/metrics").status_code == 200


def test_relations_are_listed_with_both_ends_and_filtered(api_service: Service, api_lab: FakeSource) -> None:
    api_lab.collect(estate())
    api = api_service.client(api_service.viewer_token)
    everything = api.get("/api/v1/relations").json()
    assert everything["total"] == 6
    pairs = {(r["from"]["name"], r["type"], r["to"]["name"]) for r in everything["items"]}
    assert ("vm900", "runs_on", "node2") in pairs
    assert ("vm1", "runs_on", "node1") in pairs
    assert api.get("/api/v1/relations", params={"type": "member_of"}).json()["total"] == 0
    assert api.get("/api/v1/relations", params={"source": "lab", "status": "present"}).json()["total"] == 6
    seen: list[str] = []
    cursor = None
    while True:
        page = api.get(
            "/api/v1/relations", params={"limit": 4, **({"cursor": cursor} if cursor else {})}
        ).json()
        seen += [r["id"] for r in page["items"]]
        if (cursor := page["next_cursor"]) is None:
            break
    assert sorted(seen) == sorted(r["id"] for r in everything["items"])
    assert api.get("/api/v1/relations", params={"type": "owns"}).json()["error"]["code"] == "REQUEST_INVALID"
    assert api.get("/api/v1/relations", params={"source": "nope"}).status_code == 404


def test_huge_offsets_are_refused_or_clamped_not_crashing(api_service: Service) -> None:
    api = api_service.client(api_service.viewer_token)
    refused = api.get("/api/v1/runs", params={"offset": 10**30})
    assert (refused.status_code, refused.json()["error"]["code"]) == (422, "REQUEST_INVALID")
    page = api_service.browser("victor", "viewer-password-1").get("/runs", params={"offset": 10**30})
    assert page.status_code == 200


def test_the_openapi_document_declares_the_error_body(api_service: Service) -> None:
    document = api_service.client(api_service.viewer_token).get("/api/v1/openapi.json").json()
    responses = document["paths"]["/api/v1/sources/{ref}"]["patch"]["responses"]
    assert {"200", "400", "401", "403", "404", "409", "422"} <= set(responses)
    schema = responses["403"]["content"]["application/json"]["schema"]
    assert schema["$ref"].endswith("/ErrorBody")
