"""Config and credential validation: defaults, normalisation and PVE_CONFIG_INVALID naming the field."""

from __future__ import annotations

from typing import Any

import pytest

from asset_ledger.collectors.pve import PveCollector
from asset_ledger.collectors.pve.config import parse_config, parse_credential
from asset_ledger.contract import LedgerError

TOKEN = {"api_token_id": "ledger@pve!inv", "api_token_secret": "0b8e9c7a-1111-2222-3333-444455556666"}


def test_defaults_follow_the_prd() -> None:
    cfg = PveCollector().check_config({"endpoint": "https://pve.example.com:8006"})
    assert cfg == {
        "endpoint": "https://pve.example.com:8006",
        "tls_verify": True,
        "tls_ca_bundle": None,
        "tls_fingerprint": None,
        "timeout_ms": 60000,
        "agent_timeout_ms": None,
        "scope": "auto",
        "max_parallel_nodes": 5,
        "auth_type": "api_token",
    }
    assert parse_config({"endpoint": "pve1"}).agent_timeout_s == 10.0


@pytest.mark.parametrize(
    ("endpoint", "expected"),
    [
        ("https://pve.example.com:8006", "https://pve.example.com:8006"),
        ("https://pve.example.com", "https://pve.example.com:8006"),
        ("pve.example.com:8443", "https://pve.example.com:8443"),
        ("10.0.0.5", "https://10.0.0.5:8006"),
        ("https://[fd00::5]:8006/", "https://[fd00::5]:8006"),
    ],
)
def test_endpoint_forms(endpoint: str, expected: str) -> None:
    assert parse_config({"endpoint": endpoint}).endpoint == expected


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({}, "config.endpoint"),
        ({"endpoint": "http://pve:8006"}, "config.endpoint"),
        ({"endpoint": "https://root:pw@pve:8006"}, "config.endpoint"),
        ({"endpoint": "https://pve:8006/api2/json"}, "config.endpoint"),
        ({"endpoint": "https://pve:8006/?x=1"}, "config.endpoint"),
        ({"endpoint": "https://pve:99999"}, "config.endpoint"),
        ({"endpoint": "https://pve\r\nX: y"}, "config.endpoint"),
        ({"endpoint": "pve", "timeout_ms": 10}, "config.timeout_ms"),
        ({"endpoint": "pve", "timeout_ms": "soon"}, "config.timeout_ms"),
        ({"endpoint": "pve", "max_parallel_nodes": 0}, "config.max_parallel_nodes"),
        ({"endpoint": "pve", "max_parallel_nodes": 65}, "config.max_parallel_nodes"),
        ({"endpoint": "pve", "scope": "galaxy"}, "config.scope"),
        ({"endpoint": "pve", "auth_type": "kerberos"}, "config.auth_type"),
        ({"endpoint": "pve", "tls_fingerprint": "AB:CD"}, "config.tls_fingerprint"),
        ({"endpoint": "pve", "colour": "blue"}, "config.colour"),
        ({"endpoint": "pve", "timeout_ms": 5000, "agent_timeout_ms": 6000}, "config"),
    ],
)
def test_invalid_config_names_the_field(config: dict[str, Any], field: str) -> None:
    with pytest.raises(LedgerError) as info:
        parse_config(config)
    assert info.value.code == "PVE_CONFIG_INVALID"
    assert field in info.value.message
    assert field in info.value.context["fields"][0] or field == "config"


def test_fingerprint_with_or_without_colons() -> None:
    raw = "ab" * 32
    colon = ":".join(["AB"] * 32)
    assert parse_config({"endpoint": "pve", "tls_fingerprint": raw}).tls_fingerprint == colon
    assert parse_config({"endpoint": "pve", "tls_fingerprint": colon.lower()}).tls_fingerprint == colon


def test_token_credential() -> None:
    cfg = parse_config({"endpoint": "pve"})
    cred = parse_credential(cfg, TOKEN)
    assert cred.header() == f"PVEAPIToken=ledger@pve!inv={TOKEN['api_token_secret']}"  # type: ignore[union-attr]
    assert TOKEN["api_token_secret"] not in repr(cred)


@pytest.mark.parametrize(
    ("credential", "field"),
    [
        (None, "credential"),
        ({"api_token_id": "ledger@pve!inv"}, "credential.api_token_secret"),
        ({**TOKEN, "api_token_id": "ledger@pve"}, "credential.api_token_id"),
        ({**TOKEN, "api_token_id": "ledger@pve!inv=x"}, "credential.api_token_id"),
        ({**TOKEN, "api_token_id": "ledger@pve!inv;x"}, "credential.api_token_id"),
        ({**TOKEN, "api_token_id": "ledger@pve!inv\r\nX-Evil: 1"}, "credential.api_token_id"),
        ({**TOKEN, "api_token_secret": "abc\r\nX-Evil: 1"}, "credential.api_token_secret"),
        ({**TOKEN, "api_token_secret": "a;b"}, "credential.api_token_secret"),
        ({**TOKEN, "username": "root@pam"}, "credential.username"),
    ],
)
def test_invalid_token_credential_names_the_field_and_hides_the_secret(
    credential: dict[str, Any] | None, field: str
) -> None:
    cfg = parse_config({"endpoint": "pve"})
    with pytest.raises(LedgerError) as info:
        parse_credential(cfg, credential)
    assert info.value.code == "PVE_CONFIG_INVALID"
    assert field in info.value.message
    if credential and "api_token_secret" in credential:
        assert credential["api_token_secret"] not in info.value.message
        assert credential["api_token_secret"] not in str(info.value.context)


def test_password_credential_with_separate_or_inline_realm() -> None:
    cfg = parse_config({"endpoint": "pve", "auth_type": "user_password"})
    assert parse_credential(cfg, {"username": "ledger@pve", "password": "pw"}).userid == "ledger@pve"  # type: ignore[union-attr]
    assert (
        parse_credential(cfg, {"username": "ledger", "realm": "pam", "password": "pw"}).userid == "ledger@pam"
    )  # type: ignore[union-attr]
    for bad in (
        {"username": "ledger", "password": "pw"},
        {"username": "a@pve", "realm": "pam", "password": "x"},
        {"username": "a@pve", "password": ""},
        {"username": "a@pve\n", "password": "x"},
    ):
        with pytest.raises(LedgerError) as info:
            parse_credential(cfg, bad)
        assert info.value.code == "PVE_CONFIG_INVALID"


def test_check_credential_follows_auth_type() -> None:
    collector = PveCollector()
    collector.check_credential({"endpoint": "pve"}, TOKEN)
    with pytest.raises(LedgerError):
        collector.check_credential({"endpoint": "pve", "auth_type": "user_password"}, TOKEN)
