"""Address allocation: one interface every network plugs into.

A network supplies an `AddressDeriver` (index → address). Addresses are derived ahead into
a pool (kept stocked by the worker); allocating claims the lowest free one with
`FOR UPDATE SKIP LOCKED`, so concurrent invoices never wait on each other, and a rolled-back
claim returns its address to the pool. Only refilling takes the per-network counter's row
lock; a request refills itself only when it finds the pool empty.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from paydesk.chains.devnet import DEVNET_SEED, DevnetAddresses
from paydesk.chains.models import AddressCounter, DepositAddress
from paydesk.db import dialect_insert, utcnow

#: Addresses derived per refill.
REFILL_BATCH = 100


class AddressDeriver(Protocol):
    def derive(self, index: int) -> str: ...


@dataclass(frozen=True, slots=True)
class PoolLevel:
    """Free addresses found by a top-up, and how many it added."""

    free: int
    added: int


class NoAllocator(LookupError):
    """The network is enabled but nothing can give out addresses on it."""


class AddressBook:
    """The address derivers of the enabled networks."""

    def __init__(self, derivers: dict[str, AddressDeriver]) -> None:
        self._derivers = derivers

    @property
    def networks(self) -> list[str]:
        return list(self._derivers)

    def serves(self, network: str) -> bool:
        return network in self._derivers

    async def allocate(self, session: AsyncSession, network: str, purpose: str) -> str:
        """Assign a never-used address of `network`, in the caller's transaction."""
        if network not in self._derivers:
            raise NoAllocator(network)
        address = await _claim(session, network, purpose)
        if address is None:
            # Rows this transaction derives are visible (and claimable) only to it.
            await self._refill(session, network)
            address = await _claim(session, network, purpose)
        if address is None:  # pragma: no cover - our own fresh rows cannot be locked
            raise RuntimeError(f"address pool of {network} is empty after a refill")
        return address

    async def release(self, session: AsyncSession, network: str, address: str) -> None:
        """Return an address claimed in this transaction to the pool, unused."""
        connection = await session.connection()
        await connection.execute(RELEASE_ADDRESS, release_values(network, address))

    async def free_count(self, session: AsyncSession, network: str) -> int:
        count = await session.scalar(
            select(func.count())
            .select_from(DepositAddress)
            .where(DepositAddress.network == network, DepositAddress.assigned_at.is_(None))
        )
        return int(count or 0)

    async def top_up(
        self,
        session: AsyncSession,
        network: str,
        low_water: int,
        target: int,
        max_batches: int | None = None,
    ) -> PoolLevel:
        """When fewer than `low_water` addresses are free, add batches up to `target`
        (at most `max_batches` in this transaction, so a long refill does not hold the
        counter's lock — and on SQLite the database's write lock — all the way)."""
        free = await self.free_count(session, network)
        added = 0
        batches = 0
        if free < low_water:
            while free + added < target and (max_batches is None or batches < max_batches):
                added += await self._refill(session, network)
                batches += 1
        return PoolLevel(free=free, added=added)

    async def _refill(self, session: AsyncSession, network: str) -> int:
        """Derive the next batch of indices, under the counter's row lock."""
        locked = (
            dialect_insert(session, AddressCounter)
            .values(network=network, next_index=0)
            .on_conflict_do_update(
                index_elements=[AddressCounter.network],
                set_={"next_index": AddressCounter.next_index},
            )
            .returning(AddressCounter.next_index)
        )
        start = int((await session.execute(locked)).scalar_one())
        deriver = self._derivers[network]
        now = utcnow()
        await session.execute(
            insert(DepositAddress),
            [
                {
                    "network": network,
                    "address": deriver.derive(index),
                    "derivation_index": index,
                    "created_at": now,
                }
                for index in range(start, start + REFILL_BATCH)
            ],
        )
        await session.execute(
            update(AddressCounter)
            .where(AddressCounter.network == network)
            .values(next_index=start + REFILL_BATCH)
        )
        return REFILL_BATCH


_addresses = DepositAddress.__table__
#: Built once: the hot path only binds parameters (Core, not the ORM's bulk-update path).
#: Claims the lowest free address of a network; returns it, or no row when none is free.
CLAIM_ADDRESS = (
    update(_addresses)
    .where(
        _addresses.c.id
        == select(_addresses.c.id)
        .where(
            _addresses.c.network == bindparam("claim_network"),
            _addresses.c.assigned_at.is_(None),
        )
        .order_by(_addresses.c.derivation_index)
        .limit(1)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    .values(purpose=bindparam("claim_purpose"), assigned_at=bindparam("claim_at"))
    .returning(_addresses.c.address)
)
RELEASE_ADDRESS = (
    update(_addresses)
    .where(
        _addresses.c.network == bindparam("release_network"),
        _addresses.c.address == bindparam("release_address"),
    )
    .values(purpose=None, assigned_at=None)
)


def claim_values(network: str, purpose: str) -> dict[str, Any]:
    """Parameters of `CLAIM_ADDRESS`, which other statements may embed (as a CTE)."""
    return {"claim_network": network, "claim_purpose": purpose, "claim_at": utcnow()}


def release_values(network: str, address: str) -> dict[str, Any]:
    return {"release_network": network, "release_address": address}


async def _claim(session: AsyncSession, network: str, purpose: str) -> str | None:
    connection = await session.connection()
    claimed = await connection.execute(CLAIM_ADDRESS, claim_values(network, purpose))
    return claimed.scalar()


def build_address_book(networks: list[str]) -> AddressBook:
    """Derivers for the enabled networks; a network without one cannot be enabled."""
    derivers: dict[str, AddressDeriver] = {}
    for network in networks:
        if network == "devnet":
            derivers[network] = DevnetAddresses(DEVNET_SEED)
    missing = [n for n in networks if n not in derivers]
    if missing:
        raise NoAllocator(
            f"no address source for network(s) {', '.join(missing)}; "
            "enable only networks Paydesk can serve"
        )
    return AddressBook(derivers)
