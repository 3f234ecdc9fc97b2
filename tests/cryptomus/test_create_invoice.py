"""`POST /v1/payment`: every parameter, its bounds on both sides, the documented errors,
pricing, and idempotency."""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update

from paydesk.chains.models import AddressCounter, DepositAddress
from paydesk.db import utcnow
from paydesk.idempotency.models import IdempotencyRecord
from paydesk.invoices.models import Invoice
from tests.conftest import PUBLIC_URL, CryptomusClient

INVOICE_FIELDS = [
    "uuid", "order_id", "amount", "payment_amount", "payer_amount", "discount_percent",
    "discount", "payer_currency", "currency", "comments", "merchant_amount", "commission",
    "network", "address", "from", "txid", "payment_status", "url", "expired_at", "status",
    "is_final", "additional_data", "created_at", "updated_at",
]  # fmt: skip
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+03:00$")
BASE = {"amount": "15", "currency": "USD", "order_id": "order-1"}


async def count(context, model) -> int:
    async with context.db.sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(model)))


async def assigned(context) -> list[DepositAddress]:
    """Addresses handed out (the rest of the table is the unassigned pool)."""
    async with context.db.sessionmaker() as session:
        rows = await session.scalars(
            select(DepositAddress)
            .where(DepositAddress.assigned_at.is_not(None))
            .order_by(DepositAddress.derivation_index)
        )
        return list(rows)


async def stored(context, order_id: str) -> Invoice:
    async with context.db.sessionmaker() as session:
        invoice = await session.scalar(select(Invoice).where(Invoice.order_id == order_id))
        assert invoice is not None
        return invoice


async def errors_of(api: CryptomusClient, body: dict[str, Any]) -> dict[str, list[str]]:
    response = await api.post("/v1/payment", body)
    assert response.status_code == 422, response.text
    payload = response.json()
    assert payload["state"] == 1
    return payload["errors"]


async def message_of(api: CryptomusClient, body: dict[str, Any]) -> str:
    response = await api.post("/v1/payment", body)
    assert response.status_code == 422, response.text
    payload = response.json()
    assert set(payload) == {"state", "message"}, payload
    return payload["message"]


# ------------------------------------------------------------------ the invoice object
async def test_fiat_invoice_where_the_payer_picks_the_coin(api: CryptomusClient):
    before = utcnow()
    result = await api.result("/v1/payment", BASE)
    assert list(result) == INVOICE_FIELDS
    assert uuid.UUID(result["uuid"]).version == 4
    assert result["order_id"] == "order-1"
    assert result["amount"] == "15.00"
    assert result["currency"] == "USD"
    for field in ("payment_amount", "payer_amount", "discount_percent", "payer_currency",
                  "merchant_amount", "commission", "network", "address", "from", "txid",
                  "additional_data", "comments"):  # fmt: skip
        assert result[field] is None, field
    assert result["discount"] == "0.00000000"
    assert result["payment_status"] == result["status"] == "check"
    assert result["is_final"] is False
    assert result["url"] == f"{PUBLIC_URL}/pay/{result['uuid']}"
    assert isinstance(result["expired_at"], int)
    assert TIMESTAMP.match(result["created_at"]) and TIMESTAMP.match(result["updated_at"])
    created = datetime.fromisoformat(result["created_at"])
    assert before.replace(microsecond=0) <= created <= utcnow()
    assert result["expired_at"] - int(created.timestamp()) in (3600, 3601)


async def test_crypto_invoice_gets_an_address_at_creation(api: CryptomusClient, context):
    result = await api.result(
        "/v1/payment", {"amount": "20", "currency": "USDT", "order_id": "u1", "network": "devnet"}
    )
    assert result["payer_currency"] == "USDT"
    assert result["network"] == "devnet"
    assert result["address"].startswith("pdev1")
    assert result["amount"] == "20.00000000"
    assert result["payer_amount"] == "20.00000000"
    assert result["payment_amount"] == "0.00000000"
    assert result["merchant_amount"] == "20.00000000"
    assert result["commission"] == "0.00000000"
    [row] = await assigned(context)
    assert row.address == result["address"] and row.network == "devnet"
    assert row.purpose == "invoice" and row.derivation_index == 0


