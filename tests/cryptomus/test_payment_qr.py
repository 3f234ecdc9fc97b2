"""`payment/qr`: the PNG read back with a real QR decoder, and the QR code helpers."""

from __future__ import annotations

import base64
import io
import re
from datetime import timedelta
from decimal import Decimal

import httpx
import pytest
import zxingcpp
from PIL import Image
from sqlalchemy import update

from paydesk.app import create_app
from paydesk.chains.uri import parse_devnet_uri, payment_uri
from paydesk.db import utcnow
from paydesk.invoices.models import Invoice
from paydesk.merchants.service import create_merchant
from paydesk.web.qr import qr_png_data_uri, qr_svg
from tests.conftest import CryptomusClient

PNG_PREFIX = "data:image/png;base64,"
USDT_ERC20 = "0xdAC17F958D2ee523a2206206994597C13D831ec7"


@pytest.fixture
def settings_overrides():
    # eth for an EIP-681 invoice; its node is never called.
    return {"networks": ["devnet", "eth"], "chain_nodes": {"eth": "http://127.0.0.1:9"}}


def decoded(image: str) -> str:
    """The text of the one QR code in a `data:image/png;base64,…` URI."""
    assert image.startswith(PNG_PREFIX)
    picture = Image.open(io.BytesIO(base64.b64decode(image.removeprefix(PNG_PREFIX))))
    assert picture.format == "PNG"
    assert 250 <= picture.width == picture.height <= 330
    [found] = zxingcpp.read_barcodes(picture)
    assert found.format == zxingcpp.BarcodeFormat.QRCode
    return found.text


async def create(api: CryptomusClient, order_id: str, **fields: str) -> dict:
    return await api.result("/v1/payment", {"order_id": order_id, **fields})


async def qr(api: CryptomusClient, invoice_uuid: str) -> httpx.Response:
    return await api.post("/v1/payment/qr", {"merchant_payment_uuid": invoice_uuid})


def expected_uri(context, invoice: dict) -> str:
    network = context.catalogue.network(invoice["network"])
    service = context.catalogue.service(invoice["payer_currency"], invoice["network"])
    return payment_uri(network, service, invoice["address"], Decimal(invoice["payer_amount"]))


# ------------------------------------------------------------------ the endpoint
async def test_devnet_invoice_qr_carries_its_payment_uri(api: CryptomusClient, context):
    invoice = await create(api, "dev-1", amount="20", currency="USDT", network="devnet")
    assert invoice["address"]
    response = await qr(api, invoice["uuid"])
    assert response.status_code == 200
    body = response.json()
    assert list(body) == ["state", "result"] and body["state"] == 0
    assert list(body["result"]) == ["image"]
    text = decoded(body["result"]["image"])
    assert text == expected_uri(context, invoice)
    assert text == f"devnet:{invoice['address']}?amount=20&currency=USDT"
    # What `paydesk devnet pay` reads back from it.
    assert parse_devnet_uri(text) == (invoice["address"], Decimal(20), "USDT")


async def test_token_invoice_qr_is_an_eip681_transfer(api: CryptomusClient, context):
    invoice = await create(api, "eth-1", amount="12.5", currency="USDT", network="eth")
    response = await qr(api, invoice["uuid"])
    assert response.status_code == 200, response.text
    text = decoded(response.json()["result"]["image"])
    assert text == expected_uri(context, invoice)
    assert text == (
        f"ethereum:{USDT_ERC20}@1/transfer?address={invoice['address']}&uint256=12500000"
    )


async def test_an_expired_invoice_still_gets_its_qr(api: CryptomusClient, context):
    invoice = await create(api, "late", amount="20", currency="USDT", network="devnet")
    async with context.db.transaction() as session:
        await session.execute(
            update(Invoice)
            .where(Invoice.order_id == "late")
            .values(expired_at=utcnow() - timedelta(seconds=1))
        )
    response = await qr(api, invoice["uuid"])
    assert response.status_code == 200
    assert decoded(response.json()["result"]["image"]) == expected_uri(context, invoice)
    status = await api.result("/v1/payment/info", {"uuid": invoice["uuid"]})
    assert status["status"] == "cancel"


