"""Address allocation: one interface every network plugs into.

A network supplies an `AddressDeriver` (index → address). Addresses are derived ahead into
a pool (kept stocked by the worker); allocating claims the lowest free one with
`FOR UPDATE SKIP LOCKED`, so concurrent invoices never wait on each other, and a rolled-back
claim returns its address to the pool. Only refilling takes the per-network counter's row
lock; a request refills itself only when it finds the pool empty.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Protocol

from cachetools import TTLCache
from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from paydesk.catalogue.service import Catalogue
from paydesk.chains.devnet import DEVNET_SEED, DevnetAddresses
from paydesk.chains.keys import BadXpub, KeyRing, NoKeyPath, XpubDeriver, watch_only_account
from paydesk.chains.models import MASTER_KEY_OWNER, AddressCounter, DepositAddress, MerchantXpub
from paydesk.db import dialect_insert, utcnow
from paydesk.vault import Vault

_UNCACHED = object()

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
    """Deposit addresses of the enabled networks: from the pool of master-key addresses,
    or, for a merchant that registered its own xpub on a network, derived from it."""

    def __init__(
        self,
        networks: list[str],
        keys: KeyRing,
        vault: Vault,
        watch_only_cache_seconds: float = 30.0,
    ) -> None:
        self._networks = list(networks)
        self._keys = keys
        self._vault = vault
        self._fixed: dict[str, AddressDeriver] = {}
        if "devnet" in networks:
            self._fixed["devnet"] = DevnetAddresses(DEVNET_SEED)
        # (merchant, network) → the merchant's own deriver, or None when it has none.
        self._watch_only: TTLCache[tuple[uuid.UUID, str], XpubDeriver | None] = TTLCache(
            maxsize=100_000, ttl=max(watch_only_cache_seconds, 0.001)
        )

    @property
    def networks(self) -> list[str]:
        return list(self._networks)

    @property
    def keys(self) -> KeyRing:
        return self._keys

    def serves(self, network: str) -> bool:
        return network in self._networks

    async def allocate(
        self,
        session: AsyncSession,
        network: str,
        purpose: str,
        merchant_id: uuid.UUID | None = None,
    ) -> str:
        """Assign a never-used address of `network`, in the caller's transaction."""
        if network not in self._networks:
            raise NoAllocator(network)
        if merchant_id is not None:
            own = await self.merchant_deriver(session, merchant_id, network)
            if own is not None:
                return await self._derive_assigned(session, network, merchant_id, own, purpose)
        address = await _claim(session, network, purpose)
        if address is None:
            # Rows this transaction derives are visible (and claimable) only to it.
            await self._refill(session, network)
            address = await _claim(session, network, purpose)
        if address is None:  # pragma: no cover - our own fresh rows cannot be locked
            raise RuntimeError(f"address pool of {network} is empty after a refill")
        return address

    async def merchant_deriver(
        self, session: AsyncSession, merchant_id: uuid.UUID, network: str
    ) -> XpubDeriver | None:
        """The merchant's own (watch-only) deriver on `network`, if it registered an xpub
        (cached for a few seconds: registering one reaches every process by then)."""
        key = (merchant_id, network)
        # One lookup: between a membership test and a read the entry may expire.
        cached = self._watch_only.get(key, _UNCACHED)
        if cached is not _UNCACHED:
            return cached  # type: ignore[return-value]
        encrypted = await session.scalar(
            select(MerchantXpub.xpub_encrypted).where(
                MerchantXpub.merchant_id == merchant_id, MerchantXpub.network == network
            )
        )
        deriver = None
        if encrypted is not None:
            deriver = XpubDeriver(
                watch_only_account(
                    self._keys.key_path(network), network, self._vault.decrypt(encrypted)
                ),
                self._keys.encoders.get(network),
            )
        self._watch_only[key] = deriver
        return deriver

    async def register_xpub(
        self, session: AsyncSession, merchant_id: uuid.UUID, network: str, xpub: str | None
    ) -> str | None:
        """Give a merchant its own wallet on `network` (watch-only: later invoices there get
        addresses derived from its xpub), or with None go back to Paydesk's addresses.
        Returns the first address the xpub yields, for the merchant to compare with its
        wallet. Addresses already handed out stay as they are."""
        if network not in self._networks or network not in self._keys.paths:
            raise BadXpub(f"network {network} takes no xpub (enabled HD networks only)")
        await session.execute(
            delete(MerchantXpub).where(
                MerchantXpub.merchant_id == merchant_id, MerchantXpub.network == network
            )
        )
        self._watch_only.pop((merchant_id, network), None)
        if xpub is None:
            return None
        account = watch_only_account(self._keys.key_path(network), network, xpub)
        canonical = account.PublicKey().ToExtended()
        await self._keys.load(session)
        if canonical == self._keys.xpub(network):
            raise BadXpub("that is Paydesk's own xpub, not the merchant's wallet")
        others = await session.scalars(
            select(MerchantXpub.xpub_encrypted).where(MerchantXpub.network == network)
        )
        if any(self._vault.decrypt(other) == canonical for other in others):
            raise BadXpub("another merchant already uses this xpub")
        session.add(
            MerchantXpub(
                merchant_id=merchant_id,
                network=network,
                xpub_encrypted=self._vault.encrypt(canonical),
                created_at=utcnow(),
            )
        )
        await session.flush()
        return XpubDeriver(account, self._keys.encoders.get(network)).derive(0)

    async def release(self, session: AsyncSession, network: str, address: str) -> None:
        """Return an address claimed in this transaction to the pool, unused."""
        connection = await session.connection()
        await connection.execute(RELEASE_ADDRESS, release_values(network, address))

    async def free_count(self, session: AsyncSession, network: str) -> int:
        count = await session.scalar(
            select(func.count())
            .select_from(DepositAddress)
            .where(
                DepositAddress.network == network,
                DepositAddress.key_owner == MASTER_KEY_OWNER,
                DepositAddress.assigned_at.is_(None),
            )
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

    async def master_deriver(self, session: AsyncSession, network: str) -> AddressDeriver:
        fixed = self._fixed.get(network)
        if fixed is not None:
            return fixed
        await self._keys.load(session)
        return self._keys.deriver(network)

    async def _refill(self, session: AsyncSession, network: str) -> int:
        """Derive the next batch of master-key indices into the pool."""
        deriver = await self.master_deriver(session, network)
        start = await _reserve_indices(session, network, MASTER_KEY_OWNER, REFILL_BATCH)
        now = utcnow()
        await session.execute(
            insert(DepositAddress),
            [
                {
                    "network": network,
                    "address": deriver.derive(index),
                    "derivation_index": index,
                    "key_owner": MASTER_KEY_OWNER,
                    "created_at": now,
                }
                for index in range(start, start + REFILL_BATCH)
            ],
        )
        return REFILL_BATCH

    async def _derive_assigned(
        self,
        session: AsyncSession,
        network: str,
        merchant_id: uuid.UUID,
        deriver: AddressDeriver,
        purpose: str,
    ) -> str:
        """The merchant's next own address, assigned at once (no pool: few merchants use
        it, and each address is one derivation)."""
        owner = str(merchant_id)
        index = await _reserve_indices(session, network, owner, 1)
        address = deriver.derive(index)
        now = utcnow()
        await session.execute(
            insert(DepositAddress).values(
                network=network,
                address=address,
                derivation_index=index,
                key_owner=owner,
                purpose=purpose,
                assigned_at=now,
                created_at=now,
            )
        )
        return address


async def _reserve_indices(session: AsyncSession, network: str, owner: str, count: int) -> int:
    """The first of `count` fresh derivation indices, under the counter's row lock."""
    locked = (
        dialect_insert(session, AddressCounter)
        .values(network=network, key_owner=owner, next_index=0)
        .on_conflict_do_update(
            index_elements=[AddressCounter.network, AddressCounter.key_owner],
            set_={"next_index": AddressCounter.next_index},
        )
        .returning(AddressCounter.next_index)
    )
    start = int((await session.execute(locked)).scalar_one())
    await session.execute(
        update(AddressCounter)
        .where(AddressCounter.network == network, AddressCounter.key_owner == owner)
        .values(next_index=start + count)
    )
    return start


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
            _addresses.c.key_owner == MASTER_KEY_OWNER,
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


def build_address_book(
    networks: list[str], catalogue: Catalogue, vault: Vault, cache_seconds: float = 30.0
) -> AddressBook:
    """Addresses for the enabled networks; a network Paydesk cannot derive addresses for
    cannot be enabled."""
    enabled = [n for n in (catalogue.network(code) for code in networks) if n is not None]
    try:
        keys = KeyRing.for_networks(vault, enabled)
    except NoKeyPath as exc:
        raise NoAllocator(str(exc)) from None
    missing = [n for n in networks if n != "devnet" and n not in keys.paths]
    if missing:
        raise NoAllocator(
            f"no address source for network(s) {', '.join(missing)}; "
            "enable only networks Paydesk can serve"
        )
    return AddressBook(networks, keys, vault, cache_seconds)
