"""Rate providers. Each answers for the pairs it knows and returns None for the rest."""

from __future__ import annotations

from decimal import Decimal
from typing import Protocol

from paydesk.db import utcnow
from paydesk.money import rate_context
from paydesk.rates.models import Rate


class RateProvider(Protocol):
    name: str

    async def get_rate(self, base: str, quote: str) -> Rate | None: ...


class StaticRateProvider:
    """The operator's own table (`PAYDESK_STATIC_RATES`): a permanent provider for an
    operator who prices offline, and the stablecoin pegs by default.

    A pair is answered directly, inverted, or through one shared currency
    (EUR→USDT via EUR/USD and USDT/USD).
    """

    name = "static"

    def __init__(self, table: dict[str, Decimal]) -> None:
        self._edges: dict[str, dict[str, Decimal]] = {}
        with rate_context():
            for pair, value in table.items():
                base, _, quote = pair.upper().partition("/")
                if not base or not quote or value <= 0:
                    raise ValueError(f"bad static rate {pair}={value}")
                self._edges.setdefault(base, {})[quote] = value
                self._edges.setdefault(quote, {}).setdefault(base, Decimal(1) / value)

    async def get_rate(self, base: str, quote: str) -> Rate | None:
        value = self.lookup(base.upper(), quote.upper())
        if value is None:
            return None
        return Rate(base.upper(), quote.upper(), value, self.name, utcnow())

    def lookup(self, base: str, quote: str) -> Decimal | None:
        if base == quote:
            return Decimal(1)
        direct = self._edges.get(base, {}).get(quote)
        if direct is not None:
            return direct
        with rate_context():
            for middle, first in sorted(self._edges.get(base, {}).items()):
                second = self._edges.get(middle, {}).get(quote)
                if second is not None:
                    return first * second
        return None
