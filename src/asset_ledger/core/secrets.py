"""Credential encryption at rest (Fernet: AES-128-CBC + HMAC-SHA256) with key ids and key rotation.

The key comes from ``ASSET_LEDGER_SECRET_KEY`` or from ``<data dir>/secret.key``, created with mode 0600 on
first use. Every ciphertext is stored with the id of the key that made it (the first 16 hex digits of the
key's SHA-256), so a wrong key is told apart from a corrupt record. During a rotation the new key waits in
``secret.key.new``: both keys decrypt until the rotation has committed and the new key replaced the old.

Nothing here logs, prints or returns a secret except ``decrypt``, whose only caller builds a collector
request.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from asset_ledger.contract import LedgerError


def key_id(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:16]


def new_key() -> bytes:
    return Fernet.generate_key()


def _fernet(key: bytes, origin: str) -> Fernet:
    try:
        return Fernet(key)
    except (ValueError, TypeError):
        raise LedgerError(
            "SECRET_KEY_INVALID", f"the key from {origin} is not a Fernet key (32 url-safe base64 bytes)"
        ) from None


def write_key_file(path: Path, key: bytes) -> None:
    """Write ``key`` to ``path`` readable by its owner only (0600 from the first byte)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, key + b"\n")
    finally:
        os.close(fd)
    os.chmod(path, 0o600)


def _read_key_file(path: Path) -> bytes:
    try:
        return path.read_bytes().strip()
    except OSError as exc:
        raise LedgerError("SECRET_KEY_INVALID", f"cannot read key file {path}: {exc.strerror}") from None


class Keyring:
    """The current key (encrypts) and any key still readable during a rotation (decrypts)."""

    def __init__(self, current: bytes, *, origin: str, extra: Mapping[str, bytes] | None = None) -> None:
        self.current_id = key_id(current)
        self.origin = origin
        self._current = _fernet(current, origin)
        self._keys: dict[str, Fernet] = {self.current_id: self._current}
        for kid, key in (extra or {}).items():
            self._keys[kid] = _fernet(key, "a pending rotation")

    @classmethod
    def load(cls, secret_key: str | None, key_file: Path, *, create: bool = True) -> Keyring:
        pending = key_file.with_name(key_file.name + ".new")
        extra = {}
        if pending.exists():
            pending_key = _read_key_file(pending)
            extra[key_id(pending_key)] = pending_key
        if secret_key:
            return cls(
                secret_key.strip().encode("ascii", "replace"), origin="ASSET_LEDGER_SECRET_KEY", extra=extra
            )
        if not key_file.exists():
            if not create:
                raise LedgerError("SECRET_KEY_INVALID", f"no key file at {key_file}")
            write_key_file(key_file, new_key())
        return cls(_read_key_file(key_file), origin=str(key_file), extra=extra)

    def encrypt(self, credential: Mapping[str, Any]) -> tuple[bytes, str]:
        data = json.dumps(dict(credential), sort_keys=True).encode("utf-8")
        return self._current.encrypt(data), self.current_id

    def decrypt(self, ciphertext: bytes, kid: str) -> dict[str, Any]:
        fernet = self._keys.get(kid)
        if fernet is None:
            raise LedgerError(
                "CREDENTIAL_KEY_MISMATCH",
                f"the credential was encrypted with key {kid}, but the current key ({self.origin}) is "
                f"{self.current_id}",
            )
        try:
            value: dict[str, Any] = json.loads(fernet.decrypt(ciphertext))
        except InvalidToken:
            raise LedgerError(
                "CREDENTIAL_KEY_MISMATCH", f"the credential does not decrypt with key {kid} ({self.origin})"
            ) from None
        return value

    def with_new_key(self, key: bytes) -> Keyring:
        """A keyring that encrypts with ``key`` and still decrypts everything this one can."""
        ring = Keyring(key, origin="the new key")
        for kid, fernet in self._keys.items():
            ring._keys.setdefault(kid, fernet)
        return ring
