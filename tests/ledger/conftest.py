"""A priced USDT invoice on devnet with a 1 % commission, and helpers to pay it."""

from __future__ import annotations

import itertools
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from paydesk.deposits.service import ObservedTransfer
from paydesk.invoices.models import Invoice
from paydesk.invoices.schemas import InvoiceDraft
from paydesk.ledger import service as ledger
from paydesk.ledger.models import Account, AccountKind
from paydesk.merchants.service import create_merchant

COMMISSION_1 = '[[services]]\nnetwork = "eth"\ncurrency = "USDT"\npercent = "1"\n'
#: The payer's address (these tests book live money: eth, whose node they never call).
PAYER = "0x9858EfFD232B4033E47d90003D41EC34EcaEda94"
_txids = itertools.count(1)


@pytest.fixture
def settings_overrides(tmp_path: Path):
    catalogue = tmp_path / "commission.toml"
    catalogue.write_text(COMMISSION_1)
    return {
        "catalogue_file": catalogue,
        "networks": ["devnet", "eth"],
        "chain_nodes": {"eth": "http://127.0.0.1:9"},
    }


@pytest.fixture
async def shop(context):
    async with context.db.transaction() as session:
        return await create_merchant(session, context.vault, name="Shop", email="o@shop.test")


async def new_invoice(
    context, shop, order_id="o1", amount="100", currency="USDT", network="eth", **fields
) -> Invoice:
    draft = InvoiceDraft(
        amount=Decimal(amount), currency=currency, order_id=order_id, network=network, **fields
    )
    async with context.db.transaction() as session:
        return (await context.invoices.create(session, shop.merchant_id, draft)).invoice


def transfer(invoice: Invoice, amount: str, *, txid: str | None = None, index: int = 0,
             currency: str = "USDT") -> ObservedTransfer:  # fmt: skip
    return ObservedTransfer(
        network="eth",
        txid=txid or f"tx{next(_txids):060d}",
        output_index=index,
        address=invoice.address,
        currency=currency,
        amount=Decimal(amount),
        from_address=PAYER,
        block_height=10,
        block_hash="00" * 32,
    )


async def credit(context, observed: ObservedTransfer):
    async with context.db.transaction() as session:
        return await context.deposits.credit(session, observed)


async def reverse(context, observed: ObservedTransfer) -> bool:
    async with context.db.transaction() as session:
        return await context.deposits.reverse(
            session, observed.network, observed.txid, observed.output_index
        )


async def reload(context, invoice: Invoice) -> Invoice:
    async with context.db.reader() as session:
        found = await session.scalar(select(Invoice).where(Invoice.id == invoice.id))
        assert found is not None
        return found


async def balance_of(context, kind: AccountKind, currency="USDT", *, owner="", network=""):
    async with context.db.reader() as session:
        account = await session.scalar(
            select(Account).filter_by(
                kind=kind.value, owner=str(owner), network=network, currency=currency
            )
        )
        return Decimal(0) if account is None else await ledger.balance(session, account)


async def merchant_balance(context, shop, currency="USDT") -> Decimal:
    return await balance_of(
        context, AccountKind.MERCHANT_BUSINESS, currency, owner=shop.merchant_id
    )
