"""Projects in the dashboard: the seeds' steps, API access (granted at once or by the
operator's command), the keys and what they open in both dialects, and the settings that
new invoices follow."""

from __future__ import annotations

import asyncio
import re
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from paydesk.invoices.models import Invoice
from paydesk.invoices.schemas import InvoiceDraft
from paydesk.merchants.models import Merchant
from paydesk.merchants.service import ApiAccess, IssuedMerchant
from paydesk.notifications.models import EmailMessage
from tests.conftest import MASTER_KEY, CryptomusClient, compact, sign
from tests.dashboard.conftest import PASSWORD, Dashboard
from tests.devnet import mine
from tests.live import paydesk_env, run_cli


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"api_access_auto_approve": False}


async def new_project(dashboard: Dashboard, name: str = "Tea house") -> str:
    created = await dashboard.post("/dashboard/projects/new", {"name": name})
    assert created.status_code == 303
    location = created.headers["location"]
    assert location.endswith("/integration?done=project-created")
    return location.split("/")[3]


def keyed(http: httpx.AsyncClient, merchant_id: str, payment_key: str) -> CryptomusClient:
    return CryptomusClient(http, IssuedMerchant(merchant_id, payment_key, ""))  # type: ignore[arg-type]


def secret_in(html: str, testid: str) -> str | None:
    found = re.search(rf'data-testid="{testid}">([^<]+)<', html)
    return found.group(1) if found else None


async def test_the_seeds_steps_then_operator_approval(
    context, database, dashboard, http, tmp_path: Path
):
    merchant_id = await new_project(dashboard)
    base = f"/dashboard/projects/{merchant_id}"
    step3 = await dashboard.get(f"{base}/integration")
    assert "How will you take payments?" in step3.text
    chosen = await dashboard.post(f"{base}/integration", {"integration": "api"})
    assert chosen.headers["location"] == f"{base}/api"

    page = await dashboard.get(f"{base}/api")
    assert secret_in(page.text, "payment-key") is None and "Request API access" in page.text
    refused = await dashboard.post(f"{base}/api/request", {"website": "shop", "description": "x"})
    assert refused.status_code == 422
    asked = await dashboard.post(
        f"{base}/api/request",
        {"website": "https://tea.example", "description": "Loose-leaf tea, shipped weekly."},
    )
    assert asked.status_code == 303
    waiting = await dashboard.get(f"{base}/api")
    assert "with the operator" in waiting.text and secret_in(waiting.text, "payment-key") is None

    # The key exists but opens nothing until the operator grants access.
    async with context.db.reader() as session:
        merchant = await session.get(Merchant, uuid.UUID(merchant_id))
        payment_key = context.vault.decrypt(merchant.payment_key_encrypted)
        assert (
            merchant.api_access == ApiAccess.REQUESTED and merchant.website == "https://tea.example"
        )
    client = keyed(http, merchant_id, payment_key)
    forbidden = await client.post(
        "/v1/payment", {"amount": "5", "currency": "USD", "order_id": "t1"}
    )
    assert forbidden.status_code == 403 and forbidden.json()["message"] == "You are forbidden"

    env = paydesk_env(tmp_path / "cli", database.url, PAYDESK_MASTER_KEY=MASTER_KEY, COLUMNS="250")
    listed = await asyncio.to_thread(run_cli, "merchant", "list", "--requested", env=env)
    assert listed.returncode == 0 and "tea.example" in listed.stdout, listed.stderr
    done = await asyncio.to_thread(run_cli, "merchant", "approve", merchant_id, env=env)
    assert done.returncode == 0 and "API access granted" in done.stdout, done.stderr

    granted = await dashboard.get(f"{base}/api")
    assert secret_in(granted.text, "payment-key") == payment_key
    created = await client.post("/v1/payment", {"amount": "5", "currency": "USD", "order_id": "t1"})
    assert created.status_code == 200, created.text


