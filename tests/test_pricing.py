from __future__ import annotations

from decimal import Decimal

import pytest

from paydesk.catalogue.models import Service
from paydesk.invoices.pricing import payer_places, quote


def service(percent: str = "0", fee: str = "0", decimals: int = 6) -> Service:
    return Service(
        network="devnet", currency="USDT", decimals=decimals, min_amount=Decimal("0.5"),
        max_amount=Decimal(1000000), percent=Decimal(percent), fee_amount=Decimal(fee),
    )  # fmt: skip


def test_places_are_the_smaller_of_display_and_chain_decimals():
    assert payer_places(8, service(decimals=6)) == 6
    assert payer_places(8, service(decimals=18)) == 8
    assert payer_places(8, None) == 8


@pytest.mark.parametrize(
    ("amount", "rate", "discount_percent", "subtract", "svc", "expected"),
    [
        # the spec's invoice: 15 USDT, -5 %, 2 % commission
        ("15", "1", -5, 0, service("2"), ("-0.75", "15.75", "0.315", "15.435")),
        # the spec's subtract example: 1 %, subtract 100 → 101 for 100
        ("100", "1", None, 100, service("1"), ("0", "101", "1", "100")),
        ("100", "1", None, 50, service("1"), ("0", "100.5", "1", "99.5")),
        # fixed fee on top of the percentage
        ("100", "1", None, 0, service("1", "0.3"), ("0", "100", "1.3", "98.7")),
        # conversion rounds up in the payer's favour never: the merchant is not short
        ("20", "0.0000153846153846", None, 0, None, ("0", "0.00030770", None, None)),
        # a discount of 100 % leaves nothing to pay and nothing to credit
        ("10", "1", 100, 0, service("2"), ("10", "0", "0", "0")),
    ],
)
def test_quote(amount, rate, discount_percent, subtract, svc, expected):
    q = quote(
        amount=Decimal(amount), rate=Decimal(rate), places=8,
        discount_percent=discount_percent, subtract=subtract, service=svc,
    )  # fmt: skip
    discount, payer_amount, commission, merchant_amount = expected
    assert q.discount == Decimal(discount)
    assert q.payer_amount == Decimal(payer_amount)
    assert q.commission == (None if commission is None else Decimal(commission))
    assert q.merchant_amount == (None if merchant_amount is None else Decimal(merchant_amount))
    if q.commission is not None:
        assert q.payer_amount - q.commission == q.merchant_amount
