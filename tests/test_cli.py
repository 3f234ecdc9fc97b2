"""The `paydesk` command, run as an operator runs it."""

from __future__ import annotations

import json
import stat
import uuid
from pathlib import Path

import pytest

from paydesk.chains.devnet import DevnetAddresses
from tests.conftest import create_pg_database, drop_pg_database, free_port, worker_id
from tests.live import PAYDESK, paydesk_env, run_cli

pytestmark = pytest.mark.slow


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return paydesk_env(tmp_path / "data", None)


def test_version_and_help(env):
    done = run_cli("version", env=env)
    assert done.returncode == 0 and done.stdout.strip() == "0.1.0"
    for command in (["serve"], ["migrate"], ["worker"], ["merchant", "create"],
                    ["merchant", "list"], ["merchant", "rotate-key"]):  # fmt: skip
        done = run_cli(*command, "--help", env=env)
        assert done.returncode == 0, command
        assert "Usage" in done.stdout


def test_merchant_lifecycle(env, tmp_path: Path):
    # At the default log level the first command logs the new master key: to stderr, so
    # `--json` output stays parseable.
    env["PAYDESK_LOG_LEVEL"] = "info"
    done = run_cli("merchant", "create", "--name", "Shop", "--email", "o@shop.test", "--json",
                   env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    issued = json.loads(done.stdout)
    assert "master_key.generated" in done.stderr
    assert set(issued) == {"merchant", "payment_key", "payout_key"}
    uuid.UUID(issued["merchant"])
    assert issued["payment_key"] and issued["payout_key"]
    assert issued["payment_key"] != issued["payout_key"]

    key_file = tmp_path / "data" / "master.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    database = (tmp_path / "data" / "paydesk.db").read_bytes()
    for key in (issued["payment_key"], issued["payout_key"]):
        assert key.encode() not in database

    listed = run_cli("merchant", "list", env=env)
    assert listed.returncode == 0
    assert issued["merchant"] in listed.stdout and "o@shop.test" in listed.stdout
    assert issued["payment_key"] not in listed.stdout

    rotated = run_cli("merchant", "rotate-key", issued["merchant"], "--kind", "payout", "--json",
                      env=env)  # fmt: skip
    assert rotated.returncode == 0, rotated.stderr
    new_key = json.loads(rotated.stdout)["payout_key"]
    assert new_key and new_key != issued["payout_key"]

    human = run_cli("merchant", "create", "--name", "Two", "--email", "o@shop.test", env=env)
    assert "payment key" in human.stdout and "shown once" in human.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["merchant", "create", "--name", "Shop", "--email", "not-an-email"],
        ["merchant", "rotate-key", "not-a-uuid"],
        ["merchant", "rotate-key", str(uuid.UUID(int=1))],
    ],
)
def test_operator_mistakes_exit_with_a_message(env, args):
    done = run_cli(*args, env=env)
    assert done.returncode != 0
    assert "error" in done.stderr.lower()


def test_postgres_migrate_and_serve_refusal(postgres_available, tmp_path: Path):
    if not postgres_available:
        pytest.skip("PostgreSQL is not reachable")
    name = f"paydesk_cli_{worker_id()}"
    env = paydesk_env(tmp_path, create_pg_database(name))
    try:
        refused = run_cli("serve", "--port", str(free_port()), env=env, timeout=60)
        assert refused.returncode != 0
        assert "paydesk migrate" in refused.stderr

        first = run_cli("migrate", env=env)
        assert first.returncode == 0, first.stderr
        assert "migrated" in first.stdout
        second = run_cli("migrate", env=env)
        assert "already" in second.stdout
    finally:
        drop_pg_database(name)


def test_console_script_is_installed():
    assert Path(PAYDESK).exists()


def test_migrate_on_a_fresh_data_dir(env, tmp_path: Path):
    done = run_cli("migrate", env=env)
    assert done.returncode == 0, done.stderr
    assert "migrated from empty" in done.stdout
    assert (tmp_path / "data" / "paydesk.db").exists()
    again = run_cli("migrate", env=env)
    assert "already at revision" in again.stdout