async def test_single_network_coin_needs_no_network(api: CryptomusClient):
    result = await api.result("/v1/payment", {"amount": "0.5", "currency": "BTC", "order_id": "b"})
    assert result["network"] == "devnet" and result["address"]
    assert result["payer_amount"] == "0.50000000"


async def test_every_invoice_gets_its_own_address(api: CryptomusClient):
    addresses = set()
    for n in range(5):
        result = await api.result(
            "/v1/payment", {"amount": "5", "currency": "USDT", "order_id": f"a{n}"}
        )
        addresses.add(result["address"])
    assert len(addresses) == 5


async def test_codes_are_case_insensitive(api: CryptomusClient):
    result = await api.result(
        "/v1/payment", {"amount": "5", "currency": "usdt", "network": "DEVNET", "order_id": "c"}
    )
    assert result["currency"] == "USDT" and result["network"] == "devnet"


# ------------------------------------------------------------------ conversion
async def test_fiat_converted_through_the_stablecoin_peg(api: CryptomusClient):
    result = await api.result(
        "/v1/payment", {"amount": "25", "currency": "USD", "order_id": "c1", "to_currency": "USDT"}
    )
    assert result["currency"] == "USD" and result["amount"] == "25.00"
    assert result["payer_currency"] == "USDT"
    assert result["payer_amount"] == "25.00000000"
    assert result["address"]


async def test_created_amounts_are_stored_exactly(api: CryptomusClient, context):
    """Through the create path itself (on PostgreSQL it talks to the driver directly)."""
    await api.result(
        "/v1/payment", {"amount": "9" * 29 + ".99", "currency": "USD", "order_id": "a"}
    )
    await api.result("/v1/payment", {"amount": "123.12345678", "currency": "ETH", "order_id": "b"})
    assert (await stored(context, "a")).amount == Decimal("9" * 29 + ".99")
    eth = await stored(context, "b")
    assert eth.amount == eth.payer_amount == Decimal("123.12345678")
    assert str(eth.payer_amount) == "123.12345678"


@pytest.mark.parametrize(
    "settings_overrides", [{"static_rates": {"BTC/USD": "65000", "EUR/USD": "1.08"}}]
)
async def test_conversion_with_operator_rates(api: CryptomusClient, context, settings_overrides):
    result = await api.result(
        "/v1/payment", {"amount": "20", "currency": "USD", "order_id": "btc", "to_currency": "BTC"}
    )
    # 20 / 65000 = 0.000307692307..., rounded up to 8 places so the merchant is not short
    assert result["payer_amount"] == "0.00030770"
    invoice = await stored(context, "btc")
    assert invoice.payer_amount_exchange_rate == Decimal(1) / Decimal(65000)
    assert invoice.rate_source == "static"
    result = await api.result(
        "/v1/payment",
        {"amount": "100", "currency": "EUR", "order_id": "eur", "to_currency": "USDT"},
    )
    assert result["payer_amount"] == "108.00000000"


async def test_missing_rate_is_refused_not_invented(api: CryptomusClient, context):
    body = {"amount": "25", "currency": "EUR", "order_id": "e", "to_currency": "BTC"}
    assert await message_of(api, body) == "Error convert to_currency"
    assert await count(context, Invoice) == 0


@pytest.mark.parametrize("to_currency", ["EUR", "USD", "NOPE"])
async def test_to_currency_must_be_a_served_crypto(api: CryptomusClient, to_currency):
    body = {**BASE, "to_currency": to_currency}
    assert await message_of(api, body) == "Not found service to_currency"


# ------------------------------------------------------------------ business errors
@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"currency": "ZZZ"}, "The currency was not found"),
        ({"currency": "XMR"}, "The currency was not found"),  # a coin on no enabled network
        ({"currency": "USDT", "network": "TRC20"}, "The network was not found"),
        ({"currency": "USDT", "network": "tron"}, "The network was not found"),  # not enabled
        ({"currency": "USDT", "amount": "0.49"}, "Minimum amount 0.5 USDT"),
        ({"currency": "USDT", "amount": "1000000.01"}, "Maximum amount 1000000 USDT"),
        ({"currency": "BTC", "amount": "0.000009"}, "Minimum amount 0.00001 BTC"),
        ({"currency": "USD", "amount": "0.001"}, "Minimum amount 0.01 USD"),
        ({"currencies": [{"currency": "ZZZ"}]}, "The currency was not found"),
        (
            {"except_currencies": [{"currency": "USDT", "network": "nope"}]},
            "The network was not found",
        ),
    ],
)
async def test_business_errors(api: CryptomusClient, context, body, message):
    assert await message_of(api, {**BASE, **body}) == message
    assert await count(context, Invoice) == 0
    assert await assigned(context) == []


