"""What the payer pays and what the merchant gets, computed exactly.

Order of operations (each step rounded to the payer coin's places):
1. base     = amount × rate, rounded up (the merchant is never short by a rounding);
2. discount = base × discount_percent / 100 (negative for a surcharge);
   the payer's price before commission = base − discount
   (Cryptomus' examples: 15 USDT with 5 % → discount 0.75, payer pays 14.25);
3. commission = price × percent / 100 + fixed fee, the platform's share;
4. the payer covers `subtract` % of it: payer_amount = price + commission × subtract / 100
   (1 % commission, subtract 100: invoice 100 → the payer pays 101);
5. merchant_amount = payer_amount − commission.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from paydesk.catalogue.models import Service
from paydesk.money import ZERO, money_context, percent_of, round_half_up, round_up


@dataclass(frozen=True, slots=True)
class Quote:
    rate: Decimal
    discount: Decimal
    payer_amount: Decimal
    commission: Decimal | None
    merchant_amount: Decimal | None


def payer_places(currency_precision: int, service: Service | None) -> int:
    """Places a payer amount may carry: what the API prints and the chain can send."""
    if service is None:
        return currency_precision
    return min(currency_precision, service.decimals)


def quote(
    *,
    amount: Decimal,
    rate: Decimal,
    places: int,
    discount_percent: int | None,
    subtract: int,
    service: Service | None,
) -> Quote:
    with money_context():
        base = round_up(amount * rate, places)
        discount = round_half_up(percent_of(base, Decimal(discount_percent or 0)), places)
        price = base - discount
        if service is None:
            return Quote(rate, discount, price, None, None)
        commission = round_half_up(percent_of(price, service.percent) + service.fee_amount, places)
        payer_share = round_up(percent_of(commission, Decimal(subtract)), places)
        payer_amount = price + payer_share
        merchant_amount = max(payer_amount - commission, ZERO)
        return Quote(rate, discount, payer_amount, commission, merchant_amount)
