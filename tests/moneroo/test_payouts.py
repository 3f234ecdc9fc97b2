"""Moneroo payouts on the payout core: initialize reserves the merchant's balance, the
processor payout worker pays through the sandbox's test payout gateway, verify and
retrieve show each status, and every transition has its event and its ledger entries."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select

from paydesk.checkout.models import CheckoutCustomer
from paydesk.ledger import service as ledger
from paydesk.ledger.check import check_ledger
from paydesk.ledger.models import AccountKind
from paydesk.pagination import HistoryFilter
from paydesk.payouts.models import Payout
from paydesk.payouts.processor_worker import run_once
from paydesk.webhooks.models import WebhookEvent
from tests.moneroo.test_checkout import pay
from tests.moneroo.test_payments_api import TIMESTAMP, MonerooClient, assert_envelope_ok, keys_of

PAYOUT_ID = re.compile(r"^po_[a-z0-9]{12}$")


@pytest.fixture
async def sandbox(http, context, merchant) -> MonerooClient:
    return MonerooClient(http, (await keys_of(context, merchant.merchant_id)).sandbox_secret_key)


@pytest.fixture
async def live(http, context, merchant) -> MonerooClient:
    return MonerooClient(http, (await keys_of(context, merchant.merchant_id)).live_secret_key)


def payout_body(**fields: Any) -> dict[str, Any]:
    body = {
        "amount": 40,
        "currency": "USD",
        "description": "Refund of order #123",
        "method": "moneroo_payout_demo",
        "customer": {"email": "awa@example.com", "first_name": "Awa", "last_name": "Diallo"},
        "metadata": {"payout_id": "7"},
        "recipient": {"account_number": "4149518161"},
    }
    body.update(fields)
    return {k: v for k, v in body.items() if v is not ...}


async def fund(http, sandbox: MonerooClient, amount: int = 100) -> None:
    """The merchant's sandbox USD balance, through a paid sandbox checkout."""
    created = await sandbox.initialize(amount=amount)
    assert created.status_code == 201, created.text
    payment_id = created.json()["data"]["id"]
    await pay(http, payment_id, "moneroo_payment_demo", "4149518161")
    verified = await sandbox.call("GET", f"/v1/payments/{payment_id}")
    assert verified.json()["data"]["status"] == "success"


async def initialize(client: MonerooClient, **fields: Any) -> str:
    created = await client.call("POST", "/v1/payouts/initialize", payout_body(**fields))
    assert created.status_code == 201, created.text
    payload = created.json()
    assert_envelope_ok(payload)
    assert payload["message"] == "Payout transaction initialized successfully"
    assert list(payload["data"]) == ["id"] and PAYOUT_ID.match(payload["data"]["id"])
    return payload["data"]["id"]


async def verify(client: MonerooClient, payout_id: str) -> dict[str, Any]:
    answer = await client.call("GET", f"/v1/payouts/{payout_id}/verify")
    assert answer.status_code == 200, answer.text
    assert answer.json()["message"] == "Payout transaction fetched successfully!"
    return answer.json()["data"]


async def balances(context, merchant_id) -> tuple[Decimal, Decimal]:
    """The sandbox USD business balance and payout reserve."""
    async with context.db.reader() as session:
        found = []
        for kind in (AccountKind.MERCHANT_BUSINESS, AccountKind.PAYOUT_RESERVE):
            account = await ledger.find_account(
                session, kind, "USD", owner=merchant_id, network="sandbox"
            )
            found.append(Decimal(0) if account is None else await ledger.balance(session, account))
        return found[0], found[1]


async def events_of(context, payout_id: str) -> list[tuple[str, str, str]]:
    """(topic, event, data.status) of the payout's recorded events, in order."""
    async with context.db.reader() as session:
        rows = await session.execute(
            select(WebhookEvent.topic, WebhookEvent.payload).order_by(WebhookEvent.id)
        )
        return [
            (topic, payload["event"], payload["data"]["status"])
            for topic, payload in rows
            if payload.get("data", {}).get("id") == payout_id
        ]


async def ledger_ok(context) -> None:
    async with context.db.reader() as session:
        report = await check_ledger(session)
    assert report.ok, report


