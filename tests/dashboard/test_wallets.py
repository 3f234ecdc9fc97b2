"""The wallets page over HTTP, on both databases: balances read from the ledger, transfers
between the business and the personal wallet (exact, refused whole), the history and its
pages, and test (devnet) money shown apart from real money."""

from __future__ import annotations

import itertools
import re
import uuid
from decimal import Decimal
from html.parser import HTMLParser

import pytest
from sqlalchemy import func, select

from paydesk.context import Context
from paydesk.dashboard.views.wallets import PAGE_SIZE, parse_amount, parse_cursor
from paydesk.db import utcnow
from paydesk.invoices.schemas import InvoiceDraft
from paydesk.ledger import service as ledger
from paydesk.ledger.models import Account, AccountKind, JournalTransaction, Posting
from paydesk.merchants.service import ApiAccess, create_merchant
from tests.dashboard.conftest import Dashboard, make_user, sign_in
from tests.devnet import mine

_references = itertools.count(1)


class _Tables(HTMLParser):
    """The text of each row's cells in the table with a given `data-testid`."""

    def __init__(self, testid: str) -> None:
        super().__init__()
        self.testid = testid
        self.depth = 0  # > 0 inside the wanted table
        self.rows: list[list[str]] = []
        self.cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table" and (self.depth or ("data-testid", self.testid) in attrs):
            self.depth += 1
        elif self.depth and tag == "tr":
            self.rows.append([])
        elif self.depth and tag == "td":
            self.cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "table" and self.depth:
            self.depth -= 1
        elif tag == "td" and self.cell is not None:
            self.rows[-1].append(" ".join("".join(self.cell).split()))
            self.cell = None

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell.append(data)


def table_rows(html: str, testid: str) -> list[list[str]]:
    """Body rows (those with cells) of the table marked `data-testid=testid`."""
    parser = _Tables(testid)
    parser.feed(html)
    return [row for row in parser.rows if row]


def cell(html: str, testid: str) -> str | None:
    found = re.search(rf'data-testid="{re.escape(testid)}">([^<]*)<', html)
    return found.group(1) if found else None


async def book(
    context: Context, merchant_id: uuid.UUID, amount: str, currency: str = "USDT", *,
    test: bool = False,
) -> None:  # fmt: skip
    """Credit the business wallet as a confirmed deposit does: on-chain holdings down,
    the merchant's balance up (in the devnet's own book for `test`)."""
    network = "devnet" if test else "eth"
    async with context.db.transaction() as session:
        holdings = await ledger.account(
            session, AccountKind.ONCHAIN_HOLDINGS, currency, network=network
        )
        business = await ledger.account(
            session, AccountKind.MERCHANT_BUSINESS, currency, owner=merchant_id,
            network=ledger.ledger_book(network),
        )  # fmt: skip
        value = Decimal(amount)
        await ledger.post(
            session, "deposit", f"test-deposit:{next(_references)}:{uuid.uuid4()}",
            [ledger.Leg(holdings, -value), ledger.Leg(business, value)],
            memo="invoice from a test",
        )  # fmt: skip


async def balances(context: Context, merchant_id: uuid.UUID) -> tuple[dict, dict]:
    async with context.db.reader() as session:
        wallets = await context.balances.wallets(session, merchant_id)
    return (
        {w.currency: w.balance for w in wallets.business},
        {w.currency: w.balance for w in wallets.personal},
    )


async def transfers(context: Context) -> int:
    async with context.db.reader() as session:
        return await session.scalar(
            select(func.count())
            .select_from(JournalTransaction)
            .where(JournalTransaction.kind.like("transfer_%"))
        )


async def transfer(dashboard: Dashboard, amount: str, direction: str = "to_personal",
                   currency: str = "USDT"):  # fmt: skip
    return await dashboard.post(f"{dashboard.base}/wallets/transfer", {
        "direction": direction, "currency": currency, "amount": amount,
    })  # fmt: skip


# --------------------------------------------------------------------------- parsing
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("12", Decimal("12")),
        (" 12.50 ", Decimal("12.50")),
        ("0.00000001", Decimal("0.00000001")),
        ("1" * 30, Decimal("1" * 30)),
    ],
)
def test_amounts_parse_exactly(text, expected):
    parsed = parse_amount(text)
    assert parsed == expected and isinstance(parsed, Decimal)
    assert f"{parsed:f}" == text.strip()  # the digits as typed: no float went between


