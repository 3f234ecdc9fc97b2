"""What every network adapter offers the watcher: blocks, the transfers in them, the tip.

An adapter only reads a chain and reports; it never decides what a transfer means for an
invoice. Matching transfers against watched addresses, confirmations and reorganisations
are the watcher's job, the same for every network.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol

#: `Transfer.output_index` of an EVM transaction's own (native coin) value; token transfers
#: use the log's index, UTXO chains the output's position.
NATIVE_VALUE_INDEX = -1


@dataclass(frozen=True, slots=True)
class BlockHeader:
    height: int
    hash: str
    parent_hash: str
    timestamp: int


@dataclass(frozen=True, slots=True)
class Transfer:
    """Value arriving at an address, as the chain shows it (amount in whole coins)."""

    txid: str
    output_index: int
    to_address: str
    currency: str
    amount: Decimal
    from_address: str | None = None


@dataclass(frozen=True, slots=True)
class Block:
    header: BlockHeader
    transfers: list[Transfer] = field(default_factory=list)


class ChainUnavailable(ConnectionError):
    """The node did not answer, or answered with an error: try again later."""


class ChainMismatch(RuntimeError):
    """The node serves another chain than the network is configured for."""


class ChainAdapter(Protocol):
    """One network's node, seen through what Paydesk needs of it."""

    network: str

    async def tip(self) -> int:
        """Height of the newest block."""
        ...

    async def headers(self, start: int, end: int) -> list[BlockHeader]:
        """Headers of heights start..end inclusive (fewer if the chain is shorter)."""
        ...

    async def blocks(self, start: int, end: int) -> list[Block]:
        """Blocks start..end inclusive with every transfer of a coin the network carries
        (native and configured tokens), in chain order; fewer if the chain is shorter."""
        ...

    async def pending(self) -> list[Transfer]:
        """Transfers waiting to be mined (empty where the node does not show them)."""
        ...

    async def check_node(self) -> None:
        """Raise ChainMismatch when the node serves another chain than configured."""
        ...

    def normalize_address(self, address: str) -> str | None:
        """The canonical spelling of a valid address of this network, or None."""
        ...

    async def close(self) -> None: ...