async def test_a_payout_to_the_success_number_is_paid(http, context, sandbox, merchant):
    await fund(http, sandbox)
    payout_id = await initialize(sandbox, amount="12.34")
    assert await balances(context, merchant.merchant_id) == (Decimal("87.66"), Decimal("12.34"))

    raw = await sandbox.call("GET", f"/v1/payouts/{payout_id}/verify")
    assert '"amount":12.34,' in raw.text  # a JSON number, exact
    queued = await verify(sandbox, payout_id)
    assert queued["status"] == "initiated" and queued["id"] == payout_id
    assert queued["pending_at"] is None and queued["success_at"] is None
    assert queued["failed_at"] is None and queued["is_processed"] is False
    assert TIMESTAMP.match(queued["initiated_at"])
    assert queued["amount_formatted"] == "$ 12.34" and queued["currency"]["code"] == "USD"
    assert queued["environment"] == "sandbox" and queued["metadata"] == {"payout_id": "7"}
    assert queued["description"] == "Refund of order #123"
    assert queued["customer"]["email"] == "awa@example.com"
    assert queued["customer"]["first_name"] == "Awa"
    assert queued["payout_phone_number"] == "4149518161"
    assert queued["app"]["is_enabled"] is True
    disburse = queued["disburse"]
    assert disburse["method"]["short_code"] == "moneroo_payout_demo"
    assert disburse["gateway"]["short_code"] == "moneroo_payout_test"
    assert disburse["gateway"]["transaction_id"] is None
    assert disburse["identifier"].startswith("pd_")

    assert await run_once(context) == 1
    paid = await verify(sandbox, payout_id)
    assert paid["status"] == "success" and paid["is_processed"] is True
    assert TIMESTAMP.match(paid["pending_at"]) and TIMESTAMP.match(paid["success_at"])
    assert paid["failed_at"] is None
    assert paid["disburse"]["gateway"]["transaction_status"] == "test_success"
    assert paid["disburse"]["gateway"]["transaction_id"] == f"test_{payout_id}"
    assert paid["disburse"]["failure_message"] is None
    retrieved = await sandbox.call("GET", f"/v1/payouts/{payout_id}")
    assert retrieved.json()["message"] == "Payout transaction fetched successfully"
    assert retrieved.json()["data"]["status"] == "success"

    assert await balances(context, merchant.merchant_id) == (Decimal("87.66"), Decimal(0))
    async with context.db.reader() as session:
        holdings = await ledger.find_account(
            session, AccountKind.PROCESSOR_HOLDINGS, "USD", network="moneroo_payout_test"
        )
        assert holdings is not None
        assert await ledger.balance(session, holdings) == Decimal("-12.34")
    await ledger_ok(context)
    assert await events_of(context, payout_id) == [
        ("checkout.payout.initiated", "payout.initiated", "initiated"),
        ("checkout.payout.success", "payout.success", "success"),
    ]
    assert await run_once(context) == 0  # nothing left to do


async def test_the_failure_number_fails_and_gives_the_money_back(http, context, sandbox, merchant):
    await fund(http, sandbox)
    payout_id = await initialize(sandbox, recipient={"account_number": 4149518162})
    assert await balances(context, merchant.merchant_id) == (Decimal(60), Decimal(40))
    await run_once(context)
    failed = await verify(sandbox, payout_id)
    assert failed["status"] == "failed" and TIMESTAMP.match(failed["failed_at"])
    assert failed["success_at"] is None
    assert failed["disburse"]["failure_message"]
    assert failed["disburse"]["gateway"]["transaction_status"] == "test_failed"
    assert await balances(context, merchant.merchant_id) == (Decimal(100), Decimal(0))
    await ledger_ok(context)
    assert [event for _, event, _ in await events_of(context, payout_id)] == [
        "payout.initiated", "payout.failed"
    ]  # fmt: skip


async def test_other_numbers_fail_with_an_explanation(http, context, sandbox, merchant):
    await fund(http, sandbox)
    payout_id = await initialize(sandbox, recipient={"account_number": "22951345020"})
    await run_once(context)
    failed = await verify(sandbox, payout_id)
    assert failed["status"] == "failed"
    message = failed["disburse"]["gateway"]["transaction_failure_message"]
    assert "only the sandbox's test account numbers succeed" in message
    assert await balances(context, merchant.merchant_id) == (Decimal(100), Decimal(0))


async def test_the_pending_number_stays_pending(http, context, sandbox, merchant):
    await fund(http, sandbox)
    payout_id = await initialize(sandbox, recipient={"account_number": "4149518163"})
    await run_once(context)
    pending = await verify(sandbox, payout_id)
    assert pending["status"] == "pending" and TIMESTAMP.match(pending["pending_at"])
    assert pending["success_at"] is None and pending["failed_at"] is None
    assert pending["disburse"]["gateway"]["transaction_status"] == "test_pending"
    assert await run_once(context) == 0
    assert (await verify(sandbox, payout_id))["status"] == "pending"
    assert await balances(context, merchant.merchant_id) == (Decimal(60), Decimal(40))
    await ledger_ok(context)
    assert [event for _, event, _ in await events_of(context, payout_id)] == ["payout.initiated"]


async def test_top_level_account_number_when_recipient_is_absent(http, context, sandbox):
    await fund(http, sandbox)
    payout_id = await initialize(sandbox, recipient=..., account_number=4149518161)
    await run_once(context)
    assert (await verify(sandbox, payout_id))["status"] == "success"