@pytest.mark.parametrize(
    "text",
    ["", " ", "abc", "0", "0.000", "-5", "+5", "NaN", "nan", "sNaN", "Infinity", "inf",
     "1e3", "1E-2", "1e999999999", "1,5", "1 000", "1_000", "0x10", ".5", "5.", "1.2.3",
     "\u0661\u0662", "\uff11", "1" * 31, "1." + "1" * 31, "½"],
)  # fmt: skip
def test_anything_else_is_not_an_amount(text):
    assert parse_amount(text) is None


def test_history_cursor_is_a_posting_id_or_nothing():
    assert parse_cursor("42") == 42
    for junk in (None, "", "0", "-1", "abc", "1e3", "\u0661", "9" * 20, str(2**63)):
        assert parse_cursor(junk) is None


# --------------------------------------------------------------------------- balances
async def test_balances_from_the_ledger_with_test_money_apart(dashboard, context):
    me = dashboard.project.merchant_id
    empty = await dashboard.get(f"{dashboard.base}/wallets")
    assert empty.status_code == 200
    assert "Nothing yet" in empty.text and 'data-testid="test-money"' not in empty.text

    await book(context, me, "125.5")
    await book(context, me, "0.00012345", "BTC")
    await book(context, me, "7", test=True)
    page = await dashboard.get(f"{dashboard.base}/wallets")
    assert page.status_code == 200
    assert cell(page.text, "balance-USDT") == "125.5"
    assert cell(page.text, "balance-BTC") == "0.00012345"
    # Devnet money: in its own labelled section, never among the real balances.
    assert cell(page.text, "test-balance-business-USDT") == "7"
    business = page.text.split('data-testid="business"')[1].split("</section>")[0]
    assert "badge test" not in business and 'balance-USDT">7<' not in business
    test_section = page.text.split('data-testid="test-money"')[1].split("</section>")[0]
    assert "not real money" in test_section and 'class="badge test">test<' in test_section
    history = table_rows(page.text, "history")
    assert [row[1:5] for row in history] == [
        ["Business test", "USDT", "+7", "7"],
        ["Business", "BTC", "+0.00012345", "0.00012345"],
        ["Business", "USDT", "+125.5", "125.5"],
    ]
    assert history[0][5].startswith("Payment received")


async def test_a_devnet_payment_shows_as_test_money(dashboard, context):
    me = dashboard.project.merchant_id
    draft = InvoiceDraft(amount=Decimal("12.5"), currency="USDT", order_id="dev-1",
                         network="devnet")  # fmt: skip
    async with context.db.transaction() as session:
        invoice = (await context.invoices.create(session, me, draft)).invoice
    await mine(context)  # genesis
    async with context.db.transaction() as session:
        locked = await context.invoices.get_for_update(session, invoice.uuid)
        await context.devnet.pay_invoice(session, locked, context.invoices)
    await mine(context)
    page = await dashboard.get(f"{dashboard.base}/wallets")
    assert cell(page.text, "test-balance-business-USDT") == "12.5"
    assert cell(page.text, "balance-USDT") is None  # nothing real arrived
    assert await balances(context, me) == ({}, {})
    # Test money is kept in its own book: a transfer draws on real money only.
    refused = await transfer(dashboard, "1")
    assert refused.status_code == 422 and "Not enough money" in refused.text


