"""The payout worker: signs, broadcasts and follows payouts, one network at a time.

Sending never happens twice because every step is written down before the next one:

1. the transaction is signed and stored (stage `signed`: txid, raw bytes, nonce) in one
   database transaction, before the node sees it;
2. it is broadcast, then marked `sent`;
3. `sent` and `signed` payouts are looked up on the chain by txid until their block has
   the network's confirmations, then booked as paid.

A worker that dies between 1 and 2, or between 2 and the `sent` mark, finds the payout
`signed` on restart and asks the node about that txid: known, it follows it; unknown, it
broadcasts the very same bytes again (same txid, so at most one of them can be mined).
Only when the chain shows the nonce taken by another transaction — so the stored one can
never be mined — is the payout signed anew. One worker holds a network at a time (a lease
on its lane), so nonces are handed out in order.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta

import structlog
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
from paydesk.chains.registry import WATCHED_FAMILIES, NetworkNotConfigured, build_sender
from paydesk.chains.watcher import worker_identity
from paydesk.context import Context
from paydesk.db import utcnow
from paydesk.payouts.lanes import LaneLease, hot_wallet_lane, run_lane_worker
from paydesk.payouts.models import Payout, PayoutLane
from paydesk.payouts.service import QUEUED, SENT, SIGNED, SYSTEM_FAIL

log = structlog.get_logger(__name__)

#: Wait before trying again a payout the hot wallet cannot pay yet.
SHORT_RETRY = timedelta(seconds=30)


@dataclass(frozen=True, slots=True)
class StepResult:
    signed: int = 0
    paid: int = 0
    failed: int = 0
    leased: bool = True

    @property
    def busy(self) -> bool:
        return bool(self.signed or self.paid or self.failed)


class PayoutWorker(LaneLease):
    def __init__(
        self,
        context: Context,
        network: Network,
        sender: PayoutSender,
        *,
        owner: str | None = None,
        lease_seconds: float | None = None,
    ) -> None:
        self.context = context
        self.network = network
        self.sender = sender
        self.owner = owner or worker_identity()
        self.lease = timedelta(seconds=lease_seconds or context.settings.watcher_lease_seconds)

    @property
    def code(self) -> str:
        return self.network.code

    async def step(self) -> StepResult:
        """Follow what is in flight, then sign and send the next queued payout, holding
        the hot wallet's lock (the network's sweeper signs with it too)."""
        async with hot_wallet_lane(self.code).lock:
            if not await self._take_lease():
                return StepResult(leased=False)
            paid, failed, unsent = await self._follow()
            signed = 0
            if not unsent:
                signed = await self._send_next()
        return StepResult(signed=signed, paid=paid, failed=failed)

    # ------------------------------------------------------------------ in flight
    async def _follow(self) -> tuple[int, int, bool]:
        """Look every signed or sent payout up on the chain. Returns how many were paid,
        how many failed, and whether one is still waiting to reach the node."""
        async with self.context.db.reader() as session:
            in_flight = list(
                await session.scalars(
                    select(Payout)
                    .where(Payout.network == self.code, Payout.stage.in_([SIGNED, SENT]))
                    .order_by(Payout.nonce, Payout.id)
                )
            )
        if not in_flight:
            return 0, 0, False
        tip = await self.sender.tip()
        paid = failed = 0
        unsent = False
        for payout in in_flight:
            assert payout.txid is not None
            state = await self.sender.lookup(payout.txid)
            if state is None:
                outcome = await self._broadcast(payout)
                failed += outcome == "failed"
                unsent = unsent or outcome == "unsent"
                continue
            outcome = await self._progress(payout, state, tip)
            paid += outcome == "paid"
            failed += outcome == "failed"
        return paid, failed, unsent

    async def _progress(self, payout: Payout, state: SentTransfer, tip: int) -> str:
        confirmations = 0 if state.block_height is None else tip - state.block_height + 1
        async with self.context.db.transaction() as session:
            current = await self._locked(session, payout.id, SIGNED, SENT)
            if current is None or not await self._renew(session):
                return "gone"
            if current.stage == SIGNED:
                current.stage = SENT
                current.sent_at = utcnow()
            current.block_height = state.block_height
            if confirmations < self.network.confirmations:
                return "waiting"
            if state.succeeded:
                await self.context.payouts.mark_paid(
                    session, current, self.sender.native, state.fee
                )
                log.info("payouts.paid", network=self.code, payout=str(current.uuid),
                         txid=current.txid)  # fmt: skip
                return "paid"
            await self.context.payouts.mark_failed(
                session, current, "reverted", native=self.sender.native, network_fee=state.fee
            )
            log.warning("payouts.reverted", network=self.code, payout=str(current.uuid),
                        txid=current.txid)  # fmt: skip
            return "failed"

    async def _broadcast(self, payout: Payout, *, first: bool = False) -> str:
        """Hand the stored transaction to the node (again: not `first`). Returns sent,
        unsent (the node could not be reached, or refused a transaction it may have had
        before: try later), requeued or failed."""
        assert payout.txid is not None and payout.signed_tx is not None
        transfer = SignedTransfer(
            txid=payout.txid,
            raw=payout.signed_tx,
            from_address=payout.from_address or self.sender.hot_address,
            nonce=payout.nonce,
        )
        try:
            await self.sender.broadcast(transfer)
        except ChainUnavailable as exc:
            log.warning("payouts.node_unavailable", network=self.code, error=str(exc))
            return "unsent"
        except NonceTaken as exc:
            # Ours can never be mined (its nonce or its inputs went to another transaction,
            # or it expired unmined): nothing was sent, the payout can be signed again.
            return await self._requeue(payout, str(exc) or "the nonce was used by another "
                                       "transaction")  # fmt: skip
        except BroadcastRejected as exc:
            if not first:
                # Sent before (or maybe: a lost answer, a crash after the broadcast), the
                # node may have passed it on and forgotten it since: it may still be
                # mined elsewhere. An operator decides (the error is on the payout).
                await self._note(payout, str(exc))
                return "unsent"
            return await self._fail(payout, str(exc))
        async with self.context.db.transaction() as session:
            current = await self._locked(session, payout.id, SIGNED)
            if current is not None and await self._renew(session):
                current.stage = SENT
                current.sent_at = utcnow()
        log.info("payouts.sent", network=self.code, payout=str(payout.uuid), txid=payout.txid)
        return "sent"

    async def _note(self, payout: Payout, error: str) -> None:
        async with self.context.db.transaction() as session:
            await session.execute(
                update(Payout).where(Payout.id == payout.id).values(last_error=error[:500])
            )
        log.error("payouts.rebroadcast_refused", network=self.code, payout=str(payout.uuid),
                  error=error)  # fmt: skip

    async def _requeue(self, payout: Payout, reason: str) -> str:
        async with self.context.db.transaction() as session:
            current = await self._locked(session, payout.id, SIGNED, SENT)
            if current is None or not await self._renew(session):
                return "gone"
            current.stage = QUEUED
            current.txid = current.signed_tx = current.nonce = None
            current.last_error = reason
            current.next_attempt_at = utcnow()
            # The lane's next nonce stays: payouts signed after this one may still be
            # pending, and the next signature takes max(lane, chain) anyway.
        log.warning("payouts.requeued", network=self.code, payout=str(payout.uuid), reason=reason)
        return "requeued"

    async def _fail(self, payout: Payout, reason: str) -> str:
        async with self.context.db.transaction() as session:
            current = await self._locked(session, payout.id, SIGNED)
            if current is None or not await self._renew(session):
                return "gone"
            current.last_error = reason[:500]
            if current.nonce is not None:
                # The nonce was not used: hand it to the next payout.
                await session.execute(
                    update(PayoutLane)
                    .where(
                        PayoutLane.network == self.code,
                        PayoutLane.next_nonce == current.nonce + 1,
                    )
                    .values(next_nonce=current.nonce)
                )
            await self.context.payouts.mark_failed(
                session, current, "system_error", status=SYSTEM_FAIL
            )
        log.error("payouts.rejected", network=self.code, payout=str(payout.uuid), error=reason)
        return "failed"

    # ------------------------------------------------------------------ new ones
    async def _send_next(self) -> int:
        """Sign the oldest queued payout, store it, then broadcast it."""
        now = utcnow()
        async with self.context.db.reader() as session:
            payout = await session.scalar(
                select(Payout)
                .where(
                    Payout.network == self.code,
                    Payout.stage == QUEUED,
                    or_(Payout.next_attempt_at.is_(None), Payout.next_attempt_at <= now),
                )
                .order_by(Payout.id)
                .limit(1)
            )
            lane = await session.get(PayoutLane, self.code)
            stored_nonce = lane.next_nonce if lane is not None else None
        if payout is None:
            return 0
        chain_nonce = await self.sender.next_nonce()
        nonce = None
        if chain_nonce is not None:
            nonce = max(chain_nonce, stored_nonce or 0)
        try:
            signed = await self.sender.sign_transfer(
                payout.address,
                payout.payer_currency,
                payout.payer_amount,
                nonce=nonce,
                priority=payout.priority,
            )
        except HotWalletShort as exc:
            await self._postpone(payout, str(exc))
            return 0
        except BroadcastRejected as exc:
            await self._fail_queued(payout, str(exc))
            return 0
        async with self.context.db.transaction() as session:
            current = await self._locked(session, payout.id, QUEUED)
            if current is None or not await self._renew(session):
                return 0
            current.stage = SIGNED
            current.txid = signed.txid
            current.signed_tx = signed.raw
            current.from_address = signed.from_address
            current.nonce = signed.nonce
            current.attempts += 1
            current.last_error = None
            current.updated_at = utcnow()
            if signed.nonce is not None:
                await session.execute(
                    update(PayoutLane)
                    .where(PayoutLane.network == self.code)
                    .values(next_nonce=signed.nonce + 1)
                )
        payout.txid, payout.signed_tx = signed.txid, signed.raw
        payout.from_address, payout.nonce = signed.from_address, signed.nonce
        await self._broadcast(payout, first=True)
        return 1

    async def _postpone(self, payout: Payout, reason: str) -> None:
        async with self.context.db.transaction() as session:
            current = await self._locked(session, payout.id, QUEUED)
            if current is not None:
                current.last_error = reason[:500]
                current.next_attempt_at = utcnow() + SHORT_RETRY
        log.warning("payouts.hot_wallet_short", network=self.code, payout=str(payout.uuid),
                    error=reason)  # fmt: skip

    async def _fail_queued(self, payout: Payout, reason: str) -> None:
        async with self.context.db.transaction() as session:
            current = await self._locked(session, payout.id, QUEUED)
            if current is not None:
                current.last_error = reason[:500]
                await self.context.payouts.mark_failed(
                    session, current, "address_error", status=SYSTEM_FAIL
                )
        log.error("payouts.refused", network=self.code, payout=str(payout.uuid), error=reason)

    # ------------------------------------------------------------------ lease
    @staticmethod
    async def _locked(session: AsyncSession, payout_id: int, *stages: str) -> Payout | None:
        """The payout, row-locked, if it is still at one of `stages`."""
        payout = await session.scalar(
            select(Payout).where(Payout.id == payout_id).with_for_update()
        )
        if payout is None or payout.stage not in stages:
            return None
        return payout


async def hot_wallets(context: Context) -> list[tuple[Network, PayoutSender]]:
    """Every enabled network that payouts can be sent on, with its hot wallet (the caller
    closes them). A network whose payouts Paydesk cannot sign yet is left out, said once."""
    async with context.db.transaction() as session:
        await context.addresses.keys.load(session)
    wallets = []
    for network in context.catalogue.networks:
        if network.family not in WATCHED_FAMILIES:
            continue
        try:
            sender = build_sender(network, context.catalogue, context.settings, context.db,
                                  context.addresses.keys)  # fmt: skip
        except NetworkNotConfigured as exc:
            log.warning("payouts.network_without_sender", network=network.code, reason=str(exc))
            continue
        wallets.append((network, sender))
    return wallets


async def payouts_loop(context: Context, stop: asyncio.Event) -> None:
    """One payout worker per network payouts can be sent on."""
    wallets = await hot_wallets(context)
    try:
        await asyncio.gather(
            *(
                run_lane_worker(
                    PayoutWorker(
                        context, network, sender, owner=hot_wallet_lane(network.code).owner
                    ),
                    stop,
                    context.settings.payout_poll_seconds,
                    events="payouts",
                    max_backoff=60.0,
                )
                for network, sender in wallets
            )
        )
    finally:
        for _, sender in wallets:
            await sender.close()