async def test_limits_are_inclusive(api: CryptomusClient):
    await api.result("/v1/payment", {"amount": "0.5", "currency": "USDT", "order_id": "min"})
    await api.result("/v1/payment", {"amount": "1000000", "currency": "USDT", "order_id": "max"})


async def test_catalogue_switches_a_service_off(tmp_path: Path, database, merchant_factory):
    override = tmp_path / "catalogue.toml"
    override.write_text('[[services]]\nnetwork = "devnet"\ncurrency = "USDT"\navailable = false\n')
    api = await merchant_factory(catalogue_file=override)
    body = {"amount": "5", "currency": "USDT", "order_id": "x", "network": "devnet"}
    assert await message_of(api, body) == "Wallet not found"
    services = await api.result("/v1/payment/services")
    usdt = next(s for s in services if s["currency"] == "USDT")
    assert usdt["is_available"] is False


# ------------------------------------------------------------------ discount and commission
@pytest.mark.parametrize(
    ("percent", "discount", "payer_amount"),
    [
        (5, "0.75000000", "14.25000000"),
        (-5, "-0.75000000", "15.75000000"),
        (0, "0.00000000", "15.00000000"),
    ],
)
async def test_discount_follows_the_documented_examples(
    api: CryptomusClient, percent, discount, payer_amount
):
    result = await api.result(
        "/v1/payment",
        {"amount": "15", "currency": "USDT", "order_id": "d", "discount_percent": percent},
    )
    assert result["discount_percent"] == percent
    assert result["discount"] == discount
    assert result["payer_amount"] == payer_amount


async def test_discount_needs_a_concrete_coin(api: CryptomusClient):
    result = await api.result("/v1/payment", {**BASE, "discount_percent": 5})
    assert result["discount_percent"] == 5
    assert result["discount"] == "0.00000000" and result["payer_amount"] is None


@pytest.fixture
async def merchant_factory(database, tmp_path):
    """A client over a context with custom settings (closed at test end)."""
    import httpx

    from paydesk.app import create_app
    from paydesk.context import build_context
    from paydesk.merchants.service import create_merchant
    from tests.conftest import _empty_tables, make_settings

    opened = []

    async def make(**overrides: Any) -> CryptomusClient:
        ctx = build_context(make_settings(database.url, tmp_path, **overrides))
        async with ctx.db.transaction() as session:
            issued = await create_merchant(session, ctx.vault, name="M", email="m@x.test")
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_app(ctx)), base_url="http://paydesk.test"
        )
        opened.append((ctx, client))
        return CryptomusClient(client, issued)

    yield make
    for ctx, client in opened:
        await client.aclose()
        await _empty_tables(ctx)
        await ctx.close()


COMMISSION_2 = '[[services]]\nnetwork = "devnet"\ncurrency = "USDT"\npercent = "2"\n'
COMMISSION_1 = '[[services]]\nnetwork = "devnet"\ncurrency = "USDT"\npercent = "1"\n'


async def test_commission_as_in_the_documented_invoice(tmp_path, merchant_factory):
    """Spec 3.3: 15 USDT, -5 % → payer 15.75; 2 % commission → merchant 15.435."""
    (tmp_path / "c.toml").write_text(COMMISSION_2)
    api = await merchant_factory(catalogue_file=tmp_path / "c.toml")
    result = await api.result(
        "/v1/payment",
        {"amount": "15", "currency": "USDT", "order_id": "s", "discount_percent": -5},
    )
    assert result["payer_amount"] == "15.75000000"
    assert result["commission"] == "0.31500000"
    assert result["merchant_amount"] == "15.43500000"
    services = await api.result("/v1/payment/services")
    assert next(s for s in services if s["currency"] == "USDT")["commission"]["percent"] == "2.00"


