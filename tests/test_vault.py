from __future__ import annotations

import stat

import pytest

from paydesk.config import Settings
from paydesk.vault import Vault, VaultError, generate_master_key, load_vault


def test_generated_key_file_is_private_and_reused(tmp_path):
    settings = Settings(data_dir=tmp_path / "data")
    vault = load_vault(settings)
    key_file = tmp_path / "data" / "master.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    token = vault.encrypt("secret")
    assert "secret" not in token
    assert load_vault(settings).decrypt(token) == "secret"


def test_environment_key_wins_and_rotation_keeps_old_secrets(tmp_path):
    old, new = generate_master_key(), generate_master_key()
    token = load_vault(Settings(data_dir=tmp_path, master_key=old)).encrypt("k")
    rotated = load_vault(Settings(data_dir=tmp_path, master_key=f"{new},{old}"))
    assert rotated.decrypt(token) == "k"
    assert not (tmp_path / "master.key").exists()
    with pytest.raises(VaultError):
        load_vault(Settings(data_dir=tmp_path, master_key=new)).decrypt(token)


def test_malformed_master_key_is_reported():
    with pytest.raises(VaultError, match="Fernet"):
        Vault([b"not-a-key"])
