"""Test mode: the devnet driven through the API and the CLI, as an integrator would."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from sqlalchemy import select

from paydesk.chains.devnet import DevnetAdapter
from paydesk.chains.watcher import Watcher
from paydesk.webhooks.models import WebhookEvent
from tests.conftest import compact, free_port, sign
from tests.live import create_live_merchant, live_server, paydesk_env, run_cli


@pytest.fixture
def settings_overrides():
    return {"callback_allowlist": ["127.0.0.0/8"]}


async def follow(context) -> None:
    watcher = Watcher(
        context, context.catalogue.network("devnet"), DevnetAdapter(context.db), owner="t"
    )
    for _ in range(20):
        result = await watcher.step()
        if not (result.blocks or result.rolled_back):
            return


async def invoice_of(api, order_id="o1"):
    return await api.result(
        "/v1/payment",
        {"amount": "20", "currency": "USDT", "network": "devnet", "order_id": order_id},
    )


async def info(api, invoice):
    return await api.result("/v1/payment/info", {"uuid": invoice["uuid"]})


async def test_pay_mine_and_see_it_paid(api, context):
    invoice = await invoice_of(api)
    sent = await api.result("/v1/devnet/pay", {"uuid": invoice["uuid"]})
    assert (sent["amount"], sent["currency"], sent["address"]) == (
        "20.00000000", "USDT", invoice["address"]
    )  # fmt: skip
    await follow(context)
    assert (await info(api, invoice))["payment_status"] == "confirm_check"
    [block] = await api.result("/v1/devnet/mine", {})
    assert block["height"] == 0 and block["hash"].startswith("0x")
    await follow(context)
    paid = await info(api, invoice)
    assert (paid["payment_status"], paid["txid"]) == ("paid", sent["txid"])


async def test_underpay_wrong_coin_and_late(api, context):
    under = await invoice_of(api, "under")
    await api.result("/v1/devnet/pay", {"order_id": "under", "amount": "5"})
    wrong = await invoice_of(api, "wrong")
    await api.result("/v1/devnet/pay", {"uuid": wrong["uuid"], "currency": "USDC"})
    late = await invoice_of(api, "late")
    await api.result("/v1/devnet/pay", {"uuid": late["uuid"], "late": True})
    await api.result("/v1/devnet/mine", {"blocks": 2})
    await follow(context)
    assert (await info(api, under))["payment_status"] == "wrong_amount_waiting"
    assert (await info(api, wrong))["payment_status"] == "check"
    assert (await info(api, late))["payment_status"] == "paid"
    async with context.db.reader() as session:
        events = await session.scalars(select(WebhookEvent).order_by(WebhookEvent.id))
        late_statuses = [e.payload["status"] for e in events if e.payload["uuid"] == late["uuid"]]
    assert late_statuses == ["cancel", "paid"]  # expired first, then paid after expiry
    # The rest of the underpaid invoice: by default what is still due.
    rest = await api.result("/v1/devnet/pay", {"order_id": "under"})
    assert rest["amount"] == "15.00000000"


async def test_reorg_through_the_api(api, context):
    invoice = await invoice_of(api)
    await api.result("/v1/devnet/mine", {})
    await api.result("/v1/devnet/pay", {"uuid": invoice["uuid"]})
    await api.result("/v1/devnet/mine", {})
    await follow(context)
    assert (await info(api, invoice))["payment_status"] == "paid"
    blocks = await api.result("/v1/devnet/reorg", {"blocks": 1, "drop": True})
    assert [b["height"] for b in blocks] == [1, 2]
    await follow(context)
    assert (await info(api, invoice))["payment_status"] == "check"


async def test_bad_requests_get_the_dialects_errors(api):
    response = await api.post("/v1/devnet/reorg", {"blocks": 0})
    assert response.status_code == 422 and "blocks" in response.json()["errors"]
    response = await api.post("/v1/devnet/reorg", {"blocks": 5})
    assert response.status_code == 422
    assert "not that long" in response.json()["message"]
    fiat = await api.result("/v1/payment", {"amount": "20", "currency": "USD", "order_id": "fiat"})
    response = await api.post("/v1/devnet/pay", {"uuid": fiat["uuid"]})
    assert response.status_code == 422 and "devnet address" in response.json()["message"]


@pytest.mark.slow
def test_the_readme_demo(tmp_path, receiver):
    """One command starts Paydesk; an invoice made through the Cryptomus API is paid with
    `paydesk devnet pay`; the status goes to paid and the webhook arrives."""
    env = paydesk_env(
        tmp_path / "data",
        None,
        PAYDESK_DEVNET_BLOCK_SECONDS="0.5",
        PAYDESK_CALLBACK_ALLOWLIST="127.0.0.0/8",
    )
    merchant = create_live_merchant(env)
    with live_server(env, free_port()) as base_url:

        def call(path: str, data: dict) -> dict:
            body = compact(data)
            answer = httpx.post(
                base_url + path,
                content=body,
                headers={
                    "merchant": merchant.merchant,
                    "sign": sign(body, merchant.payment_key),
                    "content-type": "application/json",
                },
            )
            assert answer.status_code == 200, answer.text
            return answer.json()["result"]

        invoice = call(
            "/v1/payment",
            {"amount": "20", "currency": "USDT", "network": "devnet", "order_id": "readme-1",
             "url_callback": receiver.url},
        )  # fmt: skip
        paid = run_cli("devnet", "pay", invoice["address"], invoice["payer_amount"], env=env)
        assert paid.returncode == 0, paid.stderr
        assert "sent 20" in paid.stdout
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            status = call("/v1/payment/info", {"uuid": invoice["uuid"]})["payment_status"]
            received = [json.loads(r.body)["status"] for r in receiver.received]
            if status == "paid" and "paid" in received:
                break
            time.sleep(0.2)
        assert status == "paid"
        assert received[-1] == "paid"
