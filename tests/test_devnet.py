from __future__ import annotations

import pytest

from paydesk.chains.devnet import DEVNET_SEED, DevnetAddresses
from paydesk.chains.service import NoAllocator, build_address_book


def test_devnet_addresses_are_valid_distinct_and_stable():
    deriver = DevnetAddresses(DEVNET_SEED)
    addresses = [deriver.derive(i) for i in range(1000)]
    assert len(set(addresses)) == 1000
    assert all(a.startswith("pdev1") and DevnetAddresses.is_valid(a) for a in addresses)
    assert deriver.derive(7) == DevnetAddresses(DEVNET_SEED).derive(7)
    assert not DevnetAddresses.is_valid("bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq")


def test_a_network_without_an_address_source_cannot_be_enabled():
    with pytest.raises(NoAllocator, match="tron"):
        build_address_book(["devnet", "tron"])


async def test_allocation_is_gap_free_and_per_network(context):
    async with context.db.transaction() as session:
        first = await context.addresses.allocate(session, "devnet", "invoice")
        second = await context.addresses.allocate(session, "devnet", "invoice")
    assert first == DevnetAddresses(DEVNET_SEED).derive(0)
    assert second == DevnetAddresses(DEVNET_SEED).derive(1)
    try:
        async with context.db.transaction() as session:
            await context.addresses.allocate(session, "devnet", "invoice")
            raise RuntimeError("roll back")
    except RuntimeError:
        pass
    async with context.db.transaction() as session:
        third = await context.addresses.allocate(session, "devnet", "invoice")
    assert third == DevnetAddresses(DEVNET_SEED).derive(2)