@pytest.mark.parametrize(
    ("subtract", "payer_amount", "merchant_amount"),
    [
        (0, "100.00000000", "99.00000000"),
        (50, "100.50000000", "99.50000000"),
        (100, "101.00000000", "100.00000000"),
    ],
)
async def test_subtract_moves_the_commission_to_the_payer(
    tmp_path, merchant_factory, subtract, payer_amount, merchant_amount
):
    """Spec 3.1: 1 % commission, subtract 100 → the payer pays 101 for 100."""
    (tmp_path / "c.toml").write_text(COMMISSION_1)
    api = await merchant_factory(catalogue_file=tmp_path / "c.toml")
    result = await api.result(
        "/v1/payment", {"amount": "100", "currency": "USDT", "order_id": "s", "subtract": subtract}
    )
    assert result["payer_amount"] == payer_amount
    assert result["commission"] == "1.00000000"
    assert result["merchant_amount"] == merchant_amount


# ------------------------------------------------------------------ field validation
@pytest.mark.parametrize(
    ("field", "value", "rule"),
    [
        # amount
        ("amount", None, "validation.required"),
        ("amount", "", "validation.required"),
        ("amount", "  ", "validation.required"),
        ("amount", "abc", "validation.numeric"),
        ("amount", "1,5", "validation.numeric"),
        ("amount", True, "validation.numeric"),
        ("amount", [], "validation.numeric"),
        ("amount", "0", "validation.gt.numeric"),
        ("amount", "-1", "validation.gt.numeric"),
        ("amount", "1" + "0" * 30, "validation.max.numeric"),
        ("amount", "1.7976931348623157e308", "validation.max.numeric"),
        ("amount", "1e400000", "validation.max.numeric"),
        # currency / network
        ("currency", None, "validation.required"),
        ("currency", 5, "validation.string"),
        ("currency", "X" * 17, "validation.max.string"),
        ("network", 5, "validation.string"),
        ("network", "n" * 33, "validation.max.string"),
        ("to_currency", {"a": 1}, "validation.string"),
        # order_id
        ("order_id", None, "validation.required"),
        ("order_id", "", "validation.required"),
        ("order_id", "a" * 129, "validation.max.string"),
        ("order_id", "has space", "validation.alpha_dash"),
        ("order_id", "dot.ted", "validation.alpha_dash"),
        ("order_id", "ünïcode", "validation.alpha_dash"),
        ("order_id", 1.5, "validation.string"),
        ("order_id", True, "validation.string"),
        # URLs
        ("url_callback", "a.bcd", "validation.min.string"),
        ("url_callback", "notaurl", "validation.url"),
        ("url_callback", "ftp://shop.test/x", "validation.url"),
        ("url_return", "https://s.test/" + "p" * 241, "validation.max.string"),
        ("url_success", "javascript:alert(1)", "validation.url"),
        # lifetime
        ("lifetime", 299, "validation.min.numeric"),
        ("lifetime", "43201", "validation.max.numeric"),
        ("lifetime", 3600.5, "validation.integer"),
        ("lifetime", "1h", "validation.integer"),
        ("lifetime", True, "validation.integer"),
        ("lifetime", "9" * 5000, "validation.max.numeric"),
        ("lifetime", "1e3", "validation.integer"),
        # subtract
        ("subtract", -1, "validation.min.numeric"),
        ("subtract", 101, "validation.max.numeric"),
        ("subtract", "ten", "validation.integer"),
        # accuracy_payment_percent
        ("accuracy_payment_percent", "-0.01", "validation.min.numeric"),
        ("accuracy_payment_percent", "5.01", "validation.max.numeric"),
        ("accuracy_payment_percent", "five", "validation.numeric"),
        # discount_percent
        ("discount_percent", -100, "validation.min.numeric"),
        ("discount_percent", 101, "validation.max.numeric"),
        ("discount_percent", "5.5", "validation.integer"),
        # text
        ("additional_data", "x" * 256, "validation.max.string"),
        ("additional_data", 12, "validation.string"),
        ("from_referral_code", "r" * 256, "validation.max.string"),
        # course_source
        ("course_source", "Foo123", "validation.in"),
        ("course_source", "Bin", "validation.min.string"),
        ("course_source", "B" * 21, "validation.max.string"),
        # booleans
        ("is_payment_multiple", "yes", "validation.boolean"),
        ("is_payment_multiple", 2, "validation.boolean"),
        ("is_refresh", "maybe", "validation.boolean"),
        # lists
        ("currencies", "USDT", "validation.array"),
        ("except_currencies", {"currency": "USDT"}, "validation.array"),
    ],
)
async def test_each_rule_rejects_with_its_laravel_key(
    api: CryptomusClient, context, field, value, rule
):
    errors = await errors_of(api, {**BASE, field: value})
    assert errors == {field: [rule]}
    assert await count(context, Invoice) == 0


