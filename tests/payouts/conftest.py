"""A devnet shop whose USDT deposits pay a 1 % commission and whose payouts pay a 0.5 %
fee plus 0.1 USDT, webhooks delivered to a receiver on 127.0.0.1."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from paydesk.chains.devnet import FAUCET_ADDRESS, DevnetAddresses
from paydesk.context import Context
from paydesk.ledger import service as ledger
from paydesk.ledger.models import AccountKind
from tests.devnet import follow_devnet

DEVNET_TERMS = (
    '[[services]]\nnetwork = "devnet"\ncurrency = "USDT"\npercent = "1"\n'
    'payout_percent = "0.5"\npayout_fee_amount = "0.1"\npayout_min_amount = "1"\n'
    'payout_max_amount = "5000"\n'
)
#: A devnet address nobody at Paydesk handed out: where payouts go.
DESTINATION = DevnetAddresses(b"a customer's own wallet").derive(7)


@pytest.fixture
def settings_overrides(tmp_path: Path) -> dict[str, Any]:
    catalogue = tmp_path / "terms.toml"
    catalogue.write_text(DEVNET_TERMS)
    return {
        "catalogue_file": catalogue,
        "callback_allowlist": ["127.0.0.0/8"],
        "static_rates": {"ETH/USDT": "2000"},
    }


async def send(
    context: Context,
    address: str,
    amount: str,
    currency: str = "USDT",
    sender: str = FAUCET_ADDRESS,
) -> str:
    """A devnet transfer to `address`, in the mempool; the watcher sees it."""
    async with context.db.transaction() as session:
        sent = await context.devnet.send(session, address, Decimal(amount), currency, sender)
    await follow_devnet(context)
    return sent.txid


async def balance(context: Context, merchant_id, currency: str = "USDT") -> Decimal:
    """The merchant's devnet business balance."""
    async with context.db.reader() as session:
        account = await ledger.find_account(
            session, AccountKind.MERCHANT_BUSINESS, currency, owner=merchant_id, network="devnet"
        )
        return await ledger.balance(session, account) if account else Decimal(0)


async def account_balance(
    context: Context, kind: AccountKind, currency: str = "USDT", owner: str = "", network=""
) -> Decimal:
    async with context.db.reader() as session:
        account = await ledger.find_account(session, kind, currency, owner=owner, network=network)
        return await ledger.balance(session, account) if account else Decimal(0)