# --------------------------------------------------------------------------- transfers
async def test_transfers_both_ways_move_exact_amounts(dashboard, context):
    me = dashboard.project.merchant_id
    await book(context, me, "100")

    moved = await transfer(dashboard, "40.25")
    assert moved.status_code == 303
    assert moved.headers["location"] == f"{dashboard.base}/wallets?done=transferred"
    assert await balances(context, me) == (
        {"USDT": Decimal("59.75")}, {"USDT": Decimal("40.25")}
    )  # fmt: skip

    back = await transfer(dashboard, "0.50000001", "to_business")
    assert back.status_code == 303
    business, personal = await balances(context, me)
    assert business == {"USDT": Decimal("60.25000001")}
    assert personal == {"USDT": Decimal("39.74999999")}
    assert business["USDT"] + personal["USDT"] == Decimal("100")

    page = await dashboard.get(moved.headers["location"])
    assert "Transfer done." in page.text
    assert cell(page.text, "balance-USDT") == "60.25000001"
    history = table_rows(page.text, "history")
    assert [row[1:6] for row in history[:4]] == [
        ["Business", "USDT", "+0.50000001", "60.25000001", "Transfer to the business wallet"],
        ["Personal", "USDT", "-0.50000001", "39.74999999", "Transfer to the business wallet"],
        ["Personal", "USDT", "+40.25", "40.25", "Transfer to the personal wallet"],
        ["Business", "USDT", "-40.25", "59.75", "Transfer to the personal wallet"],
    ]
    assert history[4][1:5] == ["Business", "USDT", "+100", "100"]


async def test_insufficient_funds_moves_nothing(dashboard, context):
    me = dashboard.project.merchant_id
    await book(context, me, "10")
    short = await transfer(dashboard, "10.01")
    assert short.status_code == 422
    assert "Not enough money: the business wallet holds 10 USDT." in short.text
    assert 'value="10.01"' in short.text  # the form comes back as typed
    # Nothing in the personal wallet: the other way is refused too, and its refusal
    # leaves not even the account the service opened for it.
    empty = await transfer(dashboard, "1", "to_business")
    assert empty.status_code == 422 and "the personal wallet holds 0 USDT" in empty.text
    assert await balances(context, me) == ({"USDT": Decimal("10")}, {})
    assert await transfers(context) == 0
    async with context.db.reader() as session:
        kinds = await session.scalars(select(Account.kind).where(Account.owner != ""))
        assert AccountKind.USER_PERSONAL.value not in set(kinds)

    assert (await transfer(dashboard, "10")).status_code == 303  # all of it is fine
    assert await balances(context, me) == ({"USDT": Decimal("0")}, {"USDT": Decimal("10")})


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"amount": "abc"}, "Enter a positive amount"),
        ({"amount": "NaN"}, "Enter a positive amount"),
        ({"amount": "Infinity"}, "Enter a positive amount"),
        ({"amount": "1e1"}, "Enter a positive amount"),
        ({"amount": "-5"}, "Enter a positive amount"),
        ({"amount": "0"}, "Enter a positive amount"),
        ({"amount": "2,5"}, "Enter a positive amount"),
        ({"amount": ""}, "Enter a positive amount"),
        ({"amount": "1.123456789"}, "USDT amounts have at most 8 decimals."),
        ({"amount": "0.1"}, "The smallest transfer is 0.5 USDT."),
        ({"amount": "9" * 30}, "The largest transfer is 1000000 USDT."),
        ({"currency": "USD"}, "Choose one of the offered currencies."),
        ({"currency": "DOGE"}, "Choose one of the offered currencies."),
        ({"direction": "sideways"}, "Choose which way the money goes."),
    ],
)
async def test_bad_transfers_are_refused_on_the_form(dashboard, context, fields, message):
    me = dashboard.project.merchant_id
    await book(context, me, "50")
    form = {"direction": "to_personal", "currency": "USDT", "amount": "5", **fields}
    refused = await dashboard.post(f"{dashboard.base}/wallets/transfer", form)
    assert refused.status_code == 422
    assert message in refused.text and 'role="alert"' in refused.text
    assert await balances(context, me) == ({"USDT": Decimal("50")}, {})
    assert await transfers(context) == 0


async def test_a_transfer_without_the_form_token_is_forbidden(dashboard, context):
    me = dashboard.project.merchant_id
    await book(context, me, "50")
    url = f"{dashboard.base}/wallets/transfer"
    fields = {"direction": "to_personal", "currency": "USDT", "amount": "5"}
    assert (await dashboard.http.post(url, data=fields)).status_code == 403
    forged = await dashboard.http.post(url, data={**fields, "csrf_token": "x" * 43})
    assert forged.status_code == 403
    assert await transfers(context) == 0


