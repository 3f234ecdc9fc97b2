"""`POST /v1/balance` and the business ↔ personal transfers, through the API."""

from __future__ import annotations

import asyncio
import dataclasses
from decimal import Decimal

import pytest

from paydesk.db import utcnow
from paydesk.rates.models import Rate
from tests.conftest import CryptomusClient
from tests.ledger.conftest import credit, new_invoice, transfer


@pytest.fixture
async def funded(context, shop, http):
    """A merchant with 99 USDT in its business wallet (100 paid, 1 % commission)."""
    invoice = await new_invoice(context, shop)
    await credit(context, transfer(invoice, "100"))
    return CryptomusClient(http, shop)


def payout(api: CryptomusClient, path: str, body):
    return api.post(path, body, key=api.merchant.payout_key)


async def test_balance_shape(funded, context):
    result = await funded.result("/v1/balance")
    [entry] = result
    [business] = entry["balance"]["merchant"]
    assert entry["balance"]["user"] == []
    assert business["balance"] == "99.00000000"
    assert business["currency_code"] == "USDT"
    assert business["balance_usd"] == "99.00"  # the USDT/USD peg
    assert len(business["uuid"]) == 36


async def test_devnet_test_money_stays_out_of_the_live_balance(funded, context):
    test = await new_invoice(context, funded.merchant, order_id="t", network="devnet")
    await credit(context, dataclasses.replace(transfer(test, "50"), network="devnet"))
    [entry] = await funded.result("/v1/balance")
    assert [w["balance"] for w in entry["balance"]["merchant"]] == ["99.00000000"]


async def test_empty_balance_has_both_arrays(api):
    assert await api.result("/v1/balance") == [{"balance": {"merchant": [], "user": []}}]


async def test_transfers_both_ways(funded):
    moved = await payout(funded, "/v1/transfer/to-personal", {"amount": "40", "currency": "usdt"})
    assert moved.status_code == 200, moved.text
    result = moved.json()["result"]
    assert result["user_wallet_balance"] == "40.00000000"
    assert result["merchant_balance"] == "59.00000000"
    assert result["user_wallet_transaction_uuid"] != result["merchant_transaction_uuid"]

    back = await payout(funded, "/v1/transfer/to-business", {"amount": "15.5", "currency": "USDT"})
    assert back.json()["result"]["user_wallet_balance"] == "24.50000000"
    assert back.json()["result"]["merchant_balance"] == "74.50000000"

    [entry] = await funded.result("/v1/balance")
    assert entry["balance"]["merchant"][0]["balance"] == "74.50000000"
    assert entry["balance"]["user"][0]["balance"] == "24.50000000"


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("/v1/transfer/to-personal", {"amount": "99.000001", "currency": "USDT"},
         "Not enough funds"),
        ("/v1/transfer/to-business", {"amount": "1", "currency": "USDT"}, "Not enough funds"),
        ("/v1/transfer/to-personal", {"amount": "0.4", "currency": "USDT"},
         "Minimum amount 0.5 USDT"),
        ("/v1/transfer/to-personal", {"amount": "1000001", "currency": "USDT"},
         "Maximum amount 1000000 USDT"),
        # 30 digits: more than Python's default decimal precision holds.
        ("/v1/transfer/to-personal", {"amount": "123456789012345678901234567890",
         "currency": "USDT"}, "Maximum amount 1000000 USDT"),
        ("/v1/transfer/to-personal", {"amount": "1", "currency": "USD"}, "No found user wallet"),
        ("/v1/transfer/to-business", {"amount": "1", "currency": "XYZ"},
         "Merchant wallet not found"),
    ],
)  # fmt: skip
async def test_refused_transfers_change_nothing(funded, path, body, message):
    response = await payout(funded, path, body)
    assert response.status_code == 422
    assert response.json() == {"state": 1, "message": message}
    [entry] = await funded.result("/v1/balance")
    assert entry["balance"]["merchant"][0]["balance"] == "99.00000000"


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({}, {"amount": ["validation.required"], "currency": ["validation.required"]}),
        ({"amount": "abc", "currency": "USDT"}, {"amount": ["validation.numeric"]}),
        ({"amount": "1.000000001", "currency": "USDT"}, {"amount": ["validation.decimal"]}),
    ],
)
async def test_transfer_validation(funded, body, errors):
    response = await payout(funded, "/v1/transfer/to-personal", body)
    assert response.status_code == 422
    assert response.json() == {"state": 1, "errors": errors}


async def test_transfers_need_the_payout_key(funded):
    response = await funded.post("/v1/transfer/to-personal", {"amount": "1", "currency": "USDT"})
    assert response.status_code == 401


async def test_concurrent_transfers_never_overdraw(funded, database):
    """99 USDT and 30 concurrent requests for 5: exactly 19 go through."""
    responses = await asyncio.gather(
        *(
            payout(funded, "/v1/transfer/to-personal", {"amount": "5", "currency": "USDT"})
            for _ in range(30)
        )
    )
    codes = [r.status_code for r in responses]
    assert codes.count(200) == 19 and codes.count(422) == 11
    [entry] = await funded.result("/v1/balance")
    assert entry["balance"]["merchant"][0]["balance"] == "4.00000000"
    assert entry["balance"]["user"][0]["balance"] == "95.00000000"


async def test_balance_usd_at_the_default_rates(funded, context):
    eth = await new_invoice(context, funded.merchant, order_id="eth", amount="0.5", currency="ETH")
    await credit(context, transfer(eth, "0.5", currency="ETH"))
    [entry] = await funded.result("/v1/balance")
    usd = {w["currency_code"]: w["balance_usd"] for w in entry["balance"]["merchant"]}
    assert usd == {"ETH": "0.00", "USDT": "99.00"}  # no ETH price known: not invented
    now = utcnow()
    await context.rates.store(
        [Rate("ETH", "USDT", Decimal("3000"), source, now) for source in ("binance", "kucoin")]
    )
    [entry] = await funded.result("/v1/balance")
    usd = {w["currency_code"]: w["balance_usd"] for w in entry["balance"]["merchant"]}
    assert usd == {"ETH": "1500.00", "USDT": "99.00"}
