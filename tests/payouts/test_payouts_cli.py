"""The operator's payout commands, run as `paydesk …` against the test's database: approve
and reject what waits, see the hot wallets, keep an allowlist, and the hold after a payout
key change."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

from paydesk.context import Context
from paydesk.webhooks.models import WebhookEvent
from tests.devnet import run_payouts
from tests.live import paydesk_env, run_cli
from tests.payouts.conftest import DESTINATION, balance
from tests.payouts.test_payouts_api import fund, payout, payout_rows


def cli_env(context: Context, tmp_path: Path) -> dict[str, str]:
    settings = context.settings
    assert settings.master_key is not None and settings.database_url is not None
    return paydesk_env(
        tmp_path / "cli-data",
        settings.database_url,
        PAYDESK_MASTER_KEY=settings.master_key.get_secret_value(),
        PAYDESK_CATALOGUE_FILE=str(settings.catalogue_file),
    )


def paydesk(env: dict[str, str], *args: str) -> str:
    done = run_cli(*args, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout


async def test_approve_and_reject_from_the_command_line(api, context, tmp_path):
    context.payouts.approval_usd = Decimal("15")
    env = cli_env(context, tmp_path)
    await fund(api, context)
    large = (await payout(api, order_id="large", amount="20")).json()["result"]
    other = (await payout(api, order_id="other", amount="30")).json()["result"]
    listed = paydesk(env, "payouts", "list", "--waiting", "--json")
    waiting = [json.loads(line) for line in listed.splitlines() if line.strip()]
    assert {w["uuid"] for w in waiting} == {large["uuid"], other["uuid"]}
    assert {w["stage"] for w in waiting} == {"approval"}

    assert "process" in paydesk(env, "payouts", "approve", large["uuid"])
    assert "cancel" in paydesk(env, "payouts", "reject", other["uuid"])
    twice = run_cli("payouts", "approve", large["uuid"], env=env)
    assert twice.returncode == 1 and "not waiting for" in " ".join(twice.stderr.split())
    unknown = run_cli("payouts", "approve", "not-a-uuid", env=env)
    assert unknown.returncode == 1 and "not a payout uuid" in unknown.stderr

    await run_payouts(context)
    statuses = {p.order_id: (p.status, p.stage, p.approved_by) for p in await payout_rows(context)}
    assert statuses["large"][:2] == ("process", "sent") and statuses["large"][2]
    assert statuses["other"][:2] == ("cancel", "failed")
    # 99 less the approved 20 + 0.2 fee; the rejected one's 30.25 came back.
    assert await balance(context, api.merchant.merchant_id) == Decimal("78.8")
    async with context.db.reader() as session:
        events = list(await session.scalars(WebhookEvent.__table__.select()))
    assert len(events) >= 4  # check, then process or cancel, for each


async def test_hot_wallet_and_allowlist_commands(api, context, tmp_path):
    env = cli_env(context, tmp_path)
    hot = paydesk(env, "payouts", "hot-wallet")
    assert "devnet" in hot and "test coins, no limit" in hot
    merchant = str(api.merchant.merchant_id)
    shown = paydesk(env, "payouts", "allow", merchant, "devnet", DESTINATION, "--label", "cold")
    assert DESTINATION in shown
    listing = paydesk(env, "payouts", "allowlist", merchant)
    assert "allowlist on" in listing and "cold" in listing
    bad = run_cli("payouts", "allow", merchant, "devnet", "0x1234", env=env)
    assert bad.returncode == 1 and "not an address" in bad.stderr

    await fund(api, context)
    other = "pdev1" + "q" * 38
    refused = await payout(api, order_id="elsewhere", address=other)
    assert refused.status_code == 422
    assert (await payout(api, order_id="listed")).status_code == 200
    assert "allowlist off" in paydesk(env, "payouts", "allowlist", merchant, "--off")


async def test_a_new_payout_key_holds_payouts(api, context, tmp_path):
    env = cli_env(context, tmp_path)
    await fund(api, context)
    rotated = json.loads(paydesk(env, "merchant", "rotate-key", str(api.merchant.merchant_id),
                                 "--kind", "payout", "--json"))  # fmt: skip
    context.credentials.invalidate(api.merchant.merchant_id)
    body = {"amount": "10", "currency": "USDT", "network": "devnet", "order_id": "after",
            "address": DESTINATION, "is_subtract": True}  # fmt: skip
    held = await api.post("/v1/payout", body, key=rotated["payout_key"])
    assert held.json() == {"state": 1, "message": "You are forbidden"}
    assert await payout_rows(context) == []
