"""`paydesk webhooks moneroo-*`, run as an operator runs them."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from tests.live import paydesk_env, run_cli

pytestmark = pytest.mark.slow


def listed(env: dict[str, str], merchant: str, *options: str) -> list[dict[str, object]]:
    done = run_cli("webhooks", "moneroo-list", merchant, "--json", *options, env=env)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_moneroo_webhook_commands(tmp_path: Path):
    env = paydesk_env(tmp_path / "data", None)
    created = run_cli("merchant", "create", "--name", "Shop", "--email", "o@shop.test", "--json",
                      env=env)  # fmt: skip
    assert created.returncode == 0, created.stderr
    merchant = json.loads(created.stdout)["merchant"]

    added = run_cli("webhooks", "moneroo-add", merchant, "https://shop.example/hook",
                    "--secret", "whsec_[demo]", "--json", env=env)  # fmt: skip
    assert added.returncode == 0, added.stderr
    mine = json.loads(added.stdout)
    assert (mine["environment"], mine["enabled"], mine["secret"]) == (
        "sandbox", True, "whsec_[demo]"
    )  # fmt: skip
    plain = run_cli("webhooks", "moneroo-add", merchant, "https://shop.example/live",
                    "--environment", "live", env=env)  # fmt: skip
    assert plain.returncode == 0, plain.stderr
    keys = json.loads(run_cli("merchant", "keys", merchant, "--json", env=env).stdout)
    assert f"X-Moneroo-Signature secret: {keys['moneroo_webhook_secret']}" in plain.stdout

    everything = listed(env, merchant)
    assert [e["environment"] for e in everything] == ["sandbox", "live"]
    assert all("secret" not in e for e in everything)
    [live] = listed(env, merchant, "--environment", "live", "--secrets")
    assert live["secret"] == keys["moneroo_webhook_secret"]

    assert run_cli("webhooks", "moneroo-disable", mine["id"], env=env).returncode == 0
    assert listed(env, merchant)[0]["enabled"] is False
    assert run_cli("webhooks", "moneroo-enable", mine["id"], env=env).returncode == 0
    assert listed(env, merchant)[0]["enabled"] is True
    removed = run_cli("webhooks", "moneroo-remove", mine["id"], env=env)
    assert removed.returncode == 0 and "removed" in removed.stdout
    assert [e["environment"] for e in listed(env, merchant)] == ["live"]

    for refused in (
        ("moneroo-add", merchant, "https://shop.example/x", "--environment", "prod"),
        ("moneroo-add", merchant, "gopher://shop.example/x"),
        ("moneroo-add", str(uuid.uuid4()), "https://shop.example/x"),
        ("moneroo-remove", mine["id"]),
        ("moneroo-enable", "not-an-id"),
    ):
        done = run_cli("webhooks", *refused, env=env)
        assert done.returncode == 1, refused
        assert "error" in done.stderr and "Traceback" not in done.stderr
