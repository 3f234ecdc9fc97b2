"""The hosted checkout's emails, end to end: a payment succeeds on the checkout page, the
worker sends the customer's receipt (in the page's language) and the merchant's notice to
a real SMTP server; failures are retried and finally given up; nothing is sent for a
payment that did not succeed, for emails the merchant turned off, or for a change that was
rolled back."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from email.message import EmailMessage

import pytest
import structlog
from pydantic import SecretStr
from sqlalchemy import select

from paydesk.checkout.connectors import AttemptResult
from paydesk.db import utcnow
from paydesk.notifications.checkout import NOTICE, RECEIPT, choose_emails
from paydesk.notifications.mailer import ConsoleMailer, SmtpMailer, build_mailer
from paydesk.notifications.models import EmailMessage as StoredEmail
from paydesk.notifications.service import DEAD, MAX_ATTEMPTS, PENDING, SENT, claim_due
from paydesk.notifications.worker import send_due
from tests.conftest import free_port
from tests.live import paydesk_env, run_cli
from tests.moneroo.test_payments_api import MonerooClient, keys_of
from tests.notifications.conftest import MAIL_FROM, SMTP_PASSWORD

FORM = {"content-type": "application/x-www-form-urlencoded"}
CUSTOMER = "john@example.com"
OWNER = "owner@shop.test"  # the `merchant` fixture's user
SUCCEEDS, FAILS, STAYS_PENDING = "4149518161", "4149518163", "4149518162"


@pytest.fixture
async def sandbox(http, context, merchant) -> MonerooClient:
    return MonerooClient(http, (await keys_of(context, merchant.merchant_id)).sandbox_secret_key)


async def checkout(http, sandbox: MonerooClient, phone: str, lang: str | None = None) -> str:
    """A payment paid on the checkout page with the sandbox's test method; its id."""
    created = await sandbox.initialize()
    assert created.status_code == 201, created.text
    payment_id = created.json()["data"]["id"]
    query = f"?lang={lang}" if lang else ""
    page = await http.get(f"/moneroo/checkout/{payment_id}{query}")
    assert page.status_code == 200
    body = f"method=moneroo_payment_demo&phone={phone}"
    paid = await http.post(f"/moneroo/checkout/{payment_id}/pay{query}", content=body, headers=FORM)
    assert paid.status_code == 303, paid.text
    return payment_id


async def stored(context) -> list[StoredEmail]:
    async with context.db.reader() as session:
        return list(await session.scalars(select(StoredEmail).order_by(StoredEmail.id)))


def at(moment: datetime) -> Callable[[], datetime]:
    """A clock stopped at `moment`."""
    return lambda: moment


def parts(message: EmailMessage) -> tuple[str, str]:
    """The text and HTML alternatives of a multipart/alternative email."""
    assert message.get_content_type() == "multipart/alternative"
    kinds = [part.get_content_type() for part in message.iter_parts()]
    assert kinds == ["text/plain", "text/html"]
    text, html = (part.get_content() for part in message.iter_parts())
    return text, html


async def test_receipt_in_the_page_language_and_notice_in_english(http, context, sandbox, smtp):
    payment_id = await checkout(http, sandbox, SUCCEEDS, lang="fr")
    emails = await stored(context)
    assert [(e.kind, e.to_address, e.status) for e in emails] == [
        (RECEIPT, CUSTOMER, PENDING),
        (NOTICE, OWNER, PENDING),
    ]
    assert smtp.inbox.received == []  # recorded with the payment, sent by the worker

    assert await send_due(context, build_mailer(context.settings)) == 2
    assert await send_due(context, build_mailer(context.settings)) == 0

    [receipt] = smtp.inbox.to(CUSTOMER)
    assert receipt["Subject"] == "Votre reçu de Shop"
    assert receipt["From"] == MAIL_FROM and receipt["To"] == CUSTOMER
    assert receipt["Auto-Submitted"] == "auto-generated" and receipt["Message-ID"]
    text, html = parts(receipt)
    for shown in ("Paiement reçu", "Bonjour John Doe,", "Votre paiement de 100,00", "à Shop",
                  "Payment for order #123", payment_id, "Test Payment Method",
                  "Mode test : aucun argent réel ne circule."):  # fmt: skip
        assert shown in text, shown
        assert shown in html, shown
    assert "Montant : 100,00" in text and "$US" in text  # as French writes them
    assert '<html lang="fr" dir="ltr">' in html
    assert "<link" not in html and "<script" not in html and "src=" not in html

    [notice] = smtp.inbox.to(OWNER)
    assert notice["Subject"].startswith("[sandbox] Payment received: $100.00 from John Doe")
    text, html = parts(notice)
    for shown in ("John Doe", CUSTOMER, "$100.00", payment_id, "Environment: sandbox"):
        assert shown in text, shown
    assert payment_id in html and "sandbox" in html

    assert [e.status for e in await stored(context)] == [SENT, SENT]
    assert all(e.sent_at and e.attempts == 1 for e in await stored(context))