@pytest.mark.parametrize(
    ("field", "value", "check"),
    [
        ("order_id", "a" * 128, lambda r: r["order_id"] == "a" * 128),
        ("order_id", "A-b_9", lambda r: r["order_id"] == "A-b_9"),
        ("order_id", 12345, lambda r: r["order_id"] == "12345"),
        ("amount", 15, lambda r: r["amount"] == "15.00"),
        ("amount", 10.5, lambda r: r["amount"] == "10.50"),
        ("amount", "15.005", lambda r: r["amount"] == "15.01"),
        ("amount", " 15 ", lambda r: r["amount"] == "15.00"),
        ("amount", "9" * 30, lambda r: r["amount"] == "9" * 30 + ".00"),
        ("lifetime", 300, lambda r: True),
        ("lifetime", "43200", lambda r: True),
        ("lifetime", 3600.0, lambda r: True),
        ("subtract", 0, lambda r: True),
        ("subtract", "100", lambda r: True),
        ("accuracy_payment_percent", 0, lambda r: True),
        ("accuracy_payment_percent", "5", lambda r: True),
        ("accuracy_payment_percent", 2.5, lambda r: True),
        ("discount_percent", -99, lambda r: r["discount_percent"] == -99),
        ("discount_percent", "100", lambda r: r["discount_percent"] == 100),
        ("additional_data", "x" * 255, lambda r: r["additional_data"] == "x" * 255),
        ("additional_data", "user/42 Привет", lambda r: r["additional_data"] == "user/42 Привет"),
        ("url_callback", "https://s.test/" + "p" * 240, lambda r: True),
        ("url_return", "http://localhost:8080/back?x=1", lambda r: True),
        ("course_source", "binancep2p", lambda r: True),
        ("course_source", "Kucoin", lambda r: True),
        ("course_source", "Exmo", lambda r: True),
        ("from_referral_code", "ref-1", lambda r: True),
        ("plugin_name", "magento_2", lambda r: True),
    ],
)
async def test_values_at_the_bounds_are_accepted(api: CryptomusClient, field, value, check):
    result = await api.result("/v1/payment", {**BASE, field: value})
    assert check(result)


@pytest.mark.parametrize("value", [True, False, 1, 0, "1", "0", "true", "false", "TRUE", "False"])
async def test_every_boolean_form_real_clients_send(api: CryptomusClient, context, value):
    await api.result("/v1/payment", {**BASE, "is_payment_multiple": value, "is_refresh": value})
    invoice = await stored(context, "order-1")
    assert invoice.is_payment_multiple is (value in (True, 1, "1", "true", "TRUE"))


async def test_stored_parameters(api: CryptomusClient, context):
    await api.result(
        "/v1/payment",
        {
            **BASE,
            "lifetime": "900",
            "subtract": "30",
            "accuracy_payment_percent": "2.5",
            "is_payment_multiple": False,
            "url_callback": "https://shop.test/cb",
            "url_return": "https://shop.test/back",
            "url_success": "https://shop.test/ok",
            "course_source": "kucoin",
            "from_referral_code": "partner",
            "currencies": [{"currency": "usdt", "network": "DEVNET"}, {"currency": "BTC"}],
            "except_currencies": [{"currency": "ETH", "network": None}],
        },
    )
    invoice = await stored(context, "order-1")
    assert invoice.lifetime == 900 and invoice.subtract == 30
    assert invoice.accuracy_payment_percent == Decimal("2.5")
    assert invoice.is_payment_multiple is False
    assert (invoice.url_callback, invoice.url_return, invoice.url_success) == (
        "https://shop.test/cb", "https://shop.test/back", "https://shop.test/ok",
    )  # fmt: skip
    assert invoice.course_source == "Kucoin"
    assert invoice.from_referral_code == "partner"
    assert invoice.currencies == [
        {"currency": "USDT", "network": "devnet"},
        {"currency": "BTC", "network": None},
    ]
    assert invoice.except_currencies == [{"currency": "ETH", "network": None}]
    assert invoice.expired_at - invoice.created_at == timedelta(seconds=900)


