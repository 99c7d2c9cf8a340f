"""Sources and credentials: collector-checked config, write-only encrypted secrets, key rotation."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from asset_ledger.contract import LedgerError
from asset_ledger.core import Ledger, Settings
from tests.conftest import FAKE_TOKEN, FakeSource, make_settings
from tests.core.fake_collector import snapshot


def test_config_is_checked_by_the_collector(ledger: Ledger, fake_collector: None) -> None:
    with pytest.raises(LedgerError) as info:
        ledger.add_source("lab", "fake", {"endpoint": "http://plain.example"})
    assert info.value.code == "SOURCE_CONFIG_INVALID"
    assert "endpoint" in info.value.message
    added = ledger.add_source("lab", "fake", {"endpoint": "https://lab.example"})
    assert added.config == {"endpoint": "https://lab.example", "timeout_ms": 1000}  # defaults filled in


def test_unknown_source_type_is_refused(ledger: Ledger) -> None:
    with pytest.raises(LedgerError) as info:
        ledger.add_source("lab", "vmware-someday", {})
    assert info.value.code == "COLLECTOR_UNKNOWN_TYPE"


def test_source_names_are_unique_and_sane(fake_source: FakeSource) -> None:
    ledger = fake_source.ledger
    with pytest.raises(LedgerError) as dup:
        ledger.add_source("lab", "fake", {"endpoint": "https://x.example"})
    with pytest.raises(LedgerError) as bad:
        ledger.add_source("two words", "fake", {"endpoint": "https://x.example"})
    assert (dup.value.code, bad.value.code) == ("SOURCE_EXISTS", "SOURCE_CONFIG_INVALID")


def test_update_patches_and_rechecks_config(fake_source: FakeSource) -> None:
    ledger = fake_source.ledger
    updated = ledger.update_source("lab", config_patch={"timeout_ms": 5000}, name="lab2")
    assert updated.name == "lab2"
    assert updated.config["timeout_ms"] == 5000
    with pytest.raises(LedgerError) as info:
        ledger.update_source("lab2", config_patch={"endpoint": "ftp://x"})
    assert info.value.code == "SOURCE_CONFIG_INVALID"
    with pytest.raises(LedgerError) as share:
        ledger.update_source("lab2", missing_guard_share=1.5)
    assert share.value.code == "SOURCE_CONFIG_INVALID"


def test_remove_deletes_the_source_and_its_inventory(fake_source: FakeSource) -> None:
    ledger = fake_source.ledger
    fake_source.collect(snapshot(range(1, 4)))
    ledger.remove_source("lab")
    assert ledger.list_sources() == []
    assert ledger.list_assets().total == 0
    assert ledger.list_runs().total == 0
    with pytest.raises(LedgerError) as info:
        ledger.get_source("lab")
    assert info.value.code == "SOURCE_NOT_FOUND"


def test_credentials_are_write_only_and_encrypted(fake_source: FakeSource) -> None:
    shown = fake_source.ledger.get_source("lab")
    assert shown.credential_set
    assert shown.credential_updated_at is not None
    assert FAKE_TOKEN not in str(shown.to_dict())
    with fake_source.ledger.engine.connect() as conn:
        stored = conn.exec_driver_sql("SELECT ciphertext FROM credential").scalar_one()
    assert FAKE_TOKEN.encode() not in bytes(stored)


def test_a_malformed_credential_is_refused_without_echoing_it(fake_source: FakeSource) -> None:
    with pytest.raises(LedgerError) as info:
        fake_source.ledger.set_credential("lab", {"token": "abc"})
    assert info.value.code == "CREDENTIAL_INVALID"
    assert "abc" not in info.value.message


def test_the_key_file_is_created_private(fake_source: FakeSource) -> None:
    key_file = fake_source.ledger.settings.key_file
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_rotation_reencrypts_and_runs_still_work(fake_source: FakeSource) -> None:
    ledger = fake_source.ledger
    old_key = ledger.settings.key_file.read_bytes()
    assert ledger.rotate_key() == 1
    assert ledger.settings.key_file.read_bytes() != old_key
    assert not ledger.settings.key_file.with_name("secret.key.new").exists()
    # A fresh process (a new Ledger) reads the rotated key from the file and can still run.
    with Ledger(ledger.settings) as again:
        again.init()
        fake_source.respond(snapshot([1]))
        assert again.run_now("lab", "collect").status == "succeeded"


def test_a_wrong_key_is_reported_as_a_key_mismatch(fake_source: FakeSource, tmp_path: Path) -> None:
    settings = fake_source.ledger.settings
    other = Settings(
        data_dir=settings.data_dir,
        database_url=settings.database_url,
        secret_key=Fernet.generate_key().decode(),
    )
    with Ledger(other) as wrong:
        ended = wrong.run_now("lab", "healthcheck")
    assert ended.status == "failed"
    assert [e["code"] for e in ended.errors] == ["CREDENTIAL_KEY_MISMATCH"]


def test_an_environment_key_that_is_no_key_is_reported(tmp_path: Path, fake_collector: None) -> None:
    with Ledger(make_settings(tmp_path, None, secret_key="not a fernet key")) as ledger:
        ledger.init()
        ledger.add_source("lab", "fake", {"endpoint": "https://lab.example", "response_file": "x"})
        with pytest.raises(LedgerError) as info:
            ledger.set_credential("lab", {"token": "long enough"})
    assert info.value.code == "SECRET_KEY_INVALID"


def test_an_uninitialised_ledger_says_so(tmp_path: Path) -> None:
    with Ledger(make_settings(tmp_path, None)) as ledger, pytest.raises(LedgerError) as info:
        ledger.list_sources()
    assert info.value.code == "LEDGER_NOT_INITIALISED"