async def test_receipt_language_falls_back_to_english(http, context, sandbox, smtp):
    await checkout(http, sandbox, SUCCEEDS, lang="xx")
    await send_due(context, build_mailer(context.settings))
    [receipt] = smtp.inbox.to(CUSTOMER)
    assert receipt["Subject"] == "Your receipt from Shop"
    text, _ = parts(receipt)
    assert "Your payment of $100.00 to Shop was successful." in text


async def test_arabic_receipt_is_right_to_left_with_the_amount_isolated(
    http, context, sandbox, smtp
):
    await checkout(http, sandbox, SUCCEEDS, lang="ar")
    await send_due(context, build_mailer(context.settings))
    [receipt] = smtp.inbox.to(CUSTOMER)
    text, html = parts(receipt)
    assert 'dir="rtl"' in html and "text-align:right" in html
    assert "\u2066" in text and "\u2069" in text


async def test_nothing_for_a_payment_that_did_not_succeed(http, context, sandbox, smtp):
    await checkout(http, sandbox, FAILS)
    await checkout(http, sandbox, STAYS_PENDING)
    assert await stored(context) == []
    assert await send_due(context, build_mailer(context.settings)) == 0
    assert smtp.inbox.received == []


async def test_each_email_can_be_turned_off(http, context, sandbox, smtp, merchant):
    async with context.db.transaction() as session:
        choices = await choose_emails(session, merchant.merchant_id, receipts=False)
    assert (choices.receipts, choices.notices) == (False, True)
    await checkout(http, sandbox, SUCCEEDS)
    await send_due(context, build_mailer(context.settings))
    assert smtp.inbox.to(CUSTOMER) == [] and len(smtp.inbox.to(OWNER)) == 1

    async with context.db.transaction() as session:
        choices = await choose_emails(session, merchant.merchant_id, receipts=True, notices=False)
    assert (choices.receipts, choices.notices) == (True, False)
    await checkout(http, sandbox, SUCCEEDS)
    await send_due(context, build_mailer(context.settings))
    assert len(smtp.inbox.to(CUSTOMER)) == 1 and len(smtp.inbox.to(OWNER)) == 1

    async with context.db.transaction() as session:
        await choose_emails(session, merchant.merchant_id, receipts=False, notices=False)
    await checkout(http, sandbox, SUCCEEDS)
    assert len(await stored(context)) == 2  # nothing more recorded
    with pytest.raises(LookupError):
        async with context.db.transaction() as session:
            await choose_emails(session, uuid.uuid4(), notices=True)


async def test_a_rolled_back_success_records_no_email(http, context, sandbox, smtp):
    payment_id = await checkout(http, sandbox, STAYS_PENDING)

    class Abort(Exception):
        pass

    with pytest.raises(Abort):
        async with context.db.transaction() as session:
            await context.checkout.apply(session, payment_id, AttemptResult("success"))
            assert len(list(await session.scalars(select(StoredEmail)))) == 2  # in the change
            raise Abort
    assert await stored(context) == []
    async with context.db.transaction() as session:
        await context.checkout.apply(session, payment_id, AttemptResult("success"))
    assert len(await stored(context)) == 2


async def test_without_an_smtp_host_emails_are_written_to_the_log(http, context, sandbox):
    settings = context.settings.model_copy(
        update={"smtp_host": None, "smtp_password": SecretStr(SMTP_PASSWORD)}
    )
    payment_id = await checkout(http, sandbox, SUCCEEDS)
    with structlog.testing.capture_logs() as logs:
        mailer = build_mailer(settings)
        assert isinstance(mailer, ConsoleMailer)
        assert await send_due(context, mailer) == 2
    written = [entry for entry in logs if entry["event"] == "email.console"]
    assert [entry["to"] for entry in written] == [CUSTOMER, OWNER]
    receipt = written[0]
    assert receipt["subject"] == "Your receipt from Shop"
    assert receipt["text"] == (await stored(context))[0].text_body  # the whole text part
    assert payment_id in receipt["text"] and "Your payment of $100.00" in receipt["text"]
    assert SMTP_PASSWORD not in json.dumps(logs, default=str)
    assert [e.status for e in await stored(context)] == [SENT, SENT]


