"""What to sweep, what it is worth, and what a sweep books.

Candidates come from credited deposits, never from scanning addresses: a (deposit address,
currency) pair is swept when a deposit to it was credited after its last sweep was made. Only
addresses derived from the master seed qualify — a merchant's own xpub addresses are
watch-only, Paydesk has no key for them and their coins are not the platform's.

The ledger keeps on-chain holdings per (network, coin), not per address: tokens moving
from a deposit address to the hot wallet stay the platform's holdings on that network, so
the move itself books nothing and no merchant balance changes. What a sweep costs is real
money leaving those holdings — the top-up's fee paid by the hot wallet, the transfer's fee
paid by the deposit address — and each is booked as the platform's network fee expense,
in the native coin, when its transaction is confirmed. The native coin left on a deposit
address after its sweep is still platform holdings: nothing to book either.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import and_, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from paydesk.catalogue.service import Catalogue
from paydesk.chains.models import MASTER_KEY_OWNER, DepositAddress
from paydesk.deposits.models import Deposit
from paydesk.deposits.service import CREDITED
from paydesk.ledger import service as ledger
from paydesk.ledger.models import AccountKind
from paydesk.money import MONEY
from paydesk.rates.service import RatesService
from paydesk.sweeps.models import OPEN_STAGES, Sweep, SweepTopUp

#: Network families whose deposit addresses are swept: token balances on EVM and TRON,
#: and the coin itself (its deposits are only the deposit address's key's to spend, so
#: payouts could never use them otherwise).
SWEPT_FAMILIES = frozenset({"evm", "tron", "utxo"})
#: Families whose coin itself is swept too (a transfer that pays its own fee).
NATIVE_SWEPT_FAMILIES = frozenset({"evm", "tron", "utxo"})
#: Journal transaction kind of a sweep's network fee.
FEE_KIND = "sweep_network_fee"


@dataclass(frozen=True, slots=True)
class Candidate:
    """A deposit address holding a token that arrived since its last sweep."""

    address: str
    currency: str
    derivation_index: int
    last_deposit_id: int


def swept_currencies(catalogue: Catalogue, network: str) -> list[str]:
    """What sweeps move: the network's tokens (services with a contract), and its coin
    where invoices take it and the family sweeps it (`NATIVE_SWEPT_FAMILIES`)."""
    found = catalogue.network(network)
    native = found.native if found and found.family in NATIVE_SWEPT_FAMILIES else None
    services = [s for s in catalogue.services if s.network == network]
    return sorted({s.currency for s in services if s.contract or s.currency == native})


async def candidates(
    session: AsyncSession, network: str, currencies: list[str], limit: int
) -> list[Candidate]:
    """Pairs with a credited deposit newer than their last sweep's, and no sweep at work
    (a deposit credited meanwhile makes the next one, after it), oldest news first."""
    if not currencies:
        return []
    swept = (
        select(
            Sweep.address.label("address"),
            Sweep.currency.label("currency"),
            func.max(Sweep.last_deposit_id).label("upto"),
        )
        .where(Sweep.network == network)
        .group_by(Sweep.address, Sweep.currency)
        .subquery()
    )
    at_work = exists().where(
        Sweep.network == network,
        Sweep.address == Deposit.address,
        Sweep.currency == Deposit.currency,
        Sweep.stage.in_(OPEN_STAGES),
    )
    newest = func.max(Deposit.id)
    rows = await session.execute(
        select(Deposit.address, Deposit.currency, DepositAddress.derivation_index, newest)
        .join(
            DepositAddress,
            and_(
                DepositAddress.network == Deposit.network, DepositAddress.address == Deposit.address
            ),
        )
        .outerjoin(
            swept, and_(swept.c.address == Deposit.address, swept.c.currency == Deposit.currency)
        )
        .where(
            Deposit.network == network,
            Deposit.status == CREDITED,
            Deposit.currency.in_(currencies),
            DepositAddress.key_owner == MASTER_KEY_OWNER,
            or_(swept.c.upto.is_(None), Deposit.id > swept.c.upto),
            ~at_work,
        )
        .group_by(Deposit.address, Deposit.currency, DepositAddress.derivation_index)
        .order_by(newest)
        .limit(limit)
    )
    return [Candidate(a, c, int(i), int(d)) for a, c, i, d in rows]


async def top_up_txids(session: AsyncSession, network: str, txids: set[str]) -> set[str]:
    """Which of `txids` are top-ups the hot wallet signed for sweeps."""
    if not txids:
        return set()
    found = await session.scalars(
        select(SweepTopUp.txid).where(
            SweepTopUp.network == network, SweepTopUp.txid.in_(sorted(txids))
        )
    )
    return set(found)


async def usd_value(rates: RatesService, currency: str, amount: Decimal) -> Decimal | None:
    """`amount` of `currency` in US dollars, or None when no rate connects them."""
    rate = (await rates.book()).convert(currency, "USD")
    return None if rate is None else MONEY.multiply(amount, rate.value)


async def book_network_fee(
    session: AsyncSession, sweep: Sweep, part: str, txid: str, fee: Decimal
) -> None:
    """The fee a sweep's transaction (`part`: funding or transfer) cost, out of the
    network's holdings of its native coin into the platform's network fee expense."""
    if fee <= 0:
        return
    holdings = await ledger.account(
        session, AccountKind.ONCHAIN_HOLDINGS, sweep.native, network=sweep.network
    )
    expense = await ledger.account(
        session,
        AccountKind.NETWORK_FEE_EXPENSE,
        sweep.native,
        network=ledger.ledger_book(sweep.network),
    )
    await ledger.post(
        session,
        FEE_KIND,
        f"sweep:{sweep.uuid}:{part}:{txid}",
        [ledger.Leg(holdings, fee), ledger.Leg(expense, -fee)],
        memo=f"sweep {sweep.uuid} {sweep.currency} {txid}",
    )