async def test_null_for_every_unset_field_is_accepted(api: CryptomusClient):
    optional = [
        "network", "url_return", "url_success", "url_callback", "is_payment_multiple",
        "lifetime", "to_currency", "subtract", "accuracy_payment_percent", "additional_data",
        "currencies", "except_currencies", "course_source", "from_referral_code",
        "discount_percent", "is_refresh",
    ]  # fmt: skip
    result = await api.result("/v1/payment", {**BASE, **dict.fromkeys(optional)})
    assert result["status"] == "check"


async def test_all_errors_are_reported_together_in_field_order(api: CryptomusClient):
    errors = await errors_of(
        api, {"amount": "x", "order_id": "a b", "lifetime": 1, "currencies": [{"network": "x"}]}
    )
    assert errors == {
        "amount": ["validation.numeric"],
        "currency": ["validation.required"],
        "order_id": ["validation.alpha_dash"],
        "lifetime": ["validation.min.numeric"],
        "currencies.0.currency": ["validation.required"],
    }


async def test_empty_body_lists_the_required_fields(api: CryptomusClient):
    response = await api.post("/v1/payment", body=b"")
    assert response.status_code == 422
    assert response.json() == {
        "state": 1,
        "errors": {
            "amount": ["validation.required"],
            "currency": ["validation.required"],
            "order_id": ["validation.required"],
        },
    }


# ------------------------------------------------------------------ idempotency
async def test_same_order_id_returns_the_existing_invoice(api: CryptomusClient, context):
    first = await api.result("/v1/payment", BASE)
    again = await api.result("/v1/payment", {**BASE, "amount": "99", "currency": "EUR"})
    assert again == first
    assert await count(context, Invoice) == 1


async def test_order_ids_are_per_merchant(api: CryptomusClient, merchant_factory):
    other = await merchant_factory()
    first = await api.result("/v1/payment", BASE)
    second = await other.result("/v1/payment", BASE)
    assert first["uuid"] != second["uuid"]


async def test_concurrent_creates_make_one_invoice(api: CryptomusClient, context):
    body = {"amount": "5", "currency": "USDT", "order_id": "race"}
    results = await asyncio.gather(*(api.result("/v1/payment", body) for _ in range(8)))
    assert len({r["uuid"] for r in results}) == 1
    assert len({r["address"] for r in results}) == 1
    assert await count(context, Invoice) == 1
    assert len(await assigned(context)) == 1


async def test_idempotency_key_replays_the_first_response(api: CryptomusClient, context):
    headers = {"Idempotency-Key": "key-1"}
    first = await api.post("/v1/payment", BASE, headers=headers)
    second = await api.post("/v1/payment", BASE, headers=headers)
    assert first.status_code == second.status_code == 200
    assert second.content == first.content
    assert second.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert await count(context, IdempotencyRecord) == 1


async def test_idempotency_key_with_another_body_is_a_conflict(api: CryptomusClient, context):
    headers = {"Idempotency-Key": "key-1"}
    await api.result("/v1/payment", BASE, headers=headers)
    response = await api.post("/v1/payment", {**BASE, "order_id": "other"}, headers=headers)
    assert response.status_code == 422
    assert response.json() == {
        "state": 1,
        "message": "The Idempotency-Key was already used for a different request",
    }
    assert await count(context, Invoice) == 1


async def test_failed_request_does_not_consume_the_key(api: CryptomusClient, context):
    headers = {"Idempotency-Key": "key-2"}
    bad = await api.post("/v1/payment", {**BASE, "currency": "ZZZ"}, headers=headers)
    assert bad.status_code == 422
    assert await count(context, IdempotencyRecord) == 0
    await api.result("/v1/payment", {**BASE, "order_id": "ok"}, headers=headers)