async def test_no_address_before_the_payer_picks_a_coin(api: CryptomusClient):
    invoice = await create(api, "fiat", amount="15", currency="USD")
    assert invoice["address"] is None
    response = await qr(api, invoice["uuid"])
    assert response.status_code == 422
    assert response.json() == {"state": 1, "message": "The address was not found"}


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({}, {"merchant_payment_uuid": ["validation.required"]}),
        (None, {"merchant_payment_uuid": ["validation.required"]}),
        ({"merchant_payment_uuid": ""}, {"merchant_payment_uuid": ["validation.required"]}),
        ({"uuid": "00000000-0000-4000-8000-000000000000"},
         {"merchant_payment_uuid": ["validation.required"]}),
        ({"merchant_payment_uuid": "not-a-uuid"}, {"merchant_payment_uuid": ["validation.uuid"]}),
        ({"merchant_payment_uuid": 12}, {"merchant_payment_uuid": ["validation.uuid"]}),
        ({"merchant_payment_uuid": ["00000000-0000-4000-8000-000000000000"]},
         {"merchant_payment_uuid": ["validation.uuid"]}),
    ],
)  # fmt: skip
async def test_validation(api: CryptomusClient, body, errors):
    response = await api.post("/v1/payment/qr", body)
    assert response.status_code == 422
    assert response.json() == {"state": 1, "errors": errors}


async def test_unknown_and_another_merchants_invoice_answer_alike(api: CryptomusClient, context):
    invoice = await create(api, "mine", amount="20", currency="USDT", network="devnet")
    async with context.db.transaction() as session:
        other = await create_merchant(session, context.vault, name="Other", email="o@x.test")
    transport = httpx.ASGITransport(app=create_app(context))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        theirs = await qr(CryptomusClient(http, other), invoice["uuid"])
    unknown = await qr(api, "00000000-0000-4000-8000-000000000000")
    for response in (theirs, unknown):
        assert response.status_code == 422
        assert response.json() == {"state": 1, "message": "Payment not found"}


async def test_signed_with_the_payment_key(api: CryptomusClient):
    invoice = await create(api, "signed", amount="20", currency="USDT", network="devnet")
    body = {"merchant_payment_uuid": invoice["uuid"]}
    response = await api.post("/v1/payment/qr", body, key="not-the-key")
    assert response.status_code == 401
    assert response.json()["message"] == "Invalid Sign."


# ------------------------------------------------------------------ the QR code helpers
@pytest.mark.parametrize(
    "text",
    [
        "TXYZopYRdj2D9XRtbG411XZZ3kM5VkAeBf",
        # A long EIP-681 URI: an 18-decimal token and a large amount.
        "ethereum:0x55d398326f99059fF775485246999027B3197955@56/transfer"
        "?address=0x9858EfFD232B4033E47d90003D41EC34EcaEda94"
        "&uint256=123456789012123456789012345678",
    ],
)
def test_png_data_uri_decodes(text):
    assert decoded(qr_png_data_uri(text)) == text


def test_svg_is_inline_scalable_and_titled():
    svg = qr_svg("bitcoin:bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq", title="Pay <0.1> BTC")
    assert svg.startswith("<svg ") and "<?xml" not in svg
    root = re.match(r"<svg\b[^>]*>", svg)
    assert root is not None
    attributes = dict(re.findall(r'([\w:-]+)="([^"]*)"', root.group(0)))
    assert "width" not in attributes and "height" not in attributes
    assert re.fullmatch(r"0 0 (\d+) \1", attributes["viewBox"])
    assert attributes["role"] == "img"
    assert "<title>Pay &lt;0.1&gt; BTC</title>" in svg
    # Black modules on an opaque white square: readable on a dark page.
    assert 'fill="#fff"' in svg and 'stroke="#000"' in svg


async def test_qr_asks_for_what_is_still_due(api, context):
    from tests.chains.test_testmode import follow

    invoice = await create(api, "short", amount="20", currency="USDT", network="devnet")
    await api.result("/v1/devnet/pay", {"uuid": invoice["uuid"], "amount": "5"})
    await api.result("/v1/devnet/mine", {})
    await follow(context)
    result = await api.result("/v1/payment/qr", {"merchant_payment_uuid": invoice["uuid"]})
    assert decoded(result["image"]) == f"devnet:{invoice['address']}?amount=15&currency=USDT"
