"""Encryption at rest for secrets (API keys, key material) under the operator's master key.

The master key is a list of Fernet keys: the first encrypts, every one decrypts, so an
operator rotates by prepending a new key and re-encrypting (`paydesk keys reencrypt` later).
"""

from __future__ import annotations

import os
from pathlib import Path

import structlog
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from paydesk.config import Settings

log = structlog.get_logger(__name__)

MASTER_KEY_FILE = "master.key"


class VaultError(RuntimeError):
    pass


class Vault:
    def __init__(self, keys: list[bytes]) -> None:
        if not keys:
            raise VaultError("no master key")
        try:
            self._fernet = MultiFernet([Fernet(key) for key in keys])
        except ValueError as exc:
            raise VaultError(
                "PAYDESK_MASTER_KEY must be comma-separated Fernet keys "
                "(32 url-safe base64-encoded bytes each)"
            ) from exc

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode("ascii")

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode()
        except InvalidToken as exc:
            raise VaultError("a secret could not be decrypted with the master key") from exc


def generate_master_key() -> str:
    return Fernet.generate_key().decode("ascii")


def load_vault(settings: Settings) -> Vault:
    """The vault from `PAYDESK_MASTER_KEY`, else from the data directory's key file,
    which is created with mode 0600 on first use."""
    if settings.master_key is not None:
        raw = settings.master_key.get_secret_value()
        return Vault([part.strip().encode() for part in raw.split(",") if part.strip()])
    path = settings.data_dir / MASTER_KEY_FILE
    if not path.exists():
        try:
            _write_new_key(path)
            log.info("master_key.generated", path=str(path))
        except FileExistsError:  # another process created it first
            pass
    return Vault([line.strip().encode() for line in path.read_text().splitlines() if line.strip()])


def _write_new_key(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(generate_master_key() + "\n")
