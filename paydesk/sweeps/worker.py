"""The sweeper: moves tokens and coins from deposit addresses to the hot wallet, one network
at a time.

A deposit address that received tokens holds no native coin to pay for moving them, so a
sweep has two transactions: the hot wallet tops the address up with what the transfer may
burn (gas on EVM networks, TRX for energy and bandwidth on TRON), then the address sends
its whole balance of the token to the hot wallet, signed with its own key derived from the
master seed. Like payouts, every step is written down before the next one:

1. the top-up is signed and stored (stage `funding`: txid, raw bytes, the hot wallet's
   nonce), then broadcast, then looked up by txid until it has the network's
   confirmations; its fee is booked and the sweep is `queued` again, now funded;
2. the token transfer is signed and stored (stage `signed`), broadcast (`sent`), followed
   until confirmed (`done`), and its fee booked.

A worker that dies anywhere finds the stored transaction on restart and asks the node for
its txid: known, it follows it; unknown, it broadcasts the very same bytes again, so at
most one of them is ever mined. Only when the chain shows that the transaction can never
be mined (its nonce taken; on TRON, expired) is the step signed anew.

Nonces: the top-up is signed by the hot wallet and takes its next nonce, which payouts use
too. So the sweeper works only while it holds the network's `PayoutLane` lease — the one
the payout worker signs under — and within a process the two share that lease's owner and
take turns with one lock (`paydesk.payouts.lanes`): their signatures never interleave, and
`PayoutLane.next_nonce` counts both. The deposit address's own nonce is only ever used by
sweeps, one transfer in flight per address.

The coin itself is swept with step 2 only: the address sends what it holds less its own
transfer's fee (no top-up); while a token sweep of the same address is open, the coin's
waits, so a top-up never leaves with it. On the Bitcoin family that is the address's
credited outputs in one transaction, and a spent input plays the part of a taken nonce:
the transaction is signed anew over what is left.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

import structlog
from bip_utils import Bip44Changes
from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from paydesk.catalogue.models import Network
from paydesk.chains.adapter import (
    BroadcastRejected,
    ChainUnavailable,
    HotWalletShort,
    NonceTaken,
    PayoutSender,
    SentTransfer,
    SignedTransfer,
)
from paydesk.chains.registry import normalize_address
from paydesk.context import Context
from paydesk.db import utcnow
from paydesk.deposits.models import Deposit
from paydesk.deposits.service import CREDITED
from paydesk.money import MONEY
from paydesk.payouts.lanes import LaneLease, hot_wallet_lane, run_lane_worker
from paydesk.payouts.models import PayoutLane
from paydesk.payouts.worker import hot_wallets
from paydesk.sweeps.models import OPEN_STAGES, Sweep, SweepTopUp
from paydesk.sweeps.service import (
    SWEPT_FAMILIES,
    Candidate,
    book_network_fee,
    candidates,
    swept_currencies,
    usd_value,
)
from paydesk.sweeps.signers import DepositKey, NotSweepable, Outpoint, deposit_key

log = structlog.get_logger(__name__)

QUEUED, FUNDING, SIGNED, SENT, DONE, FAILED, SKIPPED = (
    "queued", "funding", "signed", "sent", "done", "failed", "skipped"
)  # fmt: skip
#: Stages with a transaction stored and not yet confirmed.
IN_FLIGHT = (FUNDING, SIGNED, SENT)

#: Queued sweeps started per step: a step holds the hot wallet's lock, payouts wait.
BATCH = 20
#: Candidates read per discovery, and how often the deposits are read for new ones.
DISCOVER_BATCH = 200
DISCOVER_SECONDS = 60.0
#: How often an idle sweeper looks for work (sweeping is never urgent).
POLL_SECONDS = 10.0
#: Wait before trying again: the hot wallet could not pay, or a node refused.
RETRY = timedelta(seconds=60)
#: Wait when no rate values the token in dollars (the minimum cannot be checked).
NO_RATE_RETRY = timedelta(minutes=10)
#: Transactions a sweep may sign before a failure ends it (an operator looks then).
MAX_ATTEMPTS = 6


class KeyMismatch(RuntimeError):
    """The key derived for a deposit address spells another address: never sign."""


@dataclass(frozen=True, slots=True)
class SweepStep:
    #: Sweeps made from new deposits.
    found: int = 0
    #: Top-ups and token transfers signed.
    funded: int = 0
    signed: int = 0
    #: Sweeps finished: swept, left alone (below the minimum, nothing there), given up.
    done: int = 0
    skipped: int = 0
    failed: int = 0
    leased: bool = True

    @property
    def busy(self) -> bool:
        return bool(self.funded or self.signed or self.done or self.failed)


class SweepWorker(LaneLease):
    """One network's sweeper. `hot_wallet` signs the top-ups, broadcasts and looks up
    every transaction (a transaction's bytes need no key to be sent or followed)."""

    def __init__(
        self,
        context: Context,
        network: Network,
        hot_wallet: PayoutSender,
        *,
        owner: str | None = None,
        lease_seconds: float | None = None,
        discover_every: float = DISCOVER_SECONDS,
        batch: int = BATCH,
    ) -> None:
        if network.family not in SWEPT_FAMILIES:
            raise NotSweepable(f"no sweeps on {network.code} ({network.family})")
        self.context = context
        self.network = network
        self.hot_wallet = hot_wallet
        self._owner = owner
        self.lease = timedelta(seconds=lease_seconds or context.settings.watcher_lease_seconds)
        self.discover_every = discover_every
        self.batch = batch
        self._discovered_at: float | None = None
        #: A top-up this step could not hand to the node: sign no more until it is.
        self._funding_unsent = False

    @property
    def code(self) -> str:
        return self.network.code

    @property
    def owner(self) -> str:
        """The lease owner: the process's payout worker of this network's, by default."""
        return self._owner or hot_wallet_lane(self.code).owner

    async def step(self) -> SweepStep:
        """Read new deposits, follow what is in flight, then start queued sweeps, holding
        the hot wallet's lock (and lease) throughout."""
        async with hot_wallet_lane(self.code).lock:
            if not await self._take_lease():
                return SweepStep(leased=False)
            keys = self.context.addresses.keys
            if not keys.loaded:
                async with self.context.db.transaction() as session:
                    await keys.load(session)
            found = await self._discover()
            tally: Counter[str] = Counter()
            self._funding_unsent = False
            await self._follow(tally)
            await self._advance(tally)
        return SweepStep(
            found=found,
            funded=tally["funding"],
            signed=tally["signed"],
            done=tally["done"],
            skipped=tally["skipped"],
            failed=tally["failed"],
        )

    # ------------------------------------------------------------------ new work
    async def _discover(self) -> int:
        """Queue a sweep for each pair with newly credited deposits."""
        now = time.monotonic()
        if self._discovered_at is not None and now - self._discovered_at < self.discover_every:
            return 0
        currencies = swept_currencies(self.context.catalogue, self.code)
        async with self.context.db.reader() as session:
            found = await candidates(session, self.code, currencies, DISCOVER_BATCH)
        # A full batch may have left some out: read again next step.
        self._discovered_at = None if len(found) == DISCOVER_BATCH else now
        if not found:
            return 0
        async with self.context.db.transaction() as session:
            if not await self._renew(session):
                return 0
            session.add_all(self._new(candidate) for candidate in found)
        log.info("sweeps.queued", network=self.code, count=len(found))
        return len(found)

    def _new(self, candidate: Candidate) -> Sweep:
        return Sweep(
            network=self.code,
            address=candidate.address,
            derivation_index=candidate.derivation_index,
            currency=candidate.currency,
            last_deposit_id=candidate.last_deposit_id,
            native=self.network.native,
            stage=QUEUED,
            funded=Decimal(0),
            funding_fee=Decimal(0),
            transfer_fee=Decimal(0),
            attempts=0,
        )

    async def _advance(self, tally: Counter[str]) -> None:
        """Start the due queued sweeps, one per address at a time (the address's nonce
        and balance are those of a single transfer)."""
        now = utcnow()
        async with self.context.db.reader() as session:
            busy = set(
                await session.scalars(
                    select(Sweep.address).where(
                        Sweep.network == self.code, Sweep.stage.in_(IN_FLIGHT)
                    )
                )
            )
            queued = list(
                await session.scalars(
                    select(Sweep)
                    .where(
                        Sweep.network == self.code,
                        Sweep.stage == QUEUED,
                        or_(Sweep.next_attempt_at.is_(None), Sweep.next_attempt_at <= now),
                    )
                    .order_by(Sweep.id)
                    .limit(self.batch)
                )
            )
        for sweep in queued:
            if sweep.address in busy:
                continue
            outcome = await self._start(sweep)
            tally[outcome] += 1
            if outcome in ("funding", "signed"):
                busy.add(sweep.address)

    async def _start(self, sweep: Sweep) -> str:
        """Sweep now if the address can pay its transfer, else top it up first."""
        if sweep.currency == self.network.native and await self._token_sweep_open(sweep):
            # Sending the coin now would send the gas a token sweep topped the address
            # up with: that one goes first.
            return await self._postpone(sweep, "a token sweep of the address is open", RETRY)
        try:
            key = await self._deposit_key(sweep)
        except KeyMismatch as exc:
            return await self._end(sweep, FAILED, str(exc))
        balance = await key.balance(sweep.currency)
        if balance <= 0:
            return await self._end(sweep, SKIPPED, f"no {sweep.currency} left to sweep")
        if sweep.funded == 0:
            # Nothing spent on it yet: worth sweeping at all? (Once topped up, it is.)
            minimum = self.context.settings.sweep_min_usd
            value = await usd_value(self.context.rates, sweep.currency, balance)
            if value is None:
                return await self._postpone(
                    sweep, f"no rate values {sweep.currency} in USD", NO_RATE_RETRY
                )
            if value < minimum:
                return await self._end(
                    sweep,
                    SKIPPED,
                    f"{balance:f} {sweep.currency} is worth {value:f} USD, below the "
                    f"{minimum:f} USD sweeps start at",
                )
        try:
            plan = await key.plan(sweep.currency, balance, self.hot_wallet.hot_address)
            if plan.top_up > 0:
                if self._funding_unsent:
                    return "waiting"
                return await self._fund(sweep, plan.top_up)
            signed = await key.sign(sweep.currency, self.hot_wallet.hot_address, plan)
        except HotWalletShort as exc:
            return await self._postpone(sweep, str(exc), RETRY)
        except BroadcastRejected as exc:
            return await self._end(sweep, FAILED, str(exc))
        async with self.context.db.transaction() as session:
            current = await self._claim(session, sweep.id, QUEUED)
            if current is None:
                return "gone"
            current.stage = SIGNED
            current.txid, current.signed_tx, current.nonce = signed.txid, signed.raw, signed.nonce
            current.signed_fee = plan.fee
            current.amount = plan.amount
            current.to_address = self.hot_wallet.hot_address
            current.attempts += 1
            current.last_error = None
            current.next_attempt_at = None
        sweep.txid, sweep.signed_tx, sweep.nonce = signed.txid, signed.raw, signed.nonce
        log.info("sweeps.signed", network=self.code, sweep=str(sweep.uuid), txid=signed.txid,
                 amount=f"{plan.amount:f}", currency=sweep.currency)  # fmt: skip
        await self._broadcast_transfer(sweep, first=True)
        return "signed"

    async def _token_sweep_open(self, sweep: Sweep) -> bool:
        async with self.context.db.reader() as session:
            found = await session.scalar(
                select(Sweep.id)
                .where(
                    Sweep.network == self.code,
                    Sweep.address == sweep.address,
                    Sweep.currency != sweep.currency,
                    Sweep.stage.in_(OPEN_STAGES),
                )
                .limit(1)
            )
        return found is not None

    async def _deposit_key(self, sweep: Sweep) -> DepositKey:
        """The address's signer, from its derivation index; refused unless the key spells
        the very address the deposits were made to."""
        node = (
            self.context.addresses.keys.account(self.code)
            .Change(Bip44Changes.CHAIN_EXT)
            .AddressIndex(sweep.derivation_index)
        )
        outpoints: list[Outpoint] = []
        if self.network.family == "utxo":
            async with self.context.db.reader() as session:
                rows = await session.execute(
                    select(Deposit.txid, Deposit.output_index, Deposit.block_hash).where(
                        Deposit.network == self.code,
                        Deposit.address == sweep.address,
                        Deposit.status == CREDITED,
                        Deposit.block_hash.is_not(None),
                    )
                )
                outpoints = [Outpoint(txid, vout, block) for txid, vout, block in rows]
        private = bytes(node.PrivateKey().Raw().ToBytes())
        key = deposit_key(self.hot_wallet, private, outpoints)
        derived = normalize_address(self.network, key.address)
        if derived is None or derived != normalize_address(self.network, sweep.address):
            raise KeyMismatch(
                f"{self.code}: index {sweep.derivation_index} derives {key.address}, "
                f"not {sweep.address}"
            )
        return key

    async def _fund(self, sweep: Sweep, amount: Decimal) -> str:
        """Sign the hot wallet's top-up with its next nonce, store it, broadcast it."""
        async with self.context.db.reader() as session:
            lane = await session.get(PayoutLane, self.code)
            stored_nonce = lane.next_nonce if lane is not None else None
        chain_nonce = await self.hot_wallet.next_nonce()
        nonce = None if chain_nonce is None else max(chain_nonce, stored_nonce or 0)
        signed = await self.hot_wallet.sign_transfer(
            sweep.address, sweep.native, amount, nonce=nonce, priority="recommended"
        )
        async with self.context.db.transaction() as session:
            current = await self._claim(session, sweep.id, QUEUED)
            if current is None:
                return "gone"
            current.stage = FUNDING
            current.funding_txid, current.funding_tx = signed.txid, signed.raw
            current.funding_nonce, current.funding_amount = signed.nonce, amount
            current.attempts += 1
            current.last_error = None
            current.next_attempt_at = None
            session.add(SweepTopUp(network=self.code, txid=signed.txid, sweep_id=current.id))
            if signed.nonce is not None:
                await session.execute(
                    update(PayoutLane)
                    .where(PayoutLane.network == self.code)
                    .values(next_nonce=signed.nonce + 1)
                )
        sweep.funding_txid, sweep.funding_tx = signed.txid, signed.raw
        sweep.funding_nonce, sweep.funding_amount = signed.nonce, amount
        log.info("sweeps.funding", network=self.code, sweep=str(sweep.uuid), txid=signed.txid,
                 amount=f"{amount:f}", native=sweep.native)  # fmt: skip
        await self._broadcast_funding(sweep, first=True)
        return "funding"

    # ------------------------------------------------------------------ in flight
    async def _follow(self, tally: Counter[str]) -> None:
        """Look every stored transaction up on the chain."""
        async with self.context.db.reader() as session:
            in_flight = list(
                await session.scalars(
                    select(Sweep)
                    .where(Sweep.network == self.code, Sweep.stage.in_(IN_FLIGHT))
                    .order_by(Sweep.id)
                )
            )
        if not in_flight:
            return
        tip = await self.hot_wallet.tip()
        for sweep in in_flight:
            if sweep.stage == FUNDING:
                tally[await self._follow_funding(sweep, tip)] += 1
            else:
                tally[await self._follow_transfer(sweep, tip)] += 1

    def _confirmed(self, state: SentTransfer, tip: int) -> bool:
        if state.block_height is None:
            return False
        return tip - state.block_height + 1 >= self.network.confirmations

    async def _follow_funding(self, sweep: Sweep, tip: int) -> str:
        assert sweep.funding_txid is not None
        state = await self.hot_wallet.lookup(sweep.funding_txid)
        if state is None:
            return await self._broadcast_funding(sweep)
        if not self._confirmed(state, tip):
            return "waiting"
        async with self.context.db.transaction() as session:
            current = await self._claim(session, sweep.id, FUNDING)
            if current is None:
                return "gone"
            txid = current.funding_txid
            assert txid is not None
            await book_network_fee(session, current, "funding", txid, state.fee)
            current.funding_fee = MONEY.add(current.funding_fee, state.fee)
            current.funding_tx = None
            current.next_attempt_at = None
            if state.succeeded:
                current.funded = MONEY.add(current.funded, current.funding_amount or 0)
                current.stage = QUEUED
                log.info("sweeps.funded", network=self.code, sweep=str(sweep.uuid), txid=txid)
                return "funded"
            self._retry_or_fail(current, f"the top-up {txid} failed on chain")
            return "failed" if current.stage == FAILED else "requeued"

    async def _follow_transfer(self, sweep: Sweep, tip: int) -> str:
        assert sweep.txid is not None
        state = await self.hot_wallet.lookup(sweep.txid)
        if state is None:
            return await self._broadcast_transfer(sweep)
        async with self.context.db.transaction() as session:
            current = await self._claim(session, sweep.id, SIGNED, SENT)
            if current is None:
                return "gone"
            current.stage = SENT
            current.block_height = state.block_height
            if not self._confirmed(state, tip):
                return "waiting"
            txid = current.txid
            assert txid is not None
            # Where signing fixed the fee, that is it (the node's wallet does not report
            # the fee of a transaction spending coins it does not hold).
            fee = current.signed_fee if current.signed_fee is not None else state.fee
            await book_network_fee(session, current, "transfer", txid, fee)
            current.transfer_fee = MONEY.add(current.transfer_fee, fee)
            if state.succeeded:
                current.stage = DONE
                current.signed_tx = None
                current.finished_at = utcnow()
                current.last_error = None
                log.info("sweeps.done", network=self.code, sweep=str(sweep.uuid), txid=txid,
                         amount=f"{current.amount:f}", currency=current.currency)  # fmt: skip
                return "done"
            self._retry_or_fail(current, f"the transfer {txid} failed on chain")
            if current.stage == QUEUED:
                self._clear_transfer(current)
            return "failed" if current.stage == FAILED else "requeued"

    async def _broadcast_funding(self, sweep: Sweep, *, first: bool = False) -> str:
        assert sweep.funding_txid is not None and sweep.funding_tx is not None
        transfer = SignedTransfer(
            txid=sweep.funding_txid,
            raw=sweep.funding_tx,
            from_address=self.hot_wallet.hot_address,
            nonce=sweep.funding_nonce,
        )
        outcome = await self._broadcast(sweep, FUNDING, transfer, first=first)
        if outcome == "unsent":
            self._funding_unsent = True
        return outcome

    async def _broadcast_transfer(self, sweep: Sweep, *, first: bool = False) -> str:
        assert sweep.txid is not None and sweep.signed_tx is not None
        transfer = SignedTransfer(
            txid=sweep.txid, raw=sweep.signed_tx, from_address=sweep.address, nonce=sweep.nonce
        )
        outcome = await self._broadcast(sweep, SIGNED, transfer, first=first)
        if outcome == "sent":
            async with self.context.db.transaction() as session:
                current = await self._claim(session, sweep.id, SIGNED)
                if current is not None:
                    current.stage = SENT
        return outcome

    async def _broadcast(
        self, sweep: Sweep, stage: str, transfer: SignedTransfer, *, first: bool
    ) -> str:
        """Hand a stored transaction to the node (again: not `first`). Returns sent,
        unsent (try later), requeued (it can never be mined: sign anew) or failed."""
        try:
            await self.hot_wallet.broadcast(transfer)
        except ChainUnavailable as exc:
            log.warning("sweeps.node_unavailable", network=self.code, error=str(exc))
            return "unsent"
        except NonceTaken as exc:
            return await self._requeue(sweep, stage, str(exc))
        except BroadcastRejected as exc:
            if not first:
                # Sent before, maybe (a lost answer, a crash after the broadcast): it may
                # still be mined from a peer's pool, so it is kept and sent again later.
                await self._note(sweep, str(exc))
                return "unsent"
            return await self._refused(sweep, stage, str(exc))
        log.info("sweeps.broadcast", network=self.code, sweep=str(sweep.uuid),
                 txid=transfer.txid, part=stage)  # fmt: skip
        return "sent"

    # ------------------------------------------------------------------ state changes
    async def _requeue(self, sweep: Sweep, stage: str, reason: str) -> str:
        """The stored transaction can never be mined: nothing was sent, sign anew."""
        stages = (FUNDING,) if stage == FUNDING else (SIGNED, SENT)
        async with self.context.db.transaction() as session:
            current = await self._claim(session, sweep.id, *stages)
            if current is None:
                return "gone"
            self._clear_funding(current) if stage == FUNDING else self._clear_transfer(current)
            current.stage = QUEUED
            current.last_error = reason[:500]
            current.next_attempt_at = utcnow()
        log.warning("sweeps.requeued", network=self.code, sweep=str(sweep.uuid), reason=reason)
        return "requeued"

    async def _refused(self, sweep: Sweep, stage: str, reason: str) -> str:
        """The node refused a transaction on its first broadcast: it was never sent. A
        top-up's nonce goes back to the lane, for the next signature."""
        async with self.context.db.transaction() as session:
            current = await self._claim(session, sweep.id, stage)
            if current is None:
                return "gone"
            if stage == FUNDING:
                if current.funding_nonce is not None:
                    await session.execute(
                        update(PayoutLane)
                        .where(
                            PayoutLane.network == self.code,
                            PayoutLane.next_nonce == current.funding_nonce + 1,
                        )
                        .values(next_nonce=current.funding_nonce)
                    )
                self._clear_funding(current)
            else:
                self._clear_transfer(current)
            self._retry_or_fail(current, reason)
        log.error("sweeps.refused", network=self.code, sweep=str(sweep.uuid), error=reason)
        return "failed" if current.stage == FAILED else "requeued"

    def _retry_or_fail(self, sweep: Sweep, reason: str) -> None:
        """Queued again after a wait, or failed once it has signed enough."""
        sweep.last_error = reason[:500]
        if sweep.attempts >= MAX_ATTEMPTS:
            sweep.stage = FAILED
            sweep.finished_at = utcnow()
        else:
            sweep.stage = QUEUED
            sweep.next_attempt_at = utcnow() + RETRY

    @staticmethod
    def _clear_funding(sweep: Sweep) -> None:
        sweep.funding_txid = sweep.funding_tx = None
        sweep.funding_nonce = None
        sweep.funding_amount = None

    @staticmethod
    def _clear_transfer(sweep: Sweep) -> None:
        sweep.txid = sweep.signed_tx = None
        sweep.nonce = sweep.block_height = None
        sweep.amount = sweep.signed_fee = None

    async def _postpone(self, sweep: Sweep, reason: str, wait: timedelta) -> str:
        async with self.context.db.transaction() as session:
            current = await self._claim(session, sweep.id, QUEUED)
            if current is None:
                return "gone"
            current.last_error = reason[:500]
            current.next_attempt_at = utcnow() + wait
        log.warning("sweeps.postponed", network=self.code, sweep=str(sweep.uuid), reason=reason)
        return "postponed"

    async def _end(self, sweep: Sweep, stage: str, reason: str) -> str:
        """A queued sweep over without a transfer: skipped or failed."""
        async with self.context.db.transaction() as session:
            current = await self._claim(session, sweep.id, QUEUED)
            if current is None:
                return "gone"
            current.stage = stage
            current.last_error = reason[:500]
            current.finished_at = utcnow()
        event = "sweeps.skipped" if stage == SKIPPED else "sweeps.failed"
        log.info(event, network=self.code, sweep=str(sweep.uuid), reason=reason)
        return stage

    async def _note(self, sweep: Sweep, error: str) -> None:
        async with self.context.db.transaction() as session:
            current = await self._claim(session, sweep.id, *IN_FLIGHT)
            if current is not None:
                current.last_error = error[:500]
        log.error("sweeps.rebroadcast_refused", network=self.code, sweep=str(sweep.uuid),
                  error=error)  # fmt: skip

    # ------------------------------------------------------------------ lease
    async def _claim(self, session: AsyncSession, sweep_id: int, *stages: str) -> Sweep | None:
        """The sweep, row-locked, if it is still at one of `stages` and the lease is
        still ours (renewed in the same transaction)."""
        sweep = await session.scalar(select(Sweep).where(Sweep.id == sweep_id).with_for_update())
        if sweep is None or sweep.stage not in stages or not await self._renew(session):
            return None
        return sweep


async def sweeps_loop(context: Context, stop: asyncio.Event) -> None:
    """One sweeper per enabled network with something to sweep (see `SWEPT_FAMILIES`)."""
    networks = [
        network
        for network in context.catalogue.networks
        if network.family in SWEPT_FAMILIES and swept_currencies(context.catalogue, network.code)
    ]
    if not networks:
        return
    codes = {network.code for network in networks}
    wallets = []
    for network, sender in await hot_wallets(context):
        if network.code in codes:
            wallets.append((network, sender))
        else:
            await sender.close()
    try:
        await asyncio.gather(
            *(
                run_lane_worker(
                    SweepWorker(context, network, sender),
                    stop,
                    POLL_SECONDS,
                    events="sweeps",
                    max_backoff=300.0,
                )
                for network, sender in wallets
            )
        )
    finally:
        for _, sender in wallets:
            await sender.close()
