"""Silent filtering, 403 texts, privilege separation and /access/permissions (pve-notes §3)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pvesim import Acl, SimServer, Token, Topology, User
from tests.pvesim.helpers import client_for, small_topology, ticket_client, token_client

Factory = Callable[..., SimServer]
Get = Callable[[str], SimServer]


def get(server: SimServer, principal: str, url: str, **params: Any) -> Any:
    with client_for(server, principal) as client:
        return client.get(url, params=params)


def ids(server: SimServer, principal: str) -> set[str]:
    response = get(server, principal, "/cluster/resources")
    assert response.status_code == 200
    return {e["id"] for e in response.json()["data"]}


def test_root_and_auditor_see_every_guest(profile_server: Get) -> None:
    server = profile_server("8.4")
    everything = ids(server, "root")
    assert {"qemu/100", "lxc/200", "node/node1", "storage/node1/local", "/pool/prod"} <= everything
    assert ids(server, "auditor") == everything


def test_privsep_token_without_acl_sees_node_stubs_only(profile_server: Get) -> None:
    server = profile_server("8.4")
    entries = get(server, "privsep", "/cluster/resources").json()["data"]
    assert {e["type"] for e in entries} == {"node"}
    assert all(set(e) == {"id", "type", "node", "status", "level"} for e in entries)
    assert get(server, "privsep", "/nodes/node1/qemu").json()["data"] == []
    assert get(server, "privsep", "/access/permissions").json()["data"] == {}


def test_user_without_vm_audit_sees_no_guests_but_node_stats(profile_server: Get) -> None:
    server = profile_server("8.4")
    entries = {e["id"]: e for e in get(server, "novm", "/cluster/resources").json()["data"]}
    assert not any(i.startswith(("qemu/", "lxc/")) for i in entries)
    assert "maxmem" in entries["node/node1"]
    response = get(server, "novm", "/nodes/node1/qemu/100/config")
    assert (response.status_code, response.reason_phrase) == (
        403,
        "Permission check failed (/vms/100, VM.Audit)",
    )
    assert response.json() == {"data": None, "message": "Permission check failed (/vms/100, VM.Audit)\n"}


def test_nodes_without_sys_audit_lose_stats(profile_server: Get) -> None:
    nodes = get(profile_server("7.4"), "privsep", "/nodes").json()["data"]
    assert nodes
    assert all("maxmem" not in n and "uptime" not in n for n in nodes)
    response = get(profile_server("7.4"), "privsep", "/nodes/node1/status")
    assert response.reason_phrase == "Permission check failed (/nodes/node1, Sys.Audit)"
    response = get(profile_server("7.4"), "privsep", "/cluster/status")
    assert response.reason_phrase == "Permission check failed (/, Sys.Audit)"


def acl_topology(acl: list[Acl], roles: dict[str, list[str]] | None = None) -> Topology:
    topo = small_topology()
    topo.users["alice@pve"] = User(
        "alice@pve", password="alice-pass", tokens={"sep": Token("sep", "s3cr3t", privsep=True)}
    )
    topo.acl.extend(acl)
    topo.roles.update(roles or {})
    return topo


def test_acl_on_a_single_vm_and_on_a_pool(pvesim_server: Factory) -> None:
    topo = acl_topology(
        [Acl("/vms/101", "alice@pve", "PVEAuditor"), Acl("/pool/prod", "alice@pve", "PVEAuditor")]
    )
    server = pvesim_server(profile="8.4", topology=topo, time_scale=0.01)
    with ticket_client(server, "alice@pve") as client:
        entries = {e["id"] for e in client.get("/cluster/resources", params={"type": "vm"}).json()["data"]}
    assert entries == {"qemu/100", "qemu/101"}


def test_propagate_false_covers_only_the_exact_path(pvesim_server: Factory) -> None:
    topo = acl_topology([Acl("/vms", "alice@pve", "PVEAuditor", propagate=False)])
    server = pvesim_server(profile="8.4", topology=topo, time_scale=0.01)
    with ticket_client(server, "alice@pve") as client:
        assert client.get("/cluster/resources", params={"type": "vm"}).json()["data"] == []
        perms = client.get("/access/permissions").json()["data"]
    assert perms["/vms"]["VM.Audit"] == 0


def test_more_specific_noaccess_wins(pvesim_server: Factory) -> None:
    topo = acl_topology([Acl("/", "alice@pve", "PVEAuditor"), Acl("/vms/100", "alice@pve", "NoAccess")])
    server = pvesim_server(profile="8.4", topology=topo, time_scale=0.01)
    with ticket_client(server, "alice@pve") as client:
        vms = {e["vmid"] for e in client.get("/cluster/resources", params={"type": "vm"}).json()["data"]}
        perms = client.get("/access/permissions").json()["data"]
    assert 100 not in vms
    assert 101 in vms
    assert "/vms/100" not in perms


def test_privsep_token_gets_intersection_of_user_and_token_acls(pvesim_server: Factory) -> None:
    topo = acl_topology([Acl("/", "alice@pve", "PVEAuditor"), Acl("/vms/100", "alice@pve!sep", "PVEVMAdmin")])
    server = pvesim_server(profile="8.4", topology=topo, time_scale=0.01)
    with server_token(server, "alice@pve!sep", "s3cr3t") as client:
        vms = {e["vmid"] for e in client.get("/cluster/resources", params={"type": "vm"}).json()["data"]}
        perms = client.get("/access/permissions", params={"path": "/vms/100"}).json()["data"]
    assert vms == {100}
    assert perms == {"/vms/100": {"VM.Audit": 1}}


def server_token(server: SimServer, token_id: str, secret: str) -> Any:
    from tests.pvesim.helpers import raw_client

    return raw_client(server, headers={"Authorization": f"PVEAPIToken={token_id}={secret}"})


def test_access_permissions_always_evaluated_paths_and_acl_paths(profile_server: Get) -> None:
    perms = get(profile_server("8.4"), "reader", "/access/permissions").json()["data"]
    assert {"/", "/access", "/nodes", "/storage", "/vms", "/pool/prod", "/vms/100"} <= set(perms)
    assert perms["/"]["VM.Audit"] == 1
    assert perms["/"]["VM.Monitor"] == 1
    assert perms["/"]["Sys.Audit"] == 1


def test_access_permissions_is_501_before_6_2(profile_server: Get) -> None:
    response = get(profile_server("6.1"), "root", "/access/permissions")
    assert (response.status_code, response.reason_phrase) == (
        501,
        "Method 'GET /access/permissions' not implemented",
    )


def test_access_permissions_of_another_user_needs_sys_audit_on_access(profile_server: Get) -> None:
    server = profile_server("8.4")
    with ticket_client(server, "nobody@pve") as client:
        response = client.get("/access/permissions", params={"userid": "root@pam"})
    assert (response.status_code, response.reason_phrase) == (
        403,
        "Permission check failed (/access, Sys.Audit)",
    )
    response = get(server, "root", "/access/permissions", userid="auditor@pve!bare")
    assert response.json()["data"] == {}


def test_builtin_auditor_role_per_version(profile_server: Get) -> None:
    old = get(profile_server("8.4"), "auditor", "/access/permissions", path="/").json()["data"]["/"]
    assert "VM.Monitor" not in old
    assert "VM.GuestAgent.Audit" not in old
    assert "Pool.Audit" in old
    new = get(profile_server("9.0"), "auditor", "/access/permissions", path="/").json()["data"]["/"]
    assert "VM.GuestAgent.Audit" in new
    assert "VM.Monitor" not in new
    reader = get(profile_server("9.0"), "reader", "/access/permissions", path="/").json()["data"]["/"]
    assert "VM.GuestAgent.Audit" in reader
    assert "VM.Monitor" not in reader


def test_pool_entries_need_pool_allocate_before_7_0(profile_server: Get) -> None:
    assert "/pool/prod" not in ids(profile_server("6.4"), "auditor")
    assert "/pool/prod" in ids(profile_server("7.0"), "auditor")


def test_ticket_cap_is_the_coarse_view_before_6_2(profile_server: Get) -> None:
    server = profile_server("5.4")
    with ticket_client(server, "novm") as client:
        assert client.get("/version").status_code == 200
    cred = server.credentials("novm", auth="user_password")
    from tests.pvesim.helpers import login

    cap = login(server, cred["username"], cred["password"])["cap"]
    assert cap["vms"] == {}
    assert cap["nodes"] == {"Sys.Audit": 1}


def test_guest_lists_filtered_for_token_with_vm_acl(pvesim_server: Factory) -> None:
    topo = acl_topology([Acl("/vms/200", "alice@pve", "PVEAuditor")])
    server = pvesim_server(profile="7.4", topology=topo, time_scale=0.01)
    with ticket_client(server, "alice@pve") as client:
        assert [c["vmid"] for c in client.get("/nodes/node1/lxc").json()["data"]] == ["200"]
        assert client.get("/nodes/node1/qemu").json()["data"] == []
    assert token_client  # token auth on 7.4 is covered in test_auth


def test_permission_changes_at_run_time(pvesim_server: Factory) -> None:
    server = pvesim_server(profile="8.4", topology=small_topology(), time_scale=0.01)
    with token_client(server, "reader") as client:
        assert len(client.get("/cluster/resources", params={"type": "vm"}).json()["data"]) == 13
        assert server.topology.revoke("/", "reader@pve") == 1
        assert client.get("/cluster/resources", params={"type": "vm"}).json()["data"] == []
        server.topology.grant("/vms/100", "reader@pve", "PVEAuditor")
        vms = client.get("/cluster/resources", params={"type": "vm"}).json()["data"]
    assert [v["vmid"] for v in vms] == [100]
    server.topology.set_user_enabled("reader@pve", False)
    with token_client(server, "reader") as client:
        response = client.get("/version")
    assert (response.status_code, response.reason_phrase) == (401, "user 'reader@pve' is disabled")
    server.topology.add_user(User("late@pve", password="late-pass"))
    server.topology.add_token("late@pve", Token("t", "late-secret", privsep=False))
    server.topology.grant("/", "late@pve", "PVEAuditor")
    with server_token(server, "late@pve!t", "late-secret") as client:
        assert client.get("/nodes").status_code == 200
