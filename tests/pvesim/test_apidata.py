"""Every endpoint pvesim serves, for every profile, against the official schema of that release.

Existence (same method), the declared privilege (checked by behaviour: a principal without privileges gets
exactly the 403 text the schema implies) and 501 for endpoints the release does not have.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import pytest

from pvesim import PROFILES, SimServer
from pvesim.apidata import SERVED, api_table
from tests.pvesim.helpers import APIDATA_DIR, apidata, raw_client, small_topology, ticket_client

pytestmark = pytest.mark.skipif(
    not APIDATA_DIR.is_dir(), reason=f"official PVE API schema snapshots not found at {APIDATA_DIR}"
)

CONCRETE = {"node": "node1"}


def concrete(template: str) -> str:
    vmid = "200" if "/lxc/" in template else "100"
    return template.replace("{node}", "node1").replace("{vmid}", vmid)


def params_for(method: str, template: str) -> dict[str, str]:
    if method == "POST" and template.endswith("/agent"):
        return {"command": "network-get-interfaces"}
    if template == "/access/ticket" and method == "POST":
        return {}
    if template == "/access/tfa":
        return {"response": "000000"}
    return {}


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, SimServer]]:
    started: dict[str, SimServer] = {}
    for name in PROFILES:
        topo = small_topology()
        started[name] = SimServer(profile=name, topology=topo, time_scale=0.001).start()
    yield started
    for server in started.values():
        server.stop()


def test_extracted_table_matches_the_official_schema() -> None:
    for name, profile in PROFILES.items():
        raw = apidata(profile.apidata)
        table = api_table(profile.apidata)
        for method, template in SERVED:
            info = raw.get((method, template))
            served = table.served.get((method, template))
            if info is None:
                assert served is None, (name, method, template)
                continue
            assert served is not None, (name, method, template)
            perms = info.get("permissions") or {}
            assert served.permissions == {k: v for k, v in perms.items() if k in ("check", "user")}
            assert served.protected == bool(info.get("protected")), (name, template)
            assert served.proxyto == info.get("proxyto"), (name, template)
            assert served.allowtoken == bool(info.get("allowtoken")), (name, template)


@pytest.mark.parametrize("profile", list(PROFILES))
def test_every_served_endpoint_exists_exactly_when_the_release_has_it(
    profile: str, servers: dict[str, SimServer]
) -> None:
    server = servers[profile]
    raw = apidata(PROFILES[profile].apidata)
    with ticket_client(server, "root") as client:
        for method, template in SERVED:
            path = concrete(template)
            response = client.request(
                method,
                path,
                params=params_for(method, template) if method == "GET" else None,
                data=params_for(method, template) if method == "POST" else None,
            )
            if (method, template) in raw:
                assert response.status_code != 501, (profile, method, path, response.reason_phrase)
            else:
                assert response.status_code == 501, (profile, method, path)
                assert response.reason_phrase == f"Method '{method} {path}' not implemented"
                assert response.json()["data"] is None


@pytest.mark.parametrize("profile", list(PROFILES))
def test_required_privilege_is_the_one_the_release_declares(
    profile: str, servers: dict[str, SimServer]
) -> None:
    server = servers[profile]
    raw = apidata(PROFILES[profile].apidata)
    checked = 0
    with ticket_client(server, "nobody@pve") as client:
        for method, template in SERVED:
            info = raw.get((method, template))
            if info is None:
                continue
            check = (info.get("permissions") or {}).get("check")
            if not check or check[0] != "perm":
                continue
            path = concrete(template)
            response = client.request(
                method, path, data=params_for(method, template) if method == "POST" else None
            )
            acl_path = (
                check[1]
                .replace("{node}", "node1")
                .replace("{vmid}", path.split("/")[4] if "{vmid}" in check[1] else "")
            )
            privs = check[2]
            detail = "|".join(privs) if len(check) > 3 and check[3] == "any" else privs[0]
            assert response.status_code == 403, (profile, method, path)
            assert response.reason_phrase == f"Permission check failed ({acl_path}, {detail})"
            checked += 1
    assert checked >= 6


@pytest.mark.parametrize("profile", ["5.0", "6.1", "8.0", "9.1"])
def test_absent_path_answers_501_with_the_pve_text(profile: str, servers: dict[str, SimServer]) -> None:
    server = servers[profile]
    with ticket_client(server, "root") as client:
        response = client.get("/nodes/node1/openvz")
    assert response.status_code == 501
    assert response.reason_phrase == "Method 'GET /nodes/node1/openvz' not implemented"


def test_lxc_interfaces_is_501_before_8_1_and_served_from_8_1(servers: dict[str, SimServer]) -> None:
    with ticket_client(servers["8.0"], "root") as client:
        response = client.get("/nodes/node1/lxc/200/interfaces")
    assert (response.status_code, response.reason_phrase) == (
        501,
        "Method 'GET /nodes/node1/lxc/200/interfaces' not implemented",
    )
    with ticket_client(servers["8.1"], "root") as client:
        assert client.get("/nodes/node1/lxc/200/interfaces").status_code == 200


def test_unauthenticated_requests_get_401_before_the_501(servers: dict[str, SimServer]) -> None:
    with raw_client(servers["8.4"]) as client:
        response = client.get("/nodes/node1/openvz")
    assert (response.status_code, response.reason_phrase, response.content) == (401, "No ticket", b"")


def test_endpoint_of_the_release_that_pvesim_does_not_simulate_says_so(servers: dict[str, SimServer]) -> None:
    with ticket_client(servers["8.4"], "root") as client:
        response = client.get("/nodes/node1/network")
    assert response.status_code == 501
    assert (
        response.reason_phrase
        == "Method 'GET /nodes/node1/network' not implemented (not simulated by pvesim)"
    )


def test_committed_table_is_what_the_extractor_produces(tmp_path: Path) -> None:
    from pvesim.tools.extract_apidata import main as extract

    out = tmp_path / "apidata.json"
    assert extract([str(APIDATA_DIR), str(out)]) == 0
    committed = resources.files("pvesim").joinpath("data/apidata.json").read_text(encoding="utf-8")
    assert json.loads(out.read_text(encoding="utf-8")) == json.loads(committed)


def test_every_served_endpoint_has_a_handler(servers: dict[str, SimServer]) -> None:
    assert servers["9.1"].api.handled == set(SERVED)
