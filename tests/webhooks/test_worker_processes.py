"""`paydesk worker` as operators run it: killed mid-batch, restarted, two at once; and
the webhook commands."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
from pyCryptomusAPI.webhooks import process_payment_webhook
from sqlalchemy import select

from paydesk.config import Settings
from paydesk.context import build_context
from paydesk.deposits.service import ObservedTransfer
from paydesk.invoices.schemas import InvoiceDraft
from paydesk.webhooks import service as webhooks
from paydesk.webhooks.models import WebhookDelivery, WebhookEvent
from tests.conftest import create_pg_database, drop_pg_database, worker_id
from tests.live import PAYDESK, paydesk_env, run_cli

pytestmark = pytest.mark.slow


@pytest.fixture(params=["sqlite", "postgresql"])
def environment(request, tmp_path: Path, postgres_available):
    url = None
    name = f"paydesk_workers_{worker_id()}"
    if request.param == "postgresql":
        if not postgres_available:
            pytest.skip("PostgreSQL is not reachable")
        url = create_pg_database(name)
    env = paydesk_env(
        tmp_path / "data",
        url,
        PAYDESK_CALLBACK_ALLOWLIST="127.0.0.0/8",
        PAYDESK_WEBHOOK_LEASE_SECONDS="3",  # a killed worker's deliveries come back soon
        COLUMNS="300",  # tables at full width
    )
    assert run_cli("migrate", env=env).returncode == 0
    yield env
    if url:
        drop_pg_database(name)


def settings_of(env: dict[str, str]) -> Settings:
    values = {k.removeprefix("PAYDESK_").lower(): v for k, v in env.items()
              if k.startswith("PAYDESK_")}  # fmt: skip
    return Settings(**values)


def pay_invoices(env, merchant: str, url: str, count: int) -> list[str]:
    """`count` USDT invoices with `url` as their callback, each paid in two deposits
    through the chain layer's crediting entry point (underpaid, then paid): two real
    status changes, two events each. Returns the event uuids in order."""

    async def work() -> list[str]:
        context = build_context(settings_of(env))
        try:
            invoices = []
            for n in range(count):
                draft = InvoiceDraft(amount=Decimal(100), currency="USDT", order_id=f"o{n}",
                                     network="devnet", url_callback=url)  # fmt: skip
                async with context.db.transaction() as session:
                    created = await context.invoices.create(session, uuid.UUID(merchant), draft)
                invoices.append(created.invoice)
            for part, amount in enumerate(("40", "60")):
                for invoice in invoices:
                    txid = f"{part}-{invoice.order_id}-".ljust(64, "f")
                    transfer = ObservedTransfer(
                        "devnet", txid, 0, invoice.address, "USDT", Decimal(amount)
                    )
                    async with context.db.transaction() as session:
                        await context.deposits.credit(session, transfer)
            async with context.db.reader() as session:
                return [str(e) for e in await session.scalars(
                    select(WebhookEvent.uuid).order_by(WebhookEvent.id))]  # fmt: skip
        finally:
            await context.close()

    return asyncio.run(work())


def record_events(env, merchant: str, url: str, subjects: int) -> list[str]:
    """Plain events, one per subject (for the throughput-shaped tests)."""

    async def work() -> list[str]:
        context = build_context(settings_of(env))
        ids = []
        try:
            async with context.db.transaction() as session:
                for s in range(subjects):
                    event = await webhooks.record(
                        session,
                        merchant_id=uuid.UUID(merchant),
                        topic=webhooks.INVOICE_STATUS,
                        subject_uuid=uuid.UUID(int=s + 1),
                        url=url,
                        payload={"uuid": str(uuid.UUID(int=s + 1)), "order_id": f"o{s}",
                                 "status": "paid", "is_final": True, "amount": "1",
                                 "currency": "USDT"},
                    )  # fmt: skip
                    ids.append(str(event.uuid))
        finally:
            await context.close()
        return ids

    return asyncio.run(work())


def statuses(env) -> list[str]:
    async def work() -> list[str]:
        context = build_context(settings_of(env))
        try:
            async with context.db.reader() as session:
                return list(await session.scalars(select(WebhookDelivery.status)))
        finally:
            await context.close()

    return asyncio.run(work())


def start_worker(env) -> subprocess.Popen:
    return subprocess.Popen([PAYDESK, "worker"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip


def wait_for(condition, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


def new_merchant(env) -> dict[str, str]:
    done = run_cli("merchant", "create", "--name", "S", "--email", "s@x.test", "--json", env=env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_killed_worker_loses_nothing(environment, receiver):
    merchant = new_merchant(environment)
    events = pay_invoices(environment, merchant["merchant"], receiver.url, 20)
    assert len(events) == 40
    receiver.delay = 0.15
    first = start_worker(environment)
    try:
        wait_for(lambda: len(receiver.received) >= 3 or bool(receiver.in_flight))
        os.kill(first.pid, signal.SIGKILL)  # mid-batch: requests in flight, outcomes unwritten
        first.wait(timeout=10)
        receiver.delay = 0.0
        second = start_worker(environment)
        try:
            wait_for(lambda: {r.headers["webhook-id"] for r in receiver.received} >= set(events))
            wait_for(lambda: set(statuses(environment)) == {"delivered"}, timeout=30)
        finally:
            second.send_signal(signal.SIGTERM)
            assert second.wait(timeout=15) == 0
    finally:
        if first.poll() is None:
            first.kill()
    # Every body verifies with a real client's verifier; each invoice's statuses arrived
    # in order (judged by the first arrival of each event).
    first_seen: dict[str, tuple[int, str, str]] = {}
    for position, request in enumerate(receiver.received):
        hook = process_payment_webhook(request.body, merchant["payment_key"])
        first_seen.setdefault(request.headers["webhook-id"], (position, hook.order_id,
                                                              hook.status))  # fmt: skip
    for n in range(20):
        seen = sorted(v for v in first_seen.values() if v[1] == f"o{n}")
        assert [status for _, _, status in seen] == ["wrong_amount_waiting", "paid"]


def test_two_workers_never_send_one_delivery_at_once(environment, receiver):
    # The default lease: a round slowed by the other worker must not see its lease run
    # out (that would be a legitimate second attempt, not a concurrent one).
    environment = {**environment, "PAYDESK_WEBHOOK_LEASE_SECONDS": "60"}
    merchant = new_merchant(environment)
    events = record_events(environment, merchant["merchant"], receiver.url, 150)
    receiver.delay = 0.01
    workers = [start_worker(environment), start_worker(environment)]
    try:
        wait_for(lambda: set(statuses(environment)) == {"delivered"})
    finally:
        for process in workers:
            process.send_signal(signal.SIGTERM)
        for process in workers:
            assert process.wait(timeout=15) == 0
    ids = [r.headers["webhook-id"] for r in receiver.received]
    assert receiver.overlaps == []
    assert sorted(ids) == sorted(events)  # each exactly once


def test_webhook_commands(environment, receiver):
    merchant = new_merchant(environment)
    shown = run_cli("merchant", "webhook-secret", merchant["merchant"], "--json", env=environment)
    [secret] = json.loads(shown.stdout)["webhook_secrets"]
    assert secret.startswith("whsec_")
    rotated = run_cli("merchant", "webhook-secret", merchant["merchant"], "--rotate", "--json",
                      env=environment)  # fmt: skip
    assert json.loads(rotated.stdout)["webhook_secrets"][1] == secret

    record_events(environment, merchant["merchant"], "http://10.255.255.1/ipn", 1)
    worker = start_worker(environment)
    try:
        wait_for(lambda: "refused" in run_cli("webhooks", "list", "--failed",
                                              env=environment).stdout)  # fmt: skip
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=15)
    listed = run_cli("webhooks", "list", env=environment)
    assert "pending" in listed.stdout and "10.255.255.1" in listed.stdout
    retried = run_cli("webhooks", "retry", "1", env=environment)
    assert retried.returncode == 0 and "queued as delivery 2" in retried.stdout
    assert run_cli("webhooks", "retry", "99", env=environment).returncode == 1


def test_embedded_serve_runs_the_delivery_worker(tmp_path: Path, receiver):
    """On the embedded default one command runs everything: an invoice created through
    the API expires inside `paydesk serve` and its `cancel` webhook arrives, signed."""
    import sqlite3

    import httpx

    from tests.conftest import compact, free_port, sign
    from tests.live import create_live_merchant, live_server

    env = paydesk_env(
        tmp_path / "data", None, PAYDESK_CALLBACK_ALLOWLIST="127.0.0.0/8",
        PAYDESK_EXPIRY_INTERVAL_SECONDS="0.2",
    )  # fmt: skip
    merchant = create_live_merchant(env)
    with live_server(env, free_port()) as base_url:
        body = compact({"amount": "10", "currency": "USDT", "network": "devnet",
                        "order_id": "live-1", "url_callback": receiver.url})  # fmt: skip
        created = httpx.post(f"{base_url}/v1/payment", content=body, headers={
            "merchant": merchant.merchant, "sign": sign(body, merchant.payment_key),
            "content-type": "application/json"})  # fmt: skip
        assert created.status_code == 200, created.text
        with sqlite3.connect(tmp_path / "data" / "paydesk.db") as raw:
            raw.execute("UPDATE invoices SET expired_at = '2000-01-01 00:00:00'")
        wait_for(lambda: len(receiver.received) >= 1, timeout=30)
    hook = process_payment_webhook(receiver.received[0].body, merchant.payment_key)
    assert (hook.order_id, hook.status, hook.is_final) == ("live-1", "cancel", True)