async def test_auto_approval_on_request(context, dashboard, settings_overrides):
    context.settings.api_access_auto_approve = True
    merchant_id = await new_project(dashboard)
    base = f"/dashboard/projects/{merchant_id}"
    await dashboard.post(
        f"{base}/api/request",
        {"website": "https://tea.example", "description": "Loose-leaf tea, shipped weekly."},
    )
    page = await dashboard.get(f"{base}/api")
    assert secret_in(page.text, "payment-key")


async def test_the_payout_key_needs_the_password(context, dashboard, http):
    base = dashboard.base
    page = await dashboard.get(f"{base}/api")
    assert secret_in(page.text, "payout-key") is None
    wrong = await dashboard.post(f"{base}/api/payout-key", {"password": "nope", "action": "reveal"})
    assert wrong.status_code == 401 and secret_in(wrong.text, "payout-key") is None
    shown = await dashboard.post(
        f"{base}/api/payout-key", {"password": PASSWORD, "action": "reveal"}
    )
    assert secret_in(shown.text, "payout-key") == dashboard.project.payout_key

    rotated = await dashboard.post(
        f"{base}/api/payout-key", {"password": PASSWORD, "action": "rotate"}
    )
    new_key = secret_in(rotated.text, "payout-key")
    assert new_key and new_key != dashboard.project.payout_key
    assert "Payouts are held until" in rotated.text
    # The old key no longer signs; the new one does (payout history needs the payout key).
    raw = compact({})
    for key, status in ((dashboard.project.payout_key, 401), (new_key, 200)):
        answered = await http.post(
            "/v1/payout/list",
            content=raw,
            headers={
                "merchant": str(dashboard.project.merchant_id),
                "sign": sign(raw, key),
                "content-type": "application/json",
            },
        )
        assert answered.status_code == status, answered.text

    new_payment = await dashboard.post(f"{base}/api/payment-key")
    assert new_payment.status_code == 303
    page = await dashboard.get(f"{base}/api")
    assert secret_in(page.text, "payment-key") not in (None, dashboard.project.payment_key)


async def test_moneroo_keys_and_endpoints(context, dashboard, http):
    base = dashboard.base
    page = await dashboard.get(f"{base}/moneroo")
    sandbox = secret_in(page.text, "moneroo-sandbox-key")
    live = secret_in(page.text, "moneroo-live-key")
    assert sandbox and live
    added = await dashboard.post(
        f"{base}/moneroo/endpoints",
        {"url": "https://shop.example/hooks/moneroo", "environment": "sandbox"},
    )
    assert added.status_code == 303
    bad = await dashboard.post(
        f"{base}/moneroo/endpoints", {"url": "ftp://x", "environment": "sandbox"}
    )
    assert bad.status_code == 422
    page = await dashboard.get(f"{base}/moneroo")
    assert "https://shop.example/hooks/moneroo" in page.text
    endpoint = re.search(r"/moneroo/endpoints/([0-9a-f-]{36})", page.text).group(1)
    off = await dashboard.post(f"{base}/moneroo/endpoints/{endpoint}", {"action": "disable"})
    assert off.status_code == 303
    assert "disabled" in (await dashboard.get(f"{base}/moneroo")).text
    gone = await dashboard.post(f"{base}/moneroo/endpoints/{endpoint}", {"action": "delete"})
    assert gone.status_code == 303
    assert "https://shop.example/hooks/moneroo" not in (await dashboard.get(f"{base}/moneroo")).text


async def test_live_moneroo_key_waits_for_api_access(context, dashboard, http):
    merchant_id = await new_project(dashboard)
    page = await dashboard.get(f"/dashboard/projects/{merchant_id}/moneroo")
    assert secret_in(page.text, "moneroo-live-key") is None
    sandbox = secret_in(page.text, "moneroo-sandbox-key")
    async with context.db.reader() as session:
        merchant = await session.get(Merchant, uuid.UUID(merchant_id))
        live = context.vault.decrypt(merchant.moneroo_live_key_encrypted)
    body = {
        "amount": 100,
        "currency": "XOF",
        "description": "Tea",
        "customer": {"email": "c@x.test", "first_name": "A", "last_name": "B"},
        "return_url": "https://tea.example/back",
    }
    for key, status in ((sandbox, 201), (live, 403)):
        answered = await http.post(
            "/v1/payments/initialize",
            json=body,
            headers={"Authorization": f"Bearer {key}", "Accept": "application/json"},
        )
        assert answered.status_code == status, answered.text


