"""A network's watcher: follows the chain block by block and turns transfers into deposits.

Every step runs in one database transaction with the cursor it advances: the blocks'
hashes, the deposits they show and the cursor commit together or not at all, so a watcher
killed at any point resumes at the last committed block and sees nothing twice (and the
deposits' unique key would refuse it anyway). Before reading on, it checks that the chain
still contains its cursor's block; when it does not, it walks back to the last block both
agree on and withdraws everything the orphaned blocks brought, then reads the new branch.
One worker at a time holds a network, through a lease on the cursor row.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from itertools import pairwise

import structlog
from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from paydesk.background import sleep_or_stop
from paydesk.catalogue.models import Network
from paydesk.chains.adapter import (
    Block,
    BlockHeader,
    ChainAdapter,
    ChainMismatch,
    ChainUnavailable,
    Transfer,
)
from paydesk.chains.models import ChainBlock, ChainCursor, DepositAddress
from paydesk.context import Context
from paydesk.db import utcnow
from paydesk.deposits.models import Deposit
from paydesk.deposits.service import CREDITED, SEEN, ObservedTransfer
from paydesk.leases import release_lease, take_lease
from paydesk.sweeps.service import top_up_txids

log = structlog.get_logger(__name__)

#: Processed blocks remembered per network, to find the fork point of a reorganisation.
#: Deeper reorganisations than this are not followed automatically (the watcher stops and
#: says so): no public chain reorganises that deep.
KEEP_BLOCKS = 1000
#: Addresses per lookup query (below SQLite's bound-parameter limit).
MATCH_CHUNK = 900
NOT_STARTED = -1


def worker_identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class DeepReorganisation(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class StepResult:
    blocks: int = 0
    deposits_seen: int = 0
    deposits_credited: int = 0
    rolled_back: int = 0
    leased: bool = True


class Watcher:
    def __init__(
        self,
        context: Context,
        network: Network,
        adapter: ChainAdapter,
        *,
        owner: str | None = None,
        batch_blocks: int | None = None,
        lease_seconds: float | None = None,
    ) -> None:
        self.context = context
        self.network = network
        self.adapter = adapter
        self.owner = owner or worker_identity()
        settings = context.settings
        self.batch_blocks = batch_blocks or settings.watcher_batch_blocks
        self.lease = timedelta(seconds=lease_seconds or settings.watcher_lease_seconds)

    @property
    def code(self) -> str:
        return self.network.code

    # ------------------------------------------------------------------ the step
    async def step(self) -> StepResult:
        """Read what is new (at most one batch of blocks), or roll back a reorganisation."""
        if not await self._take_lease():
            return StepResult(leased=False)
        cursor = await self._cursor()
        tip = await self.adapter.tip()
        if cursor.height == NOT_STARTED and cursor.hash == "":
            cursor = await self._start(tip)
            if cursor is None:
                return StepResult()
        if cursor.hash and cursor.height >= 0:
            if tip < cursor.height:
                return await self._roll_back(cursor)
            if tip == cursor.height:
                current = await self.adapter.headers(cursor.height, cursor.height)
                if not current or current[0].hash != cursor.hash:
                    return await self._roll_back(cursor)
                return await self._follow_mempool(cursor.height)
        if tip <= cursor.height:
            return await self._follow_mempool(cursor.height)

        end = min(tip, cursor.height + self.batch_blocks)
        blocks = await self.adapter.blocks(cursor.height + 1, end)
        if not blocks:
            return StepResult()
        if cursor.hash and blocks[0].header.parent_hash != cursor.hash:
            return await self._roll_back(cursor)
        for previous, block in pairwise(blocks):
            if block.header.parent_hash != previous.header.hash:
                raise ChainUnavailable(f"{self.code}: the chain moved while it was read")
        return await self._apply(blocks)

    async def _apply(self, blocks: list[Block]) -> StepResult:
        last = blocks[-1].header
        seen = credited = 0
        async with self.context.db.transaction() as session:
            if not await self._advance(session, last):
                return StepResult(leased=False)
            await session.execute(
                insert(ChainBlock),
                [
                    {
                        "network": self.code,
                        "height": block.header.height,
                        "hash": block.header.hash,
                        "parent_hash": block.header.parent_hash,
                    }
                    for block in blocks
                ],
            )
            await session.execute(
                delete(ChainBlock).where(
                    ChainBlock.network == self.code, ChainBlock.height <= last.height - KEEP_BLOCKS
                )
            )
            deepest = last.height - self.network.confirmations + 1
            # One lookup for the whole batch, then the matches in chain order.
            watched = {
                (t.txid, t.output_index)
                for t in await self._watched(
                    session, (t for block in blocks for t in block.transfers)
                )
            }
            for block in blocks:
                for transfer in block.transfers:
                    if (transfer.txid, transfer.output_index) not in watched:
                        continue
                    await self.context.deposits.observe(
                        session,
                        self._observed(transfer, block.header),
                        confirmed=block.header.height <= deepest,
                    )
                    seen += 1
            credited = await self._confirm(session, last.height)
        if seen or credited:
            log.info(
                "watcher.blocks", network=self.code, to=last.height, seen=seen, credited=credited
            )
        return StepResult(blocks=len(blocks), deposits_seen=seen, deposits_credited=credited)

    async def _follow_mempool(self, cursor_height: int) -> StepResult:
        """At the tip: show transfers still in the mempool, forget vanished ones."""
        if not getattr(self.adapter, "has_mempool", False):
            return StepResult()
        pending = await self.adapter.pending()
        # A transfer missing from the mempool may just have been mined: only when no new
        # block arrived meanwhile does "missing" mean gone.
        settled = await self.adapter.tip() == cursor_height
        seen = 0
        async with self.context.db.transaction() as session:
            if not await self._advance(session, None):
                return StepResult(leased=False)
            watched = await self._watched(session, pending)
            keys = {(t.txid, t.output_index) for t in watched}
            for transfer in watched:
                existing = await session.scalar(
                    select(Deposit.status).where(
                        Deposit.network == self.code,
                        Deposit.txid == transfer.txid,
                        Deposit.output_index == transfer.output_index,
                    )
                )
                if existing == SEEN:
                    continue
                await self.context.deposits.observe(session, self._observed(transfer, None))
                seen += 1
            vanished = await session.scalars(
                select(Deposit)
                .where(
                    Deposit.network == self.code,
                    Deposit.status == SEEN,
                    Deposit.block_height.is_(None),
                )
                .with_for_update()
            )
            for deposit in vanished.all() if settled else ():
                if (deposit.txid, deposit.output_index) not in keys:
                    await self.context.deposits.withdraw(session, deposit)
        return StepResult(deposits_seen=seen)

    async def _confirm(self, session: AsyncSession, height: int) -> int:
        """Credit every seen deposit whose block is deep enough below `height`."""
        deepest = height - self.network.confirmations + 1
        due = await session.scalars(
            select(Deposit)
            .where(
                Deposit.network == self.code,
                Deposit.status == SEEN,
                Deposit.block_height.is_not(None),
                Deposit.block_height <= deepest,
            )
            .order_by(Deposit.block_height, Deposit.id)
            .with_for_update()
        )
        credited = 0
        for deposit in due.all():
            credited += await self.context.deposits.confirm(session, deposit)
        return credited

    # ------------------------------------------------------------------ reorganisations
    async def _roll_back(self, cursor: ChainCursor) -> StepResult:
        """Walk back to the newest block the node and our records agree on, and undo
        everything above it."""
        async with self.context.db.reader() as session:
            remembered = {
                row.height: row.hash
                for row in await session.scalars(
                    select(ChainBlock)
                    .where(ChainBlock.network == self.code)
                    .order_by(ChainBlock.height.desc())
                    .limit(KEEP_BLOCKS)
                )
            }
        fork = None
        top = cursor.height
        while top >= 0 and fork is None:
            low = max(top - 63, min(remembered, default=0))
            headers = await self.adapter.headers(low, top)
            for header in sorted(headers, key=lambda h: h.height, reverse=True):
                if remembered.get(header.height) == header.hash:
                    fork = header
                    break
            if low <= min(remembered, default=0):
                break
            top = low - 1
        if fork is None:
            raise DeepReorganisation(
                f"{self.code}: no block of the last {len(remembered)} processed is on the "
                "node's chain any more; check the node, then reset the watcher"
            )
        undone = 0
        async with self.context.db.transaction() as session:
            if not await self._advance(session, fork):
                return StepResult(leased=False)
            orphaned = await session.scalars(
                select(Deposit)
                .where(
                    Deposit.network == self.code,
                    Deposit.block_height > fork.height,
                    Deposit.status.in_([SEEN, CREDITED]),
                )
                .order_by(Deposit.id.desc())
                .with_for_update()
            )
            for deposit in orphaned.all():
                undone += await self.context.deposits.withdraw(session, deposit)
            await session.execute(
                delete(ChainBlock).where(
                    ChainBlock.network == self.code, ChainBlock.height > fork.height
                )
            )
        log.warning(
            "watcher.reorganisation",
            network=self.code,
            fork=fork.height,
            orphaned_blocks=cursor.height - fork.height,
            deposits_undone=undone,
        )
        return StepResult(rolled_back=cursor.height - fork.height)

    # ------------------------------------------------------------------ cursor and lease
    async def _start(self, tip: int) -> ChainCursor | None:
        """Where a network's first watcher starts: the devnet from its genesis, a public
        chain a few blocks below its tip (its history holds no invoice of ours)."""
        if self.network.family == "devnet":
            return await self._cursor()
        if tip < 0:
            return None
        start = max(tip - self.network.confirmations, 0)
        headers = await self.adapter.headers(start, start)
        if not headers:
            return None
        async with self.context.db.transaction() as session:
            if not await self._advance(session, headers[0]):
                return None
            await session.execute(
                insert(ChainBlock).values(
                    network=self.code,
                    height=headers[0].height,
                    hash=headers[0].hash,
                    parent_hash=headers[0].parent_hash,
                )
            )
        return await self._cursor()

    async def _cursor(self) -> ChainCursor:
        async with self.context.db.reader() as session:
            cursor = await session.get(ChainCursor, self.code)
        assert cursor is not None, "the lease creates the cursor row"
        return cursor

    async def _take_lease(self) -> bool:
        async with self.context.db.transaction() as session:
            return await take_lease(
                session, ChainCursor, {"network": self.code}, self.owner, self.lease,
                seed={"height": NOT_STARTED, "hash": ""},
            )  # fmt: skip

    async def _advance(self, session: AsyncSession, header: BlockHeader | None) -> bool:
        """Move the cursor (or only renew the lease, without a header) — in the step's own
        transaction, and only while this watcher holds the lease."""
        now = utcnow()
        values: dict[str, object] = {"lease_expires_at": now + self.lease, "updated_at": now}
        if header is not None:
            values.update(height=header.height, hash=header.hash)
        moved = await session.execute(
            update(ChainCursor)
            .where(ChainCursor.network == self.code, ChainCursor.lease_owner == self.owner)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        return moved.rowcount == 1

    async def release(self) -> None:
        async with self.context.db.transaction() as session:
            await release_lease(session, ChainCursor, {"network": self.code}, self.owner)

    # ------------------------------------------------------------------ matching
    async def _watched(
        self, session: AsyncSession, transfers: Iterable[Transfer]
    ) -> list[Transfer]:
        """The transfers whose destination is an address Paydesk handed out."""
        transfers = list(transfers)
        if not transfers:
            return []
        candidates = sorted({t.to_address for t in transfers})
        watched: set[str] = set()
        for offset in range(0, len(candidates), MATCH_CHUNK):
            chunk = candidates[offset : offset + MATCH_CHUNK]
            watched.update(
                await session.scalars(
                    select(DepositAddress.address).where(
                        DepositAddress.network == self.code,
                        DepositAddress.address.in_(chunk),
                        DepositAddress.assigned_at.is_not(None),
                    )
                )
            )
        matched = [t for t in transfers if t.to_address in watched]
        # A sweep's top-up of a deposit address is the platform's own gas, not a payment.
        top_ups = await top_up_txids(session, self.code, {t.txid for t in matched})
        return [t for t in matched if t.txid not in top_ups]

    def _observed(self, transfer: Transfer, header: BlockHeader | None) -> ObservedTransfer:
        return ObservedTransfer(
            network=self.code,
            txid=transfer.txid,
            output_index=transfer.output_index,
            address=transfer.to_address,
            currency=transfer.currency,
            amount=transfer.amount,
            from_address=transfer.from_address,
            block_height=header.height if header else None,
            block_hash=header.hash if header else None,
        )


async def run_watcher(
    watcher: Watcher,
    stop: asyncio.Event,
    poll_seconds: float,
    before_step: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Step until stopped: straight on while behind, every `poll_seconds` at the tip,
    backing off while the node is unreachable."""
    backoff = poll_seconds
    leased = True
    checked = False
    while not stop.is_set():
        started = time.monotonic()
        try:
            if not checked:
                await watcher.adapter.check_node()
                checked = True
            if leased and before_step is not None:
                await before_step()
            result = await watcher.step()
            leased = result.leased
            backoff = poll_seconds
            if result.blocks or result.rolled_back:
                continue
        except ChainMismatch as exc:
            log.error("watcher.wrong_chain", network=watcher.code, error=str(exc))
            break
        except ChainUnavailable as exc:
            log.warning("watcher.node_unavailable", network=watcher.code, error=str(exc))
            backoff = min(backoff * 2, 60.0)
        except Exception:
            log.exception("watcher.step_failed", network=watcher.code)
            backoff = min(backoff * 2, 60.0)
        await sleep_or_stop(stop, max(backoff - (time.monotonic() - started), 0.0))
    await watcher.release()
