"""A network's hot wallet lane inside one process: the lease owner and the lock that the
payout worker and the sweeper of that network share.

Across processes, the `PayoutLane` lease lets one worker sign with a hot wallet at a time:
on EVM networks every signature takes the wallet's next nonce, and two signers would hand
out the same one. Within a process two loops use the hot wallet: payouts, and the sweeper
topping deposit addresses up with gas. They hold the lease under one owner (so neither
locks the other out for good) and take turns with one lock, so their signatures never
interleave and `PayoutLane.next_nonce` counts both.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Protocol

import structlog
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from paydesk.background import sleep_or_stop
from paydesk.chains.adapter import ChainUnavailable
from paydesk.chains.watcher import worker_identity
from paydesk.db import utcnow
from paydesk.leases import release_lease, take_lease
from paydesk.payouts.models import PayoutLane

if TYPE_CHECKING:
    from paydesk.context import Context


@dataclass
class HotWalletLane:
    #: Who holds the network's `PayoutLane` lease for this process.
    owner: str = field(default_factory=worker_identity)
    #: Held while signing (and storing what was signed) with the hot wallet.
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


#: Per event loop (a lock belongs to one loop), per network.
_LANES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, HotWalletLane]] = (
    weakref.WeakKeyDictionary()
)


def hot_wallet_lane(network: str) -> HotWalletLane:
    """The running loop's lane of `network`, made on first use."""
    lanes = _LANES.setdefault(asyncio.get_running_loop(), {})
    lane = lanes.get(network)
    if lane is None:
        lane = lanes[network] = HotWalletLane()
    return lane


class LaneLease:
    """What a worker signing with a network's hot wallet does with the lane's lease: take
    it, renew it in the transaction that records what it signed (so a worker that lost the
    lease records nothing), and release it."""

    context: Context
    code: str
    owner: str
    lease: timedelta

    async def _take_lease(self) -> bool:
        async with self.context.db.transaction() as session:
            return await take_lease(
                session, PayoutLane, {"network": self.code}, self.owner, self.lease
            )

    async def _renew(self, session: AsyncSession) -> bool:
        """Extend the lease in the caller's transaction; False (write nothing) if another
        worker took the network meanwhile."""
        now = utcnow()
        renewed = await session.execute(
            update(PayoutLane)
            .where(PayoutLane.network == self.code, PayoutLane.lease_owner == self.owner)
            .values(lease_expires_at=now + self.lease, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        return renewed.rowcount == 1

    async def release(self) -> None:
        async with self.context.db.transaction() as session:
            await release_lease(session, PayoutLane, {"network": self.code}, self.owner)


class _Step(Protocol):
    @property
    def busy(self) -> bool: ...


class LaneWorker(Protocol):
    """A payout worker or a sweeper: one step at a time, holding the lane."""

    code: str

    async def step(self) -> _Step: ...

    async def release(self) -> None: ...


async def run_lane_worker(
    worker: LaneWorker, stop: asyncio.Event, poll_seconds: float, *, events: str,
    max_backoff: float,
) -> None:  # fmt: skip
    """Step until stopped: at once while there is work, every `poll_seconds` otherwise,
    backing off (up to `max_backoff`) while the node fails; the lease is released at the
    end so another process can take over at once."""
    log = structlog.get_logger(events)
    backoff = poll_seconds
    while not stop.is_set():
        started = time.monotonic()
        try:
            result = await worker.step()
            backoff = poll_seconds
            if result.busy:
                continue
        except ChainUnavailable as exc:
            log.warning(f"{events}.node_unavailable", network=worker.code, error=str(exc))
            backoff = min(backoff * 2, max_backoff)
        except Exception:
            log.exception(f"{events}.step_failed", network=worker.code)
            backoff = min(backoff * 2, max_backoff)
        await sleep_or_stop(stop, max(backoff - (time.monotonic() - started), 0.0))
    await worker.release()