async def test_another_users_project_is_not_found(dashboard, browser, context):
    stranger = await make_user(context, "stranger@else.test")
    async with context.db.transaction() as session:
        theirs = await create_merchant(session, context.vault, name="Not mine", user=stranger,
                                       api_access=ApiAccess.APPROVED)  # fmt: skip
    await book(context, theirs.merchant_id, "80")
    other = f"/dashboard/projects/{theirs.merchant_id}"
    assert (await dashboard.get(f"{other}/wallets")).status_code == 404
    stolen = await dashboard.post(f"{other}/wallets/transfer", {
        "direction": "to_personal", "currency": "USDT", "amount": "80",
    })  # fmt: skip
    assert stolen.status_code == 404
    assert await balances(context, theirs.merchant_id) == ({"USDT": Decimal("80")}, {})
    assert (await dashboard.get("/dashboard/projects/not-a-uuid/wallets")).status_code == 404

    # Signed out: to the sign-in page, not the wallets.
    await browser.post("/dashboard/logout", data={"csrf_token": dashboard.csrf})
    away = await browser.get(f"{dashboard.base}/wallets")
    assert away.status_code == 303 and away.headers["location"].startswith("/dashboard/login")
    # Its owner sees it.
    assert (await sign_in(browser, "stranger@else.test")).status_code == 303
    mine_page = await browser.get(f"{other}/wallets")
    assert mine_page.status_code == 200 and cell(mine_page.text, "balance-USDT") == "80"


async def test_history_pages_go_back_fifty_at_a_time(dashboard, context):
    me = dashboard.project.merchant_id
    for _ in range(PAGE_SIZE + 4):
        await book(context, me, "1")
    assert (await transfer(dashboard, "3")).status_code == 303  # two more postings

    first = await dashboard.get(f"{dashboard.base}/wallets")
    rows = table_rows(first.text, "history")
    assert len(rows) == PAGE_SIZE
    assert rows[0][5].startswith("Transfer to the personal wallet")
    older = re.search(r'href="([^"]+\?before=(\d+))" rel="next"', first.text)
    assert older is not None
    async with context.db.reader() as session:
        own = list(
            await session.scalars(
                select(Posting.id)
                .join(Account, Account.id == Posting.account_id)
                .where(Account.kind.in_([AccountKind.MERCHANT_BUSINESS.value,
                                         AccountKind.USER_PERSONAL.value]))
                .order_by(Posting.id.desc())
            )
        )  # fmt: skip
    assert len(own) == PAGE_SIZE + 6
    assert int(older.group(2)) == own[PAGE_SIZE - 1]

    second = await dashboard.get(older.group(1))
    rest = table_rows(second.text, "history")
    assert len(rest) == 6 and [row[4] for row in rest] == ["6", "5", "4", "3", "2", "1"]
    assert 'rel="next"' not in second.text and "Newest" in second.text
    past_the_end = await dashboard.get(f"{dashboard.base}/wallets?before=1")
    assert table_rows(past_the_end.text, "history") == []
    assert "No movements before these" in past_the_end.text
    junk = await dashboard.get(f"{dashboard.base}/wallets?before=1e9")
    assert junk.status_code == 200 and len(table_rows(junk.text, "history")) == PAGE_SIZE


async def test_postings_page_reads_only_the_given_accounts(context):
    async with context.db.transaction() as session:
        one = await create_merchant(session, context.vault, name="One", email="a@one.test")
        two = await create_merchant(session, context.vault, name="Two", email="b@two.test")
    await book(context, one.merchant_id, "1")
    await book(context, two.merchant_id, "2")
    await book(context, one.merchant_id, "3")
    async with context.db.reader() as session:
        account = await ledger.find_account(
            session, AccountKind.MERCHANT_BUSINESS, "USDT", owner=one.merchant_id
        )
        assert account is not None
        entries = await ledger.postings_page(session, [account.id], limit=10)
        assert [e.posting.amount for e in entries] == [Decimal(3), Decimal(1)]
        assert {e.transaction.kind for e in entries} == {"deposit"}
        assert entries[0].posting.created_at <= utcnow()
        older = await ledger.postings_page(
            session, [account.id], limit=10, before=entries[0].posting.id
        )
        assert [e.posting.amount for e in older] == [Decimal(1)]
        assert await ledger.postings_page(session, [], limit=10) == []
