"""Dialect-neutral inputs of the invoice service."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class CoinChoice:
    """One entry of an invoice's allowed or excluded coins."""

    currency: str
    network: str | None = None

    def as_json(self) -> dict[str, str | None]:
        return {"currency": self.currency, "network": self.network}


@dataclass(frozen=True, slots=True)
class InvoiceDraft:
    amount: Decimal
    currency: str
    order_id: str
    network: str | None = None
    to_currency: str | None = None
    url_return: str | None = None
    url_success: str | None = None
    url_callback: str | None = None
    is_payment_multiple: bool = True
    lifetime: int = 3600
    subtract: int = 0
    accuracy_payment_percent: Decimal = Decimal(0)
    additional_data: str | None = None
    currencies: list[CoinChoice] | None = None
    except_currencies: list[CoinChoice] | None = None
    course_source: str | None = None
    from_referral_code: str | None = None
    discount_percent: int | None = None
    is_refresh: bool = False
    #: The merchant's own limit on coins and networks (its dashboard settings), applied on
    #: top of `currencies`; None: every open service.
    allowed_services: list[CoinChoice] | None = None