@pytest.mark.parametrize("key", ["", "x" * 256, "has space", "ключ"])
async def test_malformed_idempotency_key(api: CryptomusClient, context, key):
    # The raw UTF-8 bytes go on the wire; the server sees them as latin-1 text.
    response = await api.post("/v1/payment", BASE, headers={"Idempotency-Key": key.encode()})
    assert response.status_code == 422
    assert "Idempotency-Key" in response.json()["message"]
    assert await count(context, Invoice) == 0


async def test_concurrent_requests_with_one_key(api: CryptomusClient, context):
    headers = {"Idempotency-Key": "same"}
    bodies = [{**BASE, "order_id": f"o{n}"} for n in range(6)]
    responses = await asyncio.gather(*(api.post("/v1/payment", b, headers=headers) for b in bodies))
    ok = [r for r in responses if r.status_code == 200]
    assert len(ok) == 1
    assert all(r.status_code == 422 for r in responses if r not in ok)
    assert await count(context, Invoice) == 1


# ------------------------------------------------------------------ expiry and is_refresh
async def expire(context, order_id: str) -> None:
    async with context.db.transaction() as session:
        await session.execute(
            update(Invoice)
            .where(Invoice.order_id == order_id)
            .values(expired_at=utcnow() - timedelta(seconds=1))
        )


async def test_expired_invoice_reads_as_cancelled(api: CryptomusClient, context):
    created = await api.result("/v1/payment", {"amount": "5", "currency": "USDT", "order_id": "e"})
    await expire(context, "e")
    info = await api.result("/v1/payment/info", {"uuid": created["uuid"]})
    assert info["status"] == info["payment_status"] == "cancel"
    assert info["is_final"] is True
    again = await api.result("/v1/payment", {"amount": "5", "currency": "USDT", "order_id": "e"})
    assert again["status"] == "cancel" and again["address"] == created["address"]


async def test_is_refresh_renews_only_address_status_and_expiry(api: CryptomusClient, context):
    body = {"amount": "5", "currency": "USDT", "order_id": "r", "additional_data": "first"}
    created = await api.result("/v1/payment", body)
    await expire(context, "r")
    refreshed = await api.result(
        "/v1/payment",
        {**body, "amount": "7", "additional_data": "second", "lifetime": 600, "is_refresh": True},
    )
    assert refreshed["uuid"] == created["uuid"]
    assert refreshed["status"] == "check" and refreshed["is_final"] is False
    assert refreshed["address"] != created["address"] and refreshed["address"].startswith("pdev1")
    assert refreshed["expired_at"] > int(utcnow().timestamp()) + 3500  # the original lifetime
    for field in ("amount", "payer_amount", "additional_data", "currency", "network", "created_at"):
        assert refreshed[field] == created[field], field
    assert len(await assigned(context)) == 2


async def test_is_refresh_leaves_a_live_invoice_alone(api: CryptomusClient):
    body = {"amount": "5", "currency": "USDT", "order_id": "live"}
    created = await api.result("/v1/payment", body)
    again = await api.result("/v1/payment", {**body, "is_refresh": "1"})
    assert again == created


async def test_worker_sweep_expires_due_invoices(api: CryptomusClient, context):
    from paydesk.invoices.worker import expire_once

    await api.result("/v1/payment", {"amount": "5", "currency": "USDT", "order_id": "w1"})
    await api.result("/v1/payment", {"amount": "5", "currency": "USDT", "order_id": "w2"})
    await expire(context, "w1")
    assert await expire_once(context) == 1
    assert (await stored(context, "w1")).status == "cancel"
    assert (await stored(context, "w2")).status == "check"
    assert await expire_once(context) == 0


async def test_rejected_create_leaves_no_trace(api: CryptomusClient, context):
    await api.result("/v1/payment", {"amount": "5", "currency": "USDT", "order_id": "keep"})
    async with context.db.sessionmaker() as session:
        index_before = await session.scalar(select(AddressCounter.next_index))
    response = await api.post(
        "/v1/payment", {"amount": "0.1", "currency": "USDT", "order_id": "no"}
    )
    assert response.status_code == 422
    async with context.db.sessionmaker() as session:
        assert await session.scalar(select(AddressCounter.next_index)) == index_before
    assert await count(context, Invoice) == 1
    assert len(await assigned(context)) == 1
