"""The project's wallets: the business wallet (what the platform owes the project) and
the owner's personal one, read from the ledger; transfers between the two; and their
history, posting by posting. Test money (the devnet's book) is shown apart and labelled,
so that nobody takes it for real money."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from paydesk.catalogue.service import Catalogue
from paydesk.dashboard.pages import project_url, render
from paydesk.dashboard.security import (
    DASHBOARD,
    Visitor,
    context_of,
    project_request,
    signed_form,
)
from paydesk.ledger import service as ledger
from paydesk.ledger.balances import (
    CurrencyNotServed,
    TooManyDecimals,
    TransferOutOfRange,
    TransferRefused,
)
from paydesk.ledger.models import Account, AccountKind
from paydesk.merchants.models import Merchant, User
from paydesk.money import plain
from paydesk.web.forms import see_other

router = APIRouter(prefix=f"{DASHBOARD}/projects", include_in_schema=False)

#: History lines per page.
PAGE_SIZE = 50
#: A posting id fits PostgreSQL's bigint; a longer `before` is not one of ours.
_MAX_CURSOR = 2**63 - 1

#: What a typed amount may look like: ASCII digits, an optional point and decimals. No
#: sign, exponent, NaN or Infinity, no grouping, and no more digits than stored exactly.
_AMOUNT = re.compile(r"[0-9]{1,30}(?:\.[0-9]{1,30})?")

TO_PERSONAL = "to_personal"
TO_BUSINESS = "to_business"
DIRECTIONS = (
    (TO_PERSONAL, "From the business wallet to my personal wallet"),
    (TO_BUSINESS, "From my personal wallet to the business wallet"),
)

#: What a journal transaction's kind means to a merchant.
KIND_LABELS = {
    "deposit": "Payment received",
    "deposit_reversal": "Payment reversed (the chain dropped it)",
    "transfer_to_personal": "Transfer to the personal wallet",
    "transfer_to_business": "Transfer to the business wallet",
    "checkout_payment": "Checkout payment",
    "payout_reserve": "Payout: amount set aside",
    "payout_release": "Payout: amount released",
    "payout_network_fee": "Payout: network fee",
    "payout": "Payout sent",
}

WALLET_NAMES = {
    AccountKind.MERCHANT_BUSINESS.value: "business",
    AccountKind.USER_PERSONAL.value: "personal",
}


def parse_amount(text: str) -> Decimal | None:
    """A positive amount typed in a dashboard form, parsed straight into Decimal (never a
    float); None for anything else. Decimals beyond what the currency allows are left
    for the service to refuse, with its own message."""
    cleaned = text.strip()
    if not _AMOUNT.fullmatch(cleaned):
        return None
    amount = Decimal(cleaned)
    return amount if amount > 0 else None


def parse_cursor(text: str | None) -> int | None:
    """A `?before=` id; anything else shows the first page rather than an error."""
    if not text or not text.isascii() or not text.isdigit() or len(text) > 19:
        return None
    value = int(text)
    return value if 0 < value <= _MAX_CURSOR else None


def signed(amount: Decimal) -> str:
    return f"+{plain(amount)}" if amount > 0 else plain(amount)


@dataclass(frozen=True, slots=True)
class BookBalance:
    """A balance of the test book (devnet money, a checkout sandbox)."""

    wallet: str
    book: str
    currency: str
    balance: str


@dataclass(frozen=True, slots=True)
class HistoryLine:
    when: datetime
    wallet: str
    #: The test book's name ("devnet"), empty for live money.
    book: str
    currency: str
    amount: str
    balance_after: str
    what: str
    memo: str | None


@dataclass(frozen=True, slots=True)
class TransferForm:
    """The transfer form as typed, to show it again with a refusal."""

    direction: str = TO_PERSONAL
    currency: str = ""
    amount: str = ""


def transfer_currencies(catalogue: Catalogue) -> list[str]:
    """The coins a transfer can move: the crypto currencies served here (wallets hold
    coins; fiat is only an invoice's unit)."""
    return [code for code in catalogue.codes if catalogue.is_crypto(code)]


async def wallet_accounts(session: AsyncSession, project: Merchant, user: User) -> list[Account]:
    """The project's business accounts and the owner's personal ones, in every book."""
    return list(
        await session.scalars(
            select(Account)
            .where(
                (
                    (Account.kind == AccountKind.MERCHANT_BUSINESS.value)
                    & (Account.owner == str(project.id))
                )
                | (
                    (Account.kind == AccountKind.USER_PERSONAL.value)
                    & (Account.owner == str(user.id))
                )
            )
            .order_by(Account.network, Account.kind, Account.currency)
        )
    )


async def _page(
    request: Request,
    session: AsyncSession,
    current: Visitor,
    project: Merchant,
    *,
    before: int | None = None,
    form: TransferForm | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    context = context_of(request)
    wallets = await context.balances.wallets(session, project.id)
    accounts = await wallet_accounts(session, project, current.user)
    by_id = {account.id: account for account in accounts}
    test_accounts = [account for account in accounts if account.network]
    totals = await ledger.credit_totals(session, [account.id for account in test_accounts])
    test_balances = [
        BookBalance(WALLET_NAMES[account.kind], account.network, account.currency,
                    plain(account.sign * totals[account.id]))
        for account in test_accounts
    ]  # fmt: skip

    entries = await ledger.postings_page(session, list(by_id), limit=PAGE_SIZE + 1, before=before)
    older = entries[PAGE_SIZE - 1].posting.id if len(entries) > PAGE_SIZE else None
    history = []
    for entry in entries[:PAGE_SIZE]:
        account = by_id[entry.posting.account_id]
        kind = entry.transaction.kind
        history.append(
            HistoryLine(
                when=entry.posting.created_at,
                wallet=WALLET_NAMES[account.kind],
                book=account.network,
                currency=account.currency,
                amount=signed(account.sign * entry.posting.amount),
                balance_after=plain(account.sign * entry.posting.balance_after),
                what=KIND_LABELS.get(kind, kind.replace("_", " ").capitalize()),
                memo=entry.transaction.memo,
            )
        )
    currencies = transfer_currencies(context.catalogue)
    if form is None:
        held = [w.currency for w in wallets.business if w.balance > 0 and w.currency in currencies]
        form = TransferForm(currency=held[0] if held else (currencies[0] if currencies else ""))
    return render(
        request, "wallets.html", current, project=project, section="wallets",
        wallets=wallets, test_balances=test_balances, history=history, older=older,
        first_page=before is None, currencies=currencies, directions=DIRECTIONS,
        form=form, amount=plain, error=error, status_code=status_code,
    )  # fmt: skip


@router.get("/{merchant_id}/wallets")
async def wallets_page(request: Request, merchant_id: str) -> Response:
    async with project_request(request, merchant_id) as (_context, session, current, project):
        before = parse_cursor(request.query_params.get("before"))
        return await _page(request, session, current, project, before=before)


@router.post("/{merchant_id}/wallets/transfer")
async def transfer(request: Request, merchant_id: str) -> Response:
    """Move money between the two wallets. The transfer runs in a savepoint: a refusal
    (raised by the service before or after it created a wallet's account) leaves nothing
    behind, while the page is still answered from the same transaction."""
    async with project_request(request, merchant_id) as (context, session, current, project):
        fields = await signed_form(request, current)
        form = TransferForm(
            direction=fields.get_one("direction"),
            currency=fields.get_one("currency").strip().upper()[:16],
            amount=fields.get_one("amount").strip()[:64],
        )
        amount = parse_amount(form.amount)
        error = _check(form, amount)
        if amount is not None and error is None:
            try:
                async with session.begin_nested():
                    await context.balances.transfer(
                        session, project.id, form.currency, amount,
                        to_personal=form.direction == TO_PERSONAL,
                    )  # fmt: skip
            except (TransferRefused, ledger.InsufficientFunds) as refused:
                error = _refusal(refused, form)
        if error is not None:
            return await _page(request, session, current, project, form=form, error=error,
                               status_code=422)  # fmt: skip
    return see_other(project_url(project, "/wallets?done=transferred"))


def _check(form: TransferForm, amount: Decimal | None) -> str | None:
    """What the form itself gets wrong, before the ledger is asked."""
    if form.direction not in (TO_PERSONAL, TO_BUSINESS):
        return "Choose which way the money goes."
    if amount is None:
        return "Enter a positive amount in digits, with a point before any decimals (12.5)."
    return None


def _refusal(refused: Exception, form: TransferForm) -> str:
    if isinstance(refused, ledger.InsufficientFunds):
        source = "business" if form.direction == TO_PERSONAL else "personal"
        return (
            f"Not enough money: the {source} wallet holds {plain(refused.available)} "
            f"{form.currency}."
        )
    if isinstance(refused, TooManyDecimals):
        return f"{refused.currency} amounts have at most {refused.places} decimals."
    if isinstance(refused, TransferOutOfRange):
        word = "smallest" if refused.below else "largest"
        return f"The {word} transfer is {plain(refused.limit)} {refused.currency}."
    if isinstance(refused, CurrencyNotServed):
        return "Choose one of the offered currencies."
    return "The transfer was refused."
