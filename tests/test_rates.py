from __future__ import annotations

from decimal import Decimal

import pytest

from paydesk.config import Settings
from paydesk.rates.providers import StaticRateProvider
from paydesk.rates.service import RatesService, RateUnavailable


async def test_static_table_direct_inverse_and_cross():
    provider = StaticRateProvider({"USDT/USD": Decimal(1), "EUR/USD": Decimal("1.08")})
    assert (await provider.get_rate("usdt", "usd")).value == 1
    assert (await provider.get_rate("USD", "EUR")).value == Decimal(1) / Decimal("1.08")
    assert (await provider.get_rate("EUR", "USDT")).value == Decimal("1.08")
    assert (await provider.get_rate("BTC", "USD")) is None
    assert (await provider.get_rate("EUR", "EUR")).value == 1


async def test_service_refuses_to_invent_a_rate():
    service = RatesService([StaticRateProvider({"USDT/USD": Decimal(1)})])
    assert (await service.get_rate("USD", "USDT")).source == "static"
    with pytest.raises(RateUnavailable):
        await service.get_rate("USD", "BTC")


def test_settings_merge_operator_rates_over_the_pegs():
    settings = Settings(static_rates='{"BTC/USD": "65000.5"}')
    assert settings.static_rates["BTC/USD"] == Decimal("65000.5")
    assert settings.static_rates["USDT/USD"] == Decimal(1)


def test_bad_static_rate():
    with pytest.raises(ValueError, match="bad static rate"):
        StaticRateProvider({"BTCUSD": Decimal(1)})
    with pytest.raises(ValueError, match="bad static rate"):
        StaticRateProvider({"BTC/USD": Decimal(0)})
