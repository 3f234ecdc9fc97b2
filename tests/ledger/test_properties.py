"""Random sequences of deposits, reversals and transfers keep every ledger invariant."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from paydesk.ledger.check import check_ledger
from paydesk.ledger.models import AccountKind
from paydesk.ledger.service import InsufficientFunds
from paydesk.merchants.models import Merchant
from paydesk.merchants.service import create_merchant
from tests.conftest import _empty_tables
from tests.ledger.conftest import balance_of, credit, new_invoice, reverse, transfer

pytestmark = pytest.mark.slow

cents = st.integers(min_value=1, max_value=20_000).map(lambda n: Decimal(n) / 100)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("pay"), st.integers(0, 2), cents),
        st.tuples(st.just("reverse"), st.integers(0, 30), st.just(Decimal(0))),
        st.tuples(st.sampled_from(["to_personal", "to_business"]), st.just(0), cents),
    ),
    min_size=1,
    max_size=14,
)


async def wallets(context, shop) -> dict[str, Decimal]:
    owner = shop.merchant_id
    async with context.db.reader() as session:
        user = await session.scalar(select(Merchant.user_id).where(Merchant.id == owner))
    return {
        "business": await balance_of(context, AccountKind.MERCHANT_BUSINESS, owner=owner),
        "personal": await balance_of(context, AccountKind.USER_PERSONAL, owner=user),
        "debt": await balance_of(context, AccountKind.MERCHANT_DEBT, owner=owner),
        "commission": await balance_of(context, AccountKind.PLATFORM_COMMISSION),
        "holdings": await balance_of(context, AccountKind.ONCHAIN_HOLDINGS, network="eth"),
    }


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=operations)
async def test_random_histories_keep_the_invariants(context, steps):
    await _empty_tables(context)
    async with context.db.transaction() as session:
        shop = await create_merchant(session, context.vault, name="P", email="p@x.test")
    invoices = [await new_invoice(context, shop, order_id=f"i{n}") for n in range(3)]
    credited = []
    for kind, index, amount in steps:
        before = await wallets(context, shop)
        if kind == "pay":
            seen = transfer(invoices[index], str(amount))
            await credit(context, seen)
            credited.append(seen)
        elif kind == "reverse" and credited:
            await reverse(context, credited.pop(index % len(credited)))
        elif kind in ("to_personal", "to_business") and Decimal("0.5") <= amount:
            source = "business" if kind == "to_personal" else "personal"
            try:
                async with context.db.transaction() as session:
                    await context.balances.transfer(
                        session, shop.merchant_id, "USDT", amount,
                        to_personal=kind == "to_personal",
                    )  # fmt: skip
                assert amount <= before[source], "a transfer overdrew its wallet"
            except InsufficientFunds:
                assert amount > before[source], "a covered transfer was refused"
        after = await wallets(context, shop)
        # What the platform holds on chain is exactly what it owes, to the last unit.
        assert after["holdings"] == (
            after["business"] + after["personal"] + after["commission"] - after["debt"]
        )
        assert min(after["business"], after["personal"], after["debt"]) >= 0
    async with context.db.reader() as session:
        report = await check_ledger(session)
    assert report.ok, report.violations
