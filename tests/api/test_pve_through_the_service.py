"""The real PVE collector behind the service: a source made through the API (certificate pinned), runs
queued through the API and executed by a worker, the inventory read back through the API. pvesim plays the
cluster; no browser needed."""

from __future__ import annotations

from typing import Any

from asset_ledger.core import Ledger
from asset_ledger.core.queue import Worker
from pvesim.topology import Topology
from tests.api.conftest import make_service


def test_a_pve_cluster_collected_through_the_api(sqlite_ledger: Ledger, pvesim_server: Any) -> None:
    pve = pvesim_server(profile="7.4", topology=Topology.generate(seed=5, nodes=2, qemu=3, lxc=2))
    service = make_service(sqlite_ledger)
    api = service.client(service.admin_token)
    token = pve.credentials("root")
    created = api.post(
        "/api/v1/sources",
        json={
            "name": "pve-lab",
            "source_type": "pve",
            "config": {"endpoint": pve.url, "tls_fingerprint": pve.fingerprint},
            "credential": token,
        },
    )
    assert created.status_code == 201, created.text
    worker = Worker(sqlite_ledger, schedules=False)
    for mode in ("healthcheck", "detect", "collect"):
        run_id = api.post("/api/v1/sources/pve-lab/runs", json={"mode": mode}).json()["id"]
        assert worker.run_once() == run_id
        run = api.get(f"/api/v1/runs/{run_id}").json()
        assert run["status"] == "succeeded", run["errors"]
    assert run["detect"]["target_version"].startswith("7.4")
    assert run["stats"]["inventory_complete"] is True
    viewer = service.client(service.viewer_token)
    containers = viewer.get("/api/v1/assets", params={"guest_type": "lxc"}).json()
    assert containers["total"] == 2
    assert all(a["external_id"].startswith("lxc/") for a in containers["items"])
    (cluster,) = viewer.get("/api/v1/topology").json()["items"]
    assert cluster["kind"] == "cluster"
    assert sorted(h["name"] for h in cluster["children"]) == ["node1", "node2"]
    assert sum(len(h["children"]) for h in cluster["children"]) == 5
    assert token["api_token_secret"] not in api.get("/api/v1/sources/pve-lab").text
    assert token["api_token_secret"] not in api.get(f"/api/v1/runs/{run_id}").text
