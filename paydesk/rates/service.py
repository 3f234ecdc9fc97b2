"""The one place the rest of Paydesk asks for a rate."""

from __future__ import annotations

from collections.abc import Sequence

from paydesk.rates.models import Rate
from paydesk.rates.providers import RateProvider


class RateUnavailable(LookupError):
    """No provider has a rate for the pair: Paydesk will not invent one."""


class RatesService:
    def __init__(self, providers: Sequence[RateProvider]) -> None:
        self._providers = list(providers)

    async def get_rate(self, base: str, quote: str, source: str | None = None) -> Rate:
        """The first provider's answer, in configured order.

        `source` is the merchant's `course_source`; it selects a provider once market
        providers exist, and until then every source resolves to the configured ones.
        """
        for provider in self._providers:
            rate = await provider.get_rate(base, quote)
            if rate is not None:
                return rate
        raise RateUnavailable(f"{base}/{quote}")
