"""Key rotation re-encrypts every credential without loss, on both backends, against real PVE credentials
(pvesim): after a rotation, after a rotation that failed mid-transaction, and after one interrupted between
its commit and the key-file switch, every source still authenticates; the old key opens nothing; no
plaintext secret is in the database."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet, InvalidToken

from asset_ledger.core import Ledger, Settings
from asset_ledger.core import ledger as ledger_module
from asset_ledger.core.secrets import Keyring
from tests.reliability.helpers import add_pve_source, small_topology

SOURCES = ("pve-a", "pve-b", "pve-c")


def _healthchecks(settings: Settings) -> list[str]:
    """Each source's healthcheck status from a fresh process's point of view (a new Ledger)."""
    with Ledger(settings) as fresh:
        return [fresh.run_now(name, "healthcheck").status for name in SOURCES]


def _ciphertexts(ledger: Ledger) -> list[bytes]:
    with ledger.engine.connect() as conn:
        return [bytes(r[0]) for r in conn.execute(sa.text("SELECT ciphertext FROM credential")).all()]


@pytest.fixture
def estate(db_url: str, tmp_path: Path, pvesim_server: Any) -> Any:
    server = pvesim_server(profile="8.4", topology=small_topology(nodes=1, qemu=2, lxc=1), time_scale=0.01)
    settings = Settings(data_dir=tmp_path / "data", database_url=db_url)
    with Ledger(settings) as ledger:
        ledger.init()
        for name, principal in zip(SOURCES, ("reader", "auditor", "root"), strict=True):
            add_pve_source(ledger, server, name=name, principal=principal)
        yield ledger, server


def test_rotation_reencrypts_everything_and_the_old_key_opens_nothing(estate: Any) -> None:
    ledger, server = estate
    old_key = ledger.settings.key_file.read_bytes().strip()
    before = _ciphertexts(ledger)
    assert ledger.rotate_key() == len(SOURCES)
    after = _ciphertexts(ledger)
    assert set(after).isdisjoint(before)
    for ciphertext in after:
        with pytest.raises(InvalidToken):
            Fernet(old_key).decrypt(ciphertext)
    assert _healthchecks(ledger.settings) == ["succeeded"] * len(SOURCES)
    # Twice more: rotations compose.
    ledger.rotate_key()
    ledger.rotate_key()
    assert _healthchecks(ledger.settings) == ["succeeded"] * len(SOURCES)
    secrets = [server.credentials(p)["api_token_secret"] for p in ("reader", "auditor", "root")]
    if ledger.engine.dialect.name == "sqlite":
        ledger.engine.dispose()
        data = b"".join(p.read_bytes() for p in ledger.settings.data_dir.glob("ledger.db*"))
        assert not any(s.encode() in data for s in secrets)


def test_a_rotation_failing_mid_transaction_changes_nothing(
    estate: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger, _ = estate
    before = _ciphertexts(ledger)
    key_before = ledger.settings.key_file.read_bytes()
    calls: list[int] = []
    real_encrypt = Keyring.encrypt

    def failing_encrypt(self: Keyring, value: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:
            raise OSError("disk gone")
        return real_encrypt(self, value)

    monkeypatch.setattr(Keyring, "encrypt", failing_encrypt)
    with pytest.raises(OSError, match="disk gone"):
        ledger.rotate_key()
    monkeypatch.setattr(Keyring, "encrypt", real_encrypt)
    assert _ciphertexts(ledger) == before
    assert ledger.settings.key_file.read_bytes() == key_before
    assert _healthchecks(ledger.settings) == ["succeeded"] * len(SOURCES)
    assert ledger.rotate_key() == len(SOURCES)
    assert _healthchecks(ledger.settings) == ["succeeded"] * len(SOURCES)


def test_a_rotation_interrupted_before_the_key_file_switch_loses_nothing(
    estate: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger, _ = estate
    key_before = ledger.settings.key_file.read_bytes()

    def crash(*_args: Any) -> None:
        raise OSError("killed before the rename")

    real_replace = os.replace
    monkeypatch.setattr(ledger_module.os, "replace", crash)
    with pytest.raises(OSError, match="killed"):
        ledger.rotate_key()
    monkeypatch.setattr(ledger_module.os, "replace", real_replace)
    # The database already holds the new ciphertexts; the key file is still the old one; the pending key
    # file bridges the gap for every process that starts now.
    assert ledger.settings.key_file.read_bytes() == key_before
    assert ledger.settings.key_file.with_name("secret.key.new").exists()
    assert _healthchecks(ledger.settings) == ["succeeded"] * len(SOURCES)
    # The next rotation completes the switch.
    with Ledger(ledger.settings) as fresh:
        assert fresh.rotate_key() == len(SOURCES)
    assert not ledger.settings.key_file.with_name("secret.key.new").exists()
    assert _healthchecks(ledger.settings) == ["succeeded"] * len(SOURCES)