def test_blocking_a_merchant(env):
    import httpx

    from tests.conftest import compact, free_port, sign
    from tests.live import create_live_merchant, live_server

    merchant = create_live_merchant(env)
    assert run_cli("merchant", "block", merchant.merchant, env=env).returncode == 1
    blocked = run_cli("merchant", "block", merchant.merchant, "--payments", env=env)
    assert blocked.returncode == 0 and "payments blocked, payouts allowed" in blocked.stdout
    body = compact({"amount": "10", "currency": "USD", "order_id": "b1"})
    headers = {"merchant": merchant.merchant, "sign": sign(body, merchant.payment_key),
               "content-type": "application/json"}  # fmt: skip
    with live_server(env, free_port()) as base_url:
        refused = httpx.post(f"{base_url}/v1/payment", content=body, headers=headers)
    assert refused.json() == {"state": 1, "message": "You are forbidden"}
    allowed = run_cli("merchant", "unblock", merchant.merchant, "--payments", env=env)
    assert "payments allowed" in allowed.stdout
    with live_server(env, free_port()) as base_url:
        created = httpx.post(f"{base_url}/v1/payment", content=body, headers=headers)
    assert created.json()["state"] == 0
    unknown = run_cli("merchant", "block", str(uuid.uuid4()), "--payouts", env=env)
    assert unknown.returncode == 1 and "no merchant" in unknown.stderr


def test_keys_and_watch_only(env):
    env = {
        **env,
        "PAYDESK_NETWORKS": "devnet,eth",
        "PAYDESK_CHAIN_NODES": '{"eth": "http://127.0.0.1:9"}',
    }
    first = run_cli("keys", "xpub", "eth", env=env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("xpub") and "m/44'/60'/0'/0/<index>" in first.stderr
    assert run_cli("keys", "xpub", "eth", env=env).stdout == first.stdout  # one seed, kept
    assert run_cli("keys", "xpub", "devnet", env=env).returncode == 1

    merchant = json.loads(run_cli("merchant", "create", "--name", "S", "--email", "s@s.test",
                                  "--json", env=env).stdout)  # fmt: skip
    own = run_cli("merchant", "xpub", merchant["merchant"], "eth", first.stdout.strip(), env=env)
    assert own.returncode == 1 and "own xpub" in own.stderr
    wallet = ("xpub6DCoCpSuQZB2jawqnGMEPS63ePKWkwWPH4TU45Q7LPXWuNd8TMtVxRrgjtEshuqpK3mdhaWHPFsB"
              "ngh5GFZaM6si3yZdUsT8ddYM3PwnATt")  # fmt: skip
    done = run_cli("merchant", "xpub", merchant["merchant"], "eth", wallet, env=env)
    assert done.returncode == 0, done.stderr
    assert "0x9858EfFD232B4033E47d90003D41EC34EcaEda94" in done.stdout
    removed = run_cli("merchant", "xpub", merchant["merchant"], "eth", "--remove", env=env)
    assert removed.returncode == 0 and "back to Paydesk" in removed.stdout


def test_devnet_commands(env):
    assert run_cli("devnet", "mine", "3", env=env).stdout.strip() == "devnet tip: block 2"
    sent = run_cli("devnet", "pay", "pdev1nothere", "1", "--currency", "USDT", env=env)
    assert sent.returncode == 1 and "not a devnet address" in sent.stderr
    reorg = run_cli("devnet", "reorg", "2", "--drop", env=env)
    assert reorg.returncode == 0 and "devnet tip: block 3" in reorg.stdout
    off = run_cli(
        "devnet",
        "mine",
        env={
            **env,
            "PAYDESK_NETWORKS": "eth",
            "PAYDESK_CHAIN_NODES": '{"eth": "http://127.0.0.1:9"}',
        },
    )
    assert off.returncode == 1 and "switched off" in off.stderr


def test_devnet_pay_reads_a_payment_uri(env):
    address = DevnetAddresses(b"cli tests").derive(0)
    uri = f"devnet:{address}?amount=1.5&currency=usdt"
    sent = run_cli("devnet", "pay", uri, "--mine", env=env)
    assert sent.returncode == 0, sent.stderr
    said = " ".join(sent.stdout.split())  # the console wraps long lines
    assert f"sent 1.5 USDT to {address}: 0x" in said and "(mined in block 0)" in said
    # What the command line says wins over the URI.
    mine = run_cli("devnet", "pay", uri, "2", "--currency", "USDC", env=env)
    assert mine.returncode == 0, mine.stderr
    assert f"sent 2 USDC to {address}" in " ".join(mine.stdout.split())
    for args, message in [
        ([address], "give an AMOUNT"),
        ([f"devnet:{address}?currency=USDT"], "give an AMOUNT"),
        ([f"devnet:{address}?amount=1e3&currency=USDT"], "not an amount"),
        ([f"bitcoin:{address}?amount=1"], "not a devnet address"),
        ([f"devnet:{address}?amount=1"], "no invoice has this address"),
    ]:
        refused = run_cli("devnet", "pay", *args, env=env)
        assert refused.returncode == 1, args
        assert message in " ".join(refused.stderr.split()), (args, refused.stderr)


def test_devnet_pay_with_the_invoice_qr_code(env):
    """The QR code of `/v1/payment/qr`, decoded as a wallet would, pays the invoice."""
    import base64
    import io
    import time

    import httpx
    import zxingcpp
    from PIL import Image

    from tests.conftest import compact, sign
    from tests.live import create_live_merchant, live_server

    env = {**env, "PAYDESK_DEVNET_BLOCK_SECONDS": "0.5"}
    merchant = create_live_merchant(env)
    with live_server(env, free_port()) as base_url:

        def call(path: str, data: dict) -> dict:
            body = compact(data)
            headers = {"merchant": merchant.merchant, "sign": sign(body, merchant.payment_key),
                       "content-type": "application/json"}  # fmt: skip
            answer = httpx.post(base_url + path, content=body, headers=headers)
            assert answer.status_code == 200, answer.text
            return answer.json()["result"]

        invoice = call(
            "/v1/payment",
            {"amount": "20", "currency": "USDT", "network": "devnet", "order_id": "qr-1"},
        )
        image = call("/v1/payment/qr", {"merchant_payment_uuid": invoice["uuid"]})["image"]
        png = base64.b64decode(image.removeprefix("data:image/png;base64,"))
        [code] = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))
        assert code.text == f"devnet:{invoice['address']}?amount=20&currency=USDT"
        paid = run_cli("devnet", "pay", code.text, env=env)
        assert paid.returncode == 0, paid.stderr
        assert f"sent 20 USDT to {invoice['address']}" in " ".join(paid.stdout.split())
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            status = call("/v1/payment/info", {"uuid": invoice["uuid"]})["payment_status"]
            if status == "paid":
                break
            time.sleep(0.2)
        assert status == "paid"


