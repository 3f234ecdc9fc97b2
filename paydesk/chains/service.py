"""Address allocation: one interface every network plugs into.

A network supplies an `AddressDeriver` (index → address); allocation takes the next index
from the network's counter and records the address, all in the caller's transaction.
"""

from __future__ import annotations

from typing import Protocol

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from paydesk.chains.devnet import DEVNET_SEED, DevnetAddresses
from paydesk.chains.models import AddressCounter, DepositAddress
from paydesk.db import dialect_insert


class AddressDeriver(Protocol):
    def derive(self, index: int) -> str: ...


class NoAllocator(LookupError):
    """The network is enabled but nothing can give out addresses on it."""


class AddressBook:
    """The address derivers of the enabled networks."""

    def __init__(self, derivers: dict[str, AddressDeriver]) -> None:
        self._derivers = derivers

    def supports(self, network: str) -> bool:
        return network in self._derivers

    async def allocate(self, session: AsyncSession, network: str, purpose: str) -> str:
        deriver = self._derivers.get(network)
        if deriver is None:
            raise NoAllocator(network)
        index = await _next_index(session, network)
        address = deriver.derive(index)
        await session.execute(
            insert(DepositAddress).values(
                network=network, address=address, derivation_index=index, purpose=purpose
            )
        )
        return address


async def _next_index(session: AsyncSession, network: str) -> int:
    stmt = dialect_insert(session, AddressCounter).values(network=network, next_index=1)
    stmt = stmt.on_conflict_do_update(
        index_elements=[AddressCounter.network],
        set_={"next_index": AddressCounter.next_index + 1},
    ).returning(AddressCounter.next_index)
    return int((await session.execute(stmt)).scalar_one()) - 1


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
