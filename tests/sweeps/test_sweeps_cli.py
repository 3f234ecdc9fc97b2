"""`paydesk sweeps list`, run as the operator would against the test's database."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

from paydesk.context import Context
from paydesk.sweeps.models import Sweep
from tests.live import paydesk_env
from tests.payouts.test_payouts_cli import paydesk


async def test_sweeps_are_listed_with_their_stage_amount_and_fees(context: Context, tmp_path: Path):
    rows = [
        Sweep(network="eth", address="0x" + "aa" * 20, derivation_index=3, currency="USDT",
              last_deposit_id=1, native="ETH", stage="done", amount=Decimal("25"),
              funded=Decimal("0.0001"), funding_fee=Decimal("0.00002"),
              transfer_fee=Decimal("0.00004"), txid="0x" + "12" * 32, attempts=2),
        Sweep(network="ltc", address="rltc1qexample", derivation_index=0, currency="LTC",
              last_deposit_id=2, native="LTC", stage="queued", funded=Decimal(0),
              funding_fee=Decimal(0), transfer_fee=Decimal(0), attempts=0,
              last_error="rltc1qexample holds 1000 units, too few to pay the fee"),
    ]  # fmt: skip
    async with context.db.transaction() as session:
        session.add_all(rows)
    settings = context.settings
    assert settings.master_key is not None and settings.database_url is not None
    env = paydesk_env(tmp_path / "cli-data", settings.database_url,
                      PAYDESK_MASTER_KEY=settings.master_key.get_secret_value())  # fmt: skip

    listed = [json.loads(line) for line in paydesk(env, "sweeps", "list", "--json").splitlines()]
    assert [(s["network"], s["stage"]) for s in listed] == [("ltc", "queued"), ("eth", "done")]
    done = listed[1]
    assert (done["amount"], done["currency"], done["fees"], done["native"]) == (
        "25", "USDT", "0.00006", "ETH"
    )  # fmt: skip
    assert listed[0]["amount"] == "" and "too few" in listed[0]["last_error"]

    # A wide terminal, or the table wraps every cell.
    table = paydesk({**env, "COLUMNS": "240"}, "sweeps", "list", "--open", "--network", "ltc")
    assert "rltc1qexample" in table and "too few" in table
    assert "0x" + "aa" * 20 not in table  # done, and on another network
