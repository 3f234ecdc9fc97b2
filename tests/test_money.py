"""Exact amounts: parsing, rounding, formatting, and round trips through both engines."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from sqlalchemy import select, text

from paydesk.db import utcnow
from paydesk.invoices.models import Invoice
from paydesk.merchants.service import create_merchant
from paydesk.money import (
    fixed,
    fixed_at_least,
    parse_decimal,
    plain,
    round_half_up,
    round_up,
)

EXTREMES = [
    Decimal("0.000000000000000001"),  # one wei: 18 decimals
    Decimal("123456789012.123456789012345678"),  # 30 digits, 18 of them decimal
    Decimal("999999999999999999999999999999"),  # 30 integer digits
    Decimal("999999999999999999999999999999.999999999999999999"),  # 48 digits
    Decimal("1.10"),  # trailing zero kept as given
]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("10.28", Decimal("10.28")),
        (" 15 ", Decimal(15)),
        ("1e-05", Decimal("0.00001")),
        (".5", Decimal("0.5")),
        ("-3", Decimal(-3)),
        (15, Decimal(15)),
        (Decimal("0.1"), Decimal("0.1")),
    ],
)
def test_parse_decimal_accepts_numbers_and_numeric_text(raw, expected):
    assert parse_decimal(raw) == expected


@pytest.mark.parametrize(
    "raw", ["", "abc", "1,5", "1.2.3", "NaN", "Infinity", "0x10", True, None, [], 1.5,
            Decimal("NaN"), Decimal("Infinity")],
)  # fmt: skip
def test_parse_decimal_rejects_the_rest(raw):
    assert parse_decimal(raw) is None


def test_rounding_and_formatting():
    assert round_half_up(Decimal("0.125"), 2) == Decimal("0.13")
    assert round_half_up(Decimal("-0.125"), 2) == Decimal("-0.13")
    assert round_up(Decimal("0.0003076923"), 8) == Decimal("0.00030770")
    assert round_up(Decimal("1.000000001"), 8) == Decimal("1.00000001")
    assert fixed(Decimal(15), 2) == "15.00"
    assert fixed(Decimal("1E+7"), 0) == "10000000"
    assert fixed(EXTREMES[3], 18) == "999999999999999999999999999999.999999999999999999"
    assert plain(Decimal("0.50000000")) == "0.5"
    assert plain(Decimal("1E+7")) == "10000000"
    assert plain(Decimal("0E-8")) == "0"
    assert fixed_at_least(Decimal("0"), 2) == "0.00"
    assert fixed_at_least(Decimal("0.125"), 2) == "0.125"
    assert fixed_at_least(Decimal("2"), 2) == "2.00"


async def test_amounts_round_trip_exactly(context):
    """18-decimal and 30-digit amounts come back from the database digit for digit."""
    async with context.db.transaction() as session:
        issued = await create_merchant(session, context.vault, name="M", email="m@x.test")
        for n, value in enumerate(EXTREMES):
            session.add(
                Invoice(
                    uuid=uuid.uuid4(), merchant_id=issued.merchant_id, order_id=f"x{n}",
                    amount=value, payer_amount=value, currency="ETH", lifetime=3600,
                    status="check", expired_at=utcnow(),
                )
            )  # fmt: skip
    async with context.db.sessionmaker() as session:
        rows = (await session.scalars(select(Invoice).order_by(Invoice.id))).all()
    for row, value in zip(rows, EXTREMES, strict=True):
        assert row.amount == value and str(row.amount) == str(value)
        assert row.payer_amount == value and str(row.payer_amount) == str(value)


async def test_amount_column_never_takes_a_float(context):
    async with context.db.transaction() as session:
        issued = await create_merchant(session, context.vault, name="M", email="m@x.test")
    with pytest.raises(Exception, match="amounts must be Decimal"):
        async with context.db.transaction() as session:
            session.add(
                Invoice(
                    uuid=uuid.uuid4(), merchant_id=issued.merchant_id, order_id="f",
                    amount=0.1, currency="ETH", lifetime=3600, status="check",
                    expired_at=utcnow(),
                )
            )  # fmt: skip
    async with context.db.sessionmaker() as session:
        assert (await session.execute(text("SELECT count(*) FROM invoices"))).scalar() == 0