async def test_insufficient_balance_writes_nothing(http, context, sandbox, merchant):
    await fund(http, sandbox, amount=10)
    refused = await sandbox.call("POST", "/v1/payouts/initialize", payout_body(amount=11))
    assert refused.status_code == 422, refused.text
    assert refused.json()["message"].startswith("Insufficient balance")
    assert refused.json()["errors"][0]["field"] == "amount"
    async with context.db.reader() as session:
        assert await session.scalar(select(func.count()).select_from(Payout)) == 0
        emails = await session.scalars(select(CheckoutCustomer.email))
        assert "awa@example.com" not in list(emails)
        topics = list(await session.scalars(select(WebhookEvent.topic)))
        assert not [topic for topic in topics if "payout" in topic]
    assert await balances(context, merchant.merchant_id) == (Decimal(10), Decimal(0))
    await ledger_ok(context)


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"amount": ...}, "amount", "The amount field is required."),
        ({"amount": 0}, "amount", "The amount field must be greater than 0."),
        ({"amount": "abc"}, "amount", "The amount field must be a number."),
        ({"amount": "1.234"}, "amount", "The amount field must have at most 2 decimal places"),
        ({"currency": ...}, "currency", "The currency field is required."),
        ({"currency": "ZZZ"}, "currency", "The selected currency is not supported."),
        ({"currency": "XOF"}, "currency", "The currency field must be USD"),
        ({"description": "x" * 156}, "description", "must not be greater than 155"),
        ({"method": ...}, "method", "The method field is required."),
        ({"method": "nope"}, "method", "The selected method is invalid."),
        ({"customer": ...}, "customer", "The customer field is required."),
        ({"customer": {"first_name": "A", "last_name": "B"}}, "customer.email",
         "The customer.email field is required."),
        ({"customer": {"email": "bad", "first_name": "A", "last_name": "B"}},
         "customer.email", "must be a valid email address"),
        ({"customer": {"email": "a@b.co", "last_name": "B"}}, "customer.first_name",
         "The customer.first name field is required."),
        ({"customer": {"email": "a@b.co", "first_name": "A"}}, "customer.last_name",
         "The customer.last name field is required."),
        ({"metadata": {str(i): "v" for i in range(11)}}, "metadata",
         "must not have more than 10 items"),
        ({"metadata": {"nested": {"a": 1}}}, "metadata.nested", "must be a string"),
        ({"recipient": ...}, "recipient.account_number",
         "The recipient.account number field is required."),
        ({"recipient": {}}, "recipient.account_number",
         "The recipient.account number field is required."),
        ({"recipient": {"account_number": "41495-abc"}}, "recipient.account_number",
         "must contain only digits"),
        ({"recipient": {"account_number": True}}, "recipient.account_number",
         "must be a string or an integer"),
        ({"recipient": "4149518161"}, "recipient", "The recipient field must be an object."),
    ],
)  # fmt: skip
async def test_validation(context, sandbox, fields, field, message):
    refused = await sandbox.call("POST", "/v1/payouts/initialize", payout_body(**fields))
    assert refused.status_code == 422, refused.text
    errors = refused.json()["errors"]
    assert [e["field"] for e in errors] == [field], errors
    assert message in errors[0]["message"]
    async with context.db.reader() as session:
        assert await session.scalar(select(func.count()).select_from(Payout)) == 0


async def test_a_mobile_money_recipient_is_an_msisdn(context, live):
    body = payout_body(method="mtn_bj", currency="XOF", amount=500)
    refused = await live.call("POST", "/v1/payouts/initialize", body)
    assert refused.status_code == 422
    assert [e["field"] for e in refused.json()["errors"]] == ["recipient.msisdn"]
    # Valid, but no live payout processor is configured here: refused, nothing reserved.
    body["recipient"] = {"msisdn": 22951345020}
    unpaid = await live.call("POST", "/v1/payouts/initialize", body)
    assert unpaid.status_code == 422
    assert unpaid.json()["errors"][0]["field"] == "method"
    async with context.db.reader() as session:
        assert await session.scalar(select(func.count()).select_from(Payout)) == 0


async def test_modes_are_apart(http, context, sandbox, live):
    await fund(http, sandbox)
    payout_id = await initialize(sandbox)
    hidden = await live.call("GET", f"/v1/payouts/{payout_id}/verify")
    assert hidden.status_code == 404
    assert hidden.json()["message"] == "Payout transaction not found."
    assert (await sandbox.call("GET", "/v1/payouts/po_000000000000")).status_code == 404

    refused = await live.call("POST", "/v1/payouts/initialize", payout_body())
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["field"] == "method"
    assert "sandbox" in refused.json()["message"]

    unauthenticated = await http.get(f"/v1/payouts/{payout_id}")
    assert unauthenticated.status_code == 401


async def test_chain_payout_views_do_not_see_processor_payouts(http, context, sandbox, merchant):
    await fund(http, sandbox)
    await initialize(sandbox)
    async with context.db.reader() as session:
        page = await context.payouts.history(
            session, merchant.merchant_id, HistoryFilter(), None, 10
        )
    assert page.items == []
