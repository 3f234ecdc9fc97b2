"""What the chain end-to-end tests share: a real EVM node per module (anvil), a stand-in
USDT token on it, a network's watcher stepped until it has read everything, and its hot
wallet."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from decimal import Decimal

import pytest

from paydesk.chains.adapter import PayoutSender
from paydesk.chains.registry import build_adapter, build_sender
from paydesk.chains.watcher import Watcher
from paydesk.context import Context
from tests.chains.anvil import ANVIL_BINARY, REPO_ROOT, Anvil

ETH_DECIMALS = 18
USDT_DECIMALS = 6


def start_anvil() -> Iterator[Anvil]:
    """A fresh anvil (chain id 1); under CI a missing binary fails instead of skipping."""
    if not ANVIL_BINARY.exists():
        where = ANVIL_BINARY.relative_to(REPO_ROOT)
        message = f"anvil is not installed ({where}): run `npm ci --prefix tools`"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    node = Anvil(chain_id=1)
    try:
        yield node
    finally:
        node.stop()


def units(amount: str | Decimal, decimals: int) -> int:
    """An amount in the chain's smallest unit, exactly (refusing any rounding)."""
    scaled = Decimal(amount).scaleb(decimals)
    assert scaled == scaled.to_integral_value(), f"{amount} has more than {decimals} decimals"
    return int(scaled)


async def follow(watcher: Watcher) -> None:
    """Step until the watcher has nothing more to do."""
    for _ in range(200):
        result = await watcher.step()
        if not (result.blocks or result.rolled_back):
            return
    raise AssertionError("the watcher never caught up")


@asynccontextmanager
async def chain_watcher(context: Context, code: str) -> AsyncIterator[Watcher]:
    """The network's watcher, already caught up with the node (a first one starts near
    its tip)."""
    network = context.catalogue.network(code)
    assert network is not None
    adapter = build_adapter(network, context.catalogue, context.settings, context.db)
    watcher = Watcher(context, network, adapter, owner="test")
    try:
        await follow(watcher)
        yield watcher
    finally:
        await adapter.close()


@asynccontextmanager
async def eth_watcher(context: Context, confirmations: int) -> AsyncIterator[Watcher]:
    assert context.catalogue.network("eth").confirmations == confirmations
    async with chain_watcher(context, "eth") as watcher:
        yield watcher


@asynccontextmanager
async def hot_wallet_of(context: Context, code: str) -> AsyncIterator[PayoutSender]:
    """The network's hot wallet of this test's master seed (a fresh seed: empty)."""
    async with context.db.transaction() as session:
        await context.addresses.keys.load(session)
    network = context.catalogue.network(code)
    assert network is not None
    sender = build_sender(network, context.catalogue, context.settings, context.db,
                          context.addresses.keys)  # fmt: skip
    try:
        yield sender
    finally:
        await sender.close()
