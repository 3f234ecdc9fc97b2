"""`ledger check` passes on a healthy ledger and catches tampering."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import select, text

from paydesk.db import utcnow
from paydesk.ledger.check import check_ledger
from paydesk.ledger.models import Posting
from tests.ledger.conftest import credit, new_invoice, reverse, transfer
from tests.live import paydesk_env, run_cli


async def run_check(context):
    async with context.db.reader() as session:
        return await check_ledger(session)


@pytest.fixture
async def history(context, shop):
    """Invoices paid, part-paid and reversed, and transfers both ways."""
    paid = await new_invoice(context, shop, order_id="a")
    await credit(context, transfer(paid, "100"))
    part = await new_invoice(context, shop, order_id="b", amount="50")
    gone = transfer(part, "20")
    await credit(context, gone)
    await credit(context, transfer(part, "10"))
    await reverse(context, gone)
    async with context.db.transaction() as session:
        await context.balances.transfer(
            session, shop.merchant_id, "USDT", Decimal("60"), to_personal=True
        )
    async with context.db.transaction() as session:
        await context.balances.transfer(
            session, shop.merchant_id, "USDT", Decimal("12.5"), to_personal=False
        )


async def test_healthy_ledger_passes(context, history):
    report = await run_check(context)
    assert report.ok, report.violations
    assert (report.transactions, report.deposits) == (6, 3)


async def test_an_unbalanced_posting_is_caught(context, history):
    async with context.db.transaction() as session:
        last = await session.scalar(select(Posting).order_by(Posting.id.desc()).limit(1))
        session.add(
            Posting(
                transaction_id=last.transaction_id,
                account_id=last.account_id,
                amount=Decimal("0.00000001"),
                balance_after=last.balance_after + Decimal("0.00000001"),
                created_at=utcnow(),
            )
        )
    report = await run_check(context)
    assert [v.rule for v in report.violations] == ["unbalanced"]


async def test_an_edited_posting_is_caught(context, history):
    """Editing needs the append-only trigger out of the way: as an attacker with the
    database's owner rights would do."""
    async with context.db.transaction() as session:
        trigger = None
        if context.db.is_sqlite:
            trigger = await session.scalar(
                text("SELECT sql FROM sqlite_master WHERE name = 'ledger_postings_no_update'")
            )
            await session.execute(text("DROP TRIGGER ledger_postings_no_update"))
        else:
            await session.execute(text("SET LOCAL session_replication_role = replica"))
        first = await session.scalar(select(Posting.id).order_by(Posting.id).limit(1))
        await session.execute(
            text("UPDATE ledger_postings SET amount = '-101' WHERE id = :id"), {"id": first}
        )
        if trigger is not None:  # the database other tests share keeps its guard
            await session.execute(text(trigger))
    report = await run_check(context)
    rules = {v.rule for v in report.violations}
    assert {"unbalanced", "running total"} <= rules


@pytest.mark.slow
def test_command_exit_codes(tmp_path):
    env = paydesk_env(tmp_path / "data", None)
    healthy = run_cli("ledger", "check", env=env)
    assert healthy.returncode == 0, healthy.stderr
    assert "ledger ok" in healthy.stdout
    database = tmp_path / "data" / "paydesk.db"
    import sqlite3

    with sqlite3.connect(database) as raw:
        raw.execute(
            "INSERT INTO ledger_accounts (uuid, kind, owner, network, currency, created_at) "
            "VALUES ('00000000000000000000000000000001', 'platform_commission', '', '', 'USDT', "
            "'2026-01-01 00:00:00')"
        )
        raw.execute(
            "INSERT INTO ledger_transactions (uuid, kind, reference, created_at) "
            "VALUES ('00000000000000000000000000000002', 'forged', 'forged:1', "
            "'2026-01-01 00:00:00')"
        )
        raw.execute(
            "INSERT INTO ledger_postings "
            "(uuid, transaction_id, account_id, amount, balance_after, created_at) "
            "VALUES ('00000000000000000000000000000003', 1, 1, '5', '5', '2026-01-01 00:00:00')"
        )
    broken = run_cli("ledger", "check", env=env)
    assert broken.returncode == 1
    assert "unbalanced" in broken.stdout and "single leg" in broken.stdout