def test_merchant_keys_shows_both_dialects(env, tmp_path: Path):
    done = run_cli("merchant", "create", "--name", "Shop", "--email", "k@shop.test", "--json",
                   env=env)  # fmt: skip
    issued = json.loads(done.stdout)
    shown = run_cli("merchant", "keys", issued["merchant"], "--json", env=env)
    assert shown.returncode == 0, shown.stderr
    keys = json.loads(shown.stdout)
    assert list(keys) == ["merchant", "payment_key", "payout_key", "moneroo_test_secret_key",
                          "moneroo_live_secret_key", "moneroo_webhook_secret"]  # fmt: skip
    assert (keys["payment_key"], keys["payout_key"]) == (issued["payment_key"],
                                                         issued["payout_key"])  # fmt: skip
    assert keys["moneroo_test_secret_key"].startswith("pvk_sandbox_")
    assert keys["moneroo_live_secret_key"].startswith("pvk_")
    again = json.loads(run_cli("merchant", "keys", issued["merchant"], "--json", env=env).stdout)
    assert again == keys  # made once, then shown
    database = (tmp_path / "data" / "paydesk.db").read_bytes()
    for secret in (keys["moneroo_test_secret_key"], keys["moneroo_live_secret_key"],
                   keys["moneroo_webhook_secret"]):  # fmt: skip
        assert secret.encode() not in database  # encrypted at rest
    table = run_cli("merchant", "keys", issued["merchant"], env=env)
    assert "moneroo_live_secret_key" in table.stdout
    unknown = run_cli("merchant", "keys", "00000000-0000-4000-8000-000000000000", env=env)
    assert unknown.returncode == 1 and "no merchant" in unknown.stderr
