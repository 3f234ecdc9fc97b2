"""`payment/info`, `payment/list` (history) and `payment/services`."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest
from sqlalchemy import update

from paydesk.api.cryptomus.schemas import CRYPTOMUS_ZONE
from paydesk.db import utcnow
from paydesk.invoices.models import Invoice
from tests.conftest import CryptomusClient


async def create(api: CryptomusClient, order_id: str, **extra) -> dict:
    return await api.result(
        "/v1/payment", {"amount": "15", "currency": "USD", "order_id": order_id, **extra}
    )


# ------------------------------------------------------------------ info
async def test_info_by_uuid_and_by_order_id(api: CryptomusClient):
    created = await create(api, "o-1")
    assert await api.result("/v1/payment/info", {"uuid": created["uuid"]}) == created
    assert await api.result("/v1/payment/info", {"order_id": "o-1"}) == created


async def test_order_id_wins_when_both_are_given(api: CryptomusClient):
    first = await create(api, "first")
    second = await create(api, "second")
    result = await api.result("/v1/payment/info", {"uuid": first["uuid"], "order_id": "second"})
    assert result["uuid"] == second["uuid"]


@pytest.mark.parametrize(
    "body",
    [
        {"uuid": "00000000-0000-4000-8000-000000000000"},
        {"order_id": "missing"},
    ],
)
async def test_unknown_invoice(api: CryptomusClient, body):
    await create(api, "exists")
    response = await api.post("/v1/payment/info", body)
    assert response.status_code == 422
    assert response.json() == {"state": 1, "message": "Payment not found"}


async def test_another_merchants_invoice_is_not_found(api: CryptomusClient, context):
    import httpx

    from paydesk.app import create_app
    from paydesk.merchants.service import create_merchant

    created = await create(api, "mine")
    async with context.db.transaction() as session:
        other = await create_merchant(session, context.vault, name="Other", email="o@x.test")
    transport = httpx.ASGITransport(app=create_app(context))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        response = await CryptomusClient(http, other).post(
            "/v1/payment/info", {"uuid": created["uuid"]}
        )
    assert response.json() == {"state": 1, "message": "Payment not found"}


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        (
            {},
            {"uuid": ["validation.required_without"], "order_id": ["validation.required_without"]},
        ),
        (
            {"uuid": "", "order_id": None},
            {"uuid": ["validation.required_without"], "order_id": ["validation.required_without"]},
        ),
        ({"uuid": "not-a-uuid"}, {"uuid": ["validation.uuid"]}),
        ({"order_id": "a b"}, {"order_id": ["validation.alpha_dash"]}),
        ({"order_id": "a" * 129}, {"order_id": ["validation.max.string"]}),
    ],
)
async def test_info_validation(api: CryptomusClient, body, errors):
    response = await api.post("/v1/payment/info", body)
    assert response.status_code == 422
    assert response.json() == {"state": 1, "errors": errors}


# ------------------------------------------------------------------ history
async def test_history_pages_newest_first_with_cursors(api: CryptomusClient):
    for n in range(32):
        await create(api, f"h{n:02d}")
    page1 = await api.result("/v1/payment/list")
    assert [i["order_id"] for i in page1["items"]] == [f"h{n:02d}" for n in range(31, 16, -1)]
    assert page1["paginate"] == {
        "count": 15,
        "hasPages": True,
        "nextCursor": page1["paginate"]["nextCursor"],
        "previousCursor": None,
        "perPage": 15,
    }
    cursor = page1["paginate"]["nextCursor"]
    decoded = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    assert decoded["_pointsToNextItems"] is True

    page2 = await api.result("/v1/payment/list", params={"cursor": cursor})
    assert [i["order_id"] for i in page2["items"]] == [f"h{n:02d}" for n in range(16, 1, -1)]
    assert page2["paginate"]["previousCursor"] is not None

    page3 = await api.result("/v1/payment/list", params={"cursor": page2["paginate"]["nextCursor"]})
    assert [i["order_id"] for i in page3["items"]] == ["h01", "h00"]
    assert page3["paginate"]["count"] == 2
    assert page3["paginate"]["nextCursor"] is None
    assert page3["paginate"]["hasPages"] is True

    back = await api.result(
        "/v1/payment/list", params={"cursor": page3["paginate"]["previousCursor"]}
    )
    assert [i["order_id"] for i in back["items"]] == [i["order_id"] for i in page2["items"]]
    first_again = await api.result(
        "/v1/payment/list", params={"cursor": back["paginate"]["previousCursor"]}
    )
    assert first_again["items"] == page1["items"]
    assert first_again["paginate"]["previousCursor"] is None


async def test_history_items_are_full_invoices(api: CryptomusClient):
    created = await create(api, "one")
    page = await api.result("/v1/payment/list", {})
    assert page["items"] == [created]
    assert page["paginate"]["hasPages"] is False
    assert page["paginate"]["nextCursor"] is None


async def test_cursor_in_the_body_and_junk_cursors(api: CryptomusClient):
    for n in range(17):
        await create(api, f"c{n}")
    first = await api.result("/v1/payment/list", {})
    via_body = await api.result("/v1/payment/list", {"cursor": first["paginate"]["nextCursor"]})
    assert [i["order_id"] for i in via_body["items"]] == ["c1", "c0"]
    for junk in ("1", 2, "%%%", base64.urlsafe_b64encode(b'{"id":"x"}').decode()):
        page = await api.result("/v1/payment/list", {"cursor": junk})
        assert page["items"] == first["items"], junk


async def test_query_cursor_is_not_part_of_the_signature(api: CryptomusClient):
    for n in range(16):
        await create(api, f"q{n}")
    first = await api.result("/v1/payment/list", {})
    page = await api.result(
        "/v1/payment/list", body=b"", params={"cursor": first["paginate"]["nextCursor"]}
    )
    assert [i["order_id"] for i in page["items"]] == ["q0"]


async def test_history_date_filters_are_utc_plus_3(api: CryptomusClient, context):
    for name in ("old", "mid", "new"):
        await create(api, name)
    now = utcnow()
    async with context.db.transaction() as session:
        for name, days in (("old", 10), ("mid", 5)):
            await session.execute(
                update(Invoice)
                .where(Invoice.order_id == name)
                .values(created_at=now - timedelta(days=days))
            )

    def local(moment) -> str:
        return moment.astimezone(CRYPTOMUS_ZONE).strftime("%Y-%m-%d %H:%M:%S")

    page = await api.result(
        "/v1/payment/list",
        {"date_from": local(now - timedelta(days=6)), "date_to": local(now - timedelta(days=4))},
    )
    assert [i["order_id"] for i in page["items"]] == ["mid"]
    page = await api.result("/v1/payment/list", {"date_from": local(now - timedelta(days=6))})
    assert [i["order_id"] for i in page["items"]] == ["new", "mid"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("date_from", "2023-05-04"),
        ("date_from", "04.05.2023 00:00:00"),
        ("date_to", "2023-13-45 00:00:00"),
        ("date_to", 20230504),
    ],
)
async def test_history_date_format(api: CryptomusClient, field, value):
    response = await api.post("/v1/payment/list", {field: value})
    assert response.status_code == 422
    assert response.json() == {"state": 1, "errors": {field: ["validation.regex"]}}


async def test_history_accepts_a_single_digit_hour(api: CryptomusClient):
    await api.result("/v1/payment/list", {"date_from": "2023-05-04 0:00:00"})


# ------------------------------------------------------------------ services
async def test_services_list_shape(api: CryptomusClient, context):
    services = await api.result("/v1/payment/services")
    assert len(services) == len(context.catalogue.services) > 0
    for service in services:
        assert list(service) == ["network", "currency", "is_available", "limit", "commission"]
        assert service["network"] == service["network"].upper()
        assert isinstance(service["is_available"], bool)
        for value in (*service["limit"].values(), *service["commission"].values()):
            assert isinstance(value, str)
            float(value)  # clients parse them with float()
    usdt = next(s for s in services if s["currency"] == "USDT")
    assert usdt == {
        "network": "DEVNET",
        "currency": "USDT",
        "is_available": True,
        "limit": {"min_amount": "0.50000000", "max_amount": "1000000.00000000"},
        "commission": {"fee_amount": "0.00", "percent": "0.00"},
    }
