"""Completeness proven from effective privileges, with pveum commands per version."""

from __future__ import annotations

from asset_ledger.collectors.pve.permissions import (
    NODE_STATS,
    REQUIRED,
    agent_privilege,
    agent_role_commands,
    describe_missing,
    grant_command,
    has_privilege,
    missing_from_cap,
    missing_from_permissions,
)

AUDITOR = {
    "/": {"Sys.Audit": 1, "VM.Audit": 1, "Datastore.Audit": 1},
    "/vms": {"Sys.Audit": 1, "VM.Audit": 1},
    "/nodes": {"Sys.Audit": 1, "VM.Audit": 1},
}


def test_auditor_on_root_is_enough() -> None:
    assert missing_from_permissions(AUDITOR, (*REQUIRED, NODE_STATS)) == []


def test_privilege_must_propagate_from_an_ancestor() -> None:
    assert has_privilege({"/": {"VM.Audit": 1}}, "VM.Audit", "/vms")
    assert not has_privilege({"/": {"VM.Audit": 0}}, "VM.Audit", "/vms")
    assert has_privilege({"/": {"VM.Audit": 0}}, "VM.Audit", "/")


def test_privsep_token_without_acl_misses_everything() -> None:
    missing = missing_from_permissions({}, (*REQUIRED, NODE_STATS))
    assert [(m.privilege, m.path) for m in missing] == [
        ("VM.Audit", "/vms"),
        ("Sys.Audit", "/"),
        ("Sys.Audit", "/nodes"),
    ]
    message, action = describe_missing(missing[:2], "ledger@pve!inv", is_token=True, version=(8, 4))
    assert "VM.Audit on /vms" in message
    assert "Sys.Audit on /" in message
    assert "pveum acl modify / --tokens 'ledger@pve!inv' --roles PVEAuditor" in action
    assert "privilege-separated" in action


def test_sys_audit_only_misses_vm_audit() -> None:
    missing = missing_from_permissions({"/": {"Sys.Audit": 1}, "/nodes": {"Sys.Audit": 1}})
    assert [m.privilege for m in missing] == ["VM.Audit"]


def test_ticket_cap_before_62() -> None:
    cap = {"vms": {"VM.Audit": 1}, "dc": {"Sys.Audit": 1}, "nodes": {"Sys.Audit": 1}, "storage": {}}
    assert missing_from_cap(cap, "ledger@pve") == []
    assert [m.privilege for m in missing_from_cap({"nodes": {"Sys.Audit": 1}}, "u@pve")] == ["VM.Audit"]
    assert missing_from_cap(None, "root@pam") == []
    assert len(missing_from_cap(None, "u@pve")) == 2


def test_pveum_syntax_per_version() -> None:
    assert (
        grant_command("u@pve", is_token=False, version=(5, 4))
        == "pveum aclmod / -user 'u@pve' -role PVEAuditor"
    )
    assert grant_command("u@pve!t", is_token=True, version=(6, 4)) == (
        "pveum aclmod / -token 'u@pve!t' -role PVEAuditor"
    )
    assert grant_command("u@pve!t", is_token=True, version=(9, 0)) == (
        "pveum acl modify / --tokens 'u@pve!t' --roles PVEAuditor"
    )


def test_agent_privilege_by_version() -> None:
    assert agent_privilege((8, 4)) == "VM.Monitor"
    assert agent_privilege((9, 0)) == "VM.GuestAgent.Audit"
    assert agent_role_commands("u@pve!t", is_token=True, version=(8, 4))[0] == (
        "pveum role add LedgerAgent --privs VM.Monitor"
    )
    assert agent_role_commands("u@pve", is_token=False, version=(5, 4))[0] == (
        "pveum roleadd LedgerAgent -privs VM.Monitor"
    )
    assert agent_role_commands("u@pve!t", is_token=True, version=(9, 1)) == [
        "pveum acl modify /vms --tokens 'u@pve!t' --roles PVEAuditor"
    ]