async def test_settings_shape_new_invoices(context, dashboard, http):
    base = dashboard.base
    refused = await dashboard.post(
        f"{base}/settings",
        {
            "default_callback_url": "not a url",
            "commission_payer": "payer",
            "service": ["USDT/devnet"],
        },
    )
    assert refused.status_code == 422
    none_left = await dashboard.post(f"{base}/settings", {"commission_payer": "merchant"})
    assert none_left.status_code == 422
    async with context.db.reader() as session:
        merchant = await session.get(Merchant, dashboard.project.merchant_id)
        assert merchant.default_callback_url is None and merchant.commission_payer == "merchant"

    saved = await dashboard.post(
        f"{base}/settings",
        {
            "default_callback_url": "https://shop.example/hook",
            "commission_payer": "payer",
            "service": ["USDT/devnet"],
            "notification_emails": "Owner@Shop.test, books@shop.test",
            "customer_receipts": "on",
        },
    )
    assert saved.status_code == 303
    async with context.db.reader() as session:
        merchant = await session.get(Merchant, dashboard.project.merchant_id)
    assert merchant.enabled_services == [{"currency": "USDT", "network": "devnet"}]
    assert merchant.notification_emails == "owner@shop.test, books@shop.test"
    assert merchant.checkout_customer_receipts and not merchant.checkout_merchant_notices

    api = CryptomusClient(http, dashboard.project)
    result = await api.result("/v1/payment", {"amount": "10", "currency": "USD", "order_id": "a"})
    async with context.db.reader() as session:
        invoice = await session.scalar(
            select(Invoice).where(Invoice.uuid == uuid.UUID(result["uuid"]))
        )
    assert invoice.url_callback == "https://shop.example/hook"
    assert invoice.subtract == 100
    assert invoice.currencies == [{"currency": "USDT", "network": "devnet"}]
    # What the request says wins over the defaults.
    own = await api.result(
        "/v1/payment",
        {
            "amount": "10",
            "currency": "USD",
            "order_id": "b",
            "subtract": 0,
            "url_callback": "https://x.example/cb",
        },
    )
    async with context.db.reader() as session:
        invoice = await session.scalar(
            select(Invoice).where(Invoice.uuid == uuid.UUID(own["uuid"]))
        )
    assert invoice.subtract == 0 and invoice.url_callback == "https://x.example/cb"
    # A coin the merchant switched off cannot be asked for.
    off = await api.post(
        "/v1/payment",
        {
            "amount": "10",
            "currency": "USD",
            "order_id": "c",
            "to_currency": "USDC",
            "network": "devnet",
        },
    )
    assert off.status_code == 422 and off.json()["state"] == 1


async def test_a_paid_invoice_is_announced_to_the_notification_addresses(context, dashboard):
    async with context.db.transaction() as session:
        merchant = await session.get(Merchant, dashboard.project.merchant_id)
        merchant.notification_emails = "owner@shop.test, books@shop.test"
        created = await context.invoices.create(
            session,
            merchant.id,
            InvoiceDraft(amount=Decimal("10"), currency="USDT", network="devnet", order_id="n1"),
        )
    await mine(context)
    async with context.db.transaction() as session:
        await context.devnet.send(session, created.invoice.address, Decimal("10"), "USDT")
    await mine(context)
    async with context.db.reader() as session:
        invoice = await session.get(Invoice, created.invoice.id)
        emails = list(
            await session.scalars(select(EmailMessage).where(EmailMessage.kind == "invoice.paid"))
        )
    assert invoice.status == "paid"
    assert sorted(e.to_address for e in emails) == ["books@shop.test", "owner@shop.test"]
    assert "10 USDT" in emails[0].subject and "(test)" in emails[0].subject
    assert f"/invoices/{invoice.uuid}" in emails[0].text_body