async def test_an_unreachable_server_is_retried_then_given_up(http, context, sandbox):
    settings = context.settings.model_copy(update={"smtp_port": free_port()})  # nobody there
    mailer = SmtpMailer(settings)
    await checkout(http, sandbox, SUCCEEDS)
    now = utcnow()
    for attempt in range(1, MAX_ATTEMPTS + 1):
        assert await send_due(context, mailer, clock=at(now)) == 2, attempt
        emails = await stored(context)
        assert all(e.attempts == attempt and e.last_error for e in emails)
        expected = DEAD if attempt == MAX_ATTEMPTS else PENDING
        assert {e.status for e in emails} == {expected}
        if expected == PENDING:
            # Not before its back-off has passed.
            assert await send_due(context, mailer, clock=at(now)) == 0
            assert all(e.next_attempt_at > now for e in emails)
        now += timedelta(days=1)
    assert await send_due(context, mailer, clock=at(now)) == 0  # dead stays dead
    assert "Connect" in (await stored(context))[0].last_error


async def test_a_refusal_for_now_is_retried_and_one_for_good_is_not(http, context, sandbox, smtp):
    mailer = build_mailer(context.settings)
    await checkout(http, sandbox, SUCCEEDS)
    smtp.inbox.refuse = "451 4.3.0 Try again later"
    assert await send_due(context, mailer) == 2
    assert [e.status for e in await stored(context)] == [PENDING, PENDING]
    smtp.inbox.refuse = None
    later = utcnow() + timedelta(hours=1)
    assert await send_due(context, mailer, clock=at(later)) == 2
    assert [(e.status, e.attempts) for e in await stored(context)] == [(SENT, 2), (SENT, 2)]
    assert len(smtp.inbox.received) == 2

    await checkout(http, sandbox, SUCCEEDS)
    smtp.inbox.refuse = "550 5.1.1 No such user"
    assert await send_due(context, mailer, clock=at(later)) == 2
    refused = (await stored(context))[2:]
    assert [(e.status, e.attempts) for e in refused] == [(DEAD, 1), (DEAD, 1)]
    assert "550" in refused[0].last_error


async def test_a_claimed_email_is_not_claimed_again_while_leased(http, context, sandbox):
    await checkout(http, sandbox, SUCCEEDS)
    now = utcnow()
    lease = timedelta(minutes=5)
    async with context.db.transaction() as session:
        first = await claim_due(session, now, 1, lease)
    async with context.db.transaction() as session:
        second = await claim_due(session, now, 10, lease)
    async with context.db.transaction() as session:
        after_lease = await claim_due(session, now + lease + timedelta(seconds=1), 10, lease)
    assert len(first) == len(second) == 1 and first[0].id != second[0].id
    assert {item.id for item in after_lease} == {first[0].id, second[0].id}


async def test_workers_claim_different_emails_at_once_on_postgresql(http, context, sandbox):
    if context.db.is_sqlite:
        pytest.skip("SQLite serialises writers: claims cannot overlap")
    await checkout(http, sandbox, SUCCEEDS)
    now, lease = utcnow(), timedelta(minutes=5)
    async with context.db.transaction() as one:
        first = await claim_due(one, now, 1, lease)
        # The first claim's row stays locked until it commits: the second skips it.
        async with context.db.transaction() as two:
            second = await claim_due(two, now, 10, lease)
    assert len(first) == len(second) == 1 and first[0].id != second[0].id


@pytest.mark.slow
def test_the_merchant_emails_command(tmp_path):
    env = paydesk_env(tmp_path / "data", None)
    created = run_cli("merchant", "create", "--name", "Shop", "--email", "o@shop.test", "--json",
                      env=env)  # fmt: skip
    assert created.returncode == 0, created.stderr
    merchant = json.loads(created.stdout)["merchant"]

    def emails(*options: str) -> dict[str, object]:
        done = run_cli("merchant", "emails", merchant, *options, "--json", env=env)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    assert emails() == {"merchant": merchant, "receipts": True, "notices": True}
    assert emails("--no-receipts")["receipts"] is False
    assert emails("--no-notices") == {"merchant": merchant, "receipts": False, "notices": False}
    assert emails("--receipts", "--notices")["notices"] is True
    human = run_cli("merchant", "emails", merchant, env=env)
    assert "customer receipts on" in human.stdout and "merchant notices on" in human.stdout
    unknown = run_cli("merchant", "emails", "00000000-0000-0000-0000-000000000001", env=env)
    assert unknown.returncode == 1 and "no merchant" in unknown.stderr
