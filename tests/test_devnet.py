from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select

from paydesk.catalogue.service import load_catalogue
from paydesk.chains.devnet import DEVNET_SEED, DevnetAddresses
from paydesk.chains.models import DepositAddress
from paydesk.chains.registry import NetworkNotConfigured
from paydesk.chains.service import REFILL_BATCH, NoAllocator, build_address_book
from paydesk.config import Settings
from paydesk.context import build_context
from paydesk.vault import Vault, generate_master_key


def test_devnet_addresses_are_valid_distinct_and_stable():
    deriver = DevnetAddresses(DEVNET_SEED)
    addresses = [deriver.derive(i) for i in range(1000)]
    assert len(set(addresses)) == 1000
    assert all(a.startswith("pdev1") and DevnetAddresses.is_valid(a) for a in addresses)
    assert deriver.derive(7) == DevnetAddresses(DEVNET_SEED).derive(7)
    assert not DevnetAddresses.is_valid("bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq")


def test_a_network_without_an_address_source_cannot_be_enabled():
    catalogue = load_catalogue(["devnet", "sol"])
    with pytest.raises(NoAllocator, match="sol"):
        build_address_book(["devnet", "sol"], catalogue, Vault([generate_master_key().encode()]))


def test_a_network_nobody_can_watch_cannot_be_enabled(tmp_path):
    with pytest.raises(NetworkNotConfigured, match="PAYDESK_CHAIN_NODES"):
        build_context(Settings(data_dir=tmp_path, networks=["devnet", "eth"]))
    with pytest.raises(NetworkNotConfigured, match="no adapter"):
        build_context(
            Settings(data_dir=tmp_path, networks=["sol"], chain_nodes={"sol": "http://x"})
        )
    # A key path the coin cannot use is refused at start, before any address exists.
    override = tmp_path / "catalogue.toml"
    override.write_text("[networks.doge]\nkey_path = \"m/44'/60'/0'\"\n")
    with pytest.raises(NoAllocator, match="not one Paydesk derives for DOGE"):
        build_context(
            Settings(
                data_dir=tmp_path,
                networks=["doge"],
                chain_nodes={"doge": "http://x"},
                catalogue_file=override,
            )
        )


async def test_allocation_is_gap_free_and_returns_rolled_back_claims(context):
    derive = DevnetAddresses(DEVNET_SEED).derive
    async with context.db.transaction() as session:
        first = await context.addresses.allocate(session, "devnet", "invoice")
        second = await context.addresses.allocate(session, "devnet", "invoice")
    assert (first, second) == (derive(0), derive(1))
    with pytest.raises(RuntimeError):
        async with context.db.transaction() as session:
            await context.addresses.allocate(session, "devnet", "invoice")
            raise RuntimeError("roll back")
    async with context.db.transaction() as session:
        third = await context.addresses.allocate(session, "devnet", "invoice")
    assert third == derive(2)


async def test_pool_refills_when_empty_and_tops_up(context):
    derive = DevnetAddresses(DEVNET_SEED).derive
    async with context.db.transaction() as session:
        handed = [
            await context.addresses.allocate(session, "devnet", "invoice")
            for _ in range(REFILL_BATCH + 1)
        ]
    assert handed == [derive(i) for i in range(REFILL_BATCH + 1)]
    async with context.db.transaction() as session:
        assert await context.addresses.free_count(session, "devnet") == REFILL_BATCH - 1
        level = await context.addresses.top_up(session, "devnet", low_water=10, target=500)
        assert (level.free, level.added) == (REFILL_BATCH - 1, 0)
        level = await context.addresses.top_up(session, "devnet", low_water=100, target=250)
        assert (level.free, level.added) == (REFILL_BATCH - 1, 2 * REFILL_BATCH)
        assert await context.addresses.free_count(session, "devnet") == 3 * REFILL_BATCH - 1


async def test_concurrent_allocations_get_distinct_addresses(context):
    async def one() -> str:
        async with context.db.transaction() as session:
            return await context.addresses.allocate(session, "devnet", "invoice")

    handed = await asyncio.gather(*(one() for _ in range(30)))
    assert len(set(handed)) == 30
    async with context.db.sessionmaker() as session:
        indices = await session.scalars(
            select(DepositAddress.derivation_index).where(DepositAddress.assigned_at.is_not(None))
        )
        total = await session.scalar(select(func.count()).select_from(DepositAddress))
    assert sorted(indices) == list(range(30))
    assert total % REFILL_BATCH == 0
