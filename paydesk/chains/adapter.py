"""What every network adapter offers the watcher: blocks, the transfers in them, the tip.

An adapter only reads a chain and reports; it never decides what a transfer means for an
invoice. Matching transfers against watched addresses, confirmations and reorganisations
are the watcher's job, the same for every network.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Context, Decimal, Inexact
from typing import Protocol

from paydesk.catalogue.models import Network, Service

#: `Transfer.output_index` of an EVM transaction's own (native coin) value; token transfers
#: use the log's index, UTXO chains the output's position.
NATIVE_VALUE_INDEX = -1

#: Wide enough that scaling any chain amount between whole coins and units never rounds;
#: an amount that would round anyway is refused (Inexact is trapped).
UNITS_CONTEXT = Context(prec=100, traps=[Inexact])


@dataclass(frozen=True, slots=True)
class NetworkCoins:
    """What a network carries, from the catalogue: its native coin's places on chain and
    its tokens (contract → currency, decimals)."""

    native_decimals: int
    tokens: dict[str, tuple[str, int]]


def network_coins(
    network: Network, services: Iterable[Service], native_default: int
) -> NetworkCoins:
    """Services with a contract are the network's tokens; the one in the native coin gives
    its decimals. Services switched off for new invoices count: payments may still arrive."""
    native_decimals = native_default
    tokens: dict[str, tuple[str, int]] = {}
    for service in services:
        if service.network != network.code:
            continue
        if service.contract:
            tokens[service.contract] = (service.currency, service.decimals)
        elif service.currency == network.native:
            native_decimals = service.decimals
    return NetworkCoins(native_decimals, tokens)


def units_to_amount(value: int, decimals: int) -> Decimal:
    """An integer amount of the smallest unit as an exact Decimal of whole coins."""
    return Decimal(value).scaleb(-decimals, UNITS_CONTEXT)


def amount_to_units(amount: Decimal, decimals: int, limit: int | None = None) -> int:
    """Whole coins as an integer of the smallest unit; refuses anything that would round,
    so a payout never sends a unit more or less than it says. `limit`: the chain's largest
    amount (exclusive)."""
    if not isinstance(amount, Decimal) or not amount.is_finite():
        raise ValueError(f"the amount must be a finite Decimal, not {amount!r}")
    try:
        units = amount.scaleb(decimals, UNITS_CONTEXT)
    except Inexact:
        raise ValueError(f"{amount} has more digits than any chain amount") from None
    if units != units.to_integral_value():
        raise ValueError(f"{amount} has more than {decimals} decimals")
    if units <= 0:
        raise ValueError(f"the amount must be positive, not {amount}")
    if limit is not None and units >= limit:
        raise ValueError(f"{amount} is more than any amount of this chain")
    return int(units)


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


# ---------------------------------------------------------------------- sending (payouts)
@dataclass(frozen=True, slots=True)
class SignedTransfer:
    """A transfer signed by the hot wallet, not necessarily broadcast. Its `txid` is known
    before the node sees it, so it is stored first and looked up after a crash."""

    txid: str
    #: The serialized signed transaction (hex), re-broadcast as is after a crash.
    raw: str
    from_address: str
    #: The account nonce it consumes (EVM), None where the chain has none.
    nonce: int | None = None
    #: The most it can cost in network fees, in the native coin.
    max_fee: Decimal = Decimal(0)


@dataclass(frozen=True, slots=True)
class SentTransfer:
    """What the node knows of a broadcast transaction."""

    #: Block it is in; None while it waits in the mempool.
    block_height: int | None
    #: False when it was mined but failed (a reverted token transfer moves nothing).
    succeeded: bool = True
    #: Network fee it cost, in the native coin (0 until mined).
    fee: Decimal = Decimal(0)


class BroadcastRejected(RuntimeError):
    """The node refused the transaction for good (invalid, underpriced beyond repair...):
    sending it again cannot help."""


class TransferRefused(BroadcastRejected, ValueError):
    """The transfer asked for is invalid (address, currency, amount, priority): no node
    would ever take it. A BroadcastRejected, so the payout fails instead of waiting."""


def payee_address(adapter: ChainAdapter, to: str) -> str:
    """`to` spelled as the network spells it; TransferRefused if it is none of its
    addresses."""
    recipient = adapter.normalize_address(to)
    if recipient is None:
        raise TransferRefused(f"{to!r} is no {adapter.network} address")
    return recipient


class NonceTaken(BroadcastRejected):
    """Another transaction of the hot wallet already used this nonce: this one can never
    be mined."""


class HotWalletShort(RuntimeError):
    """The hot wallet cannot cover the transfer and its fee yet: wait for a top-up."""


class PayoutSender(Protocol):
    """A network's hot wallet: signs transfers, broadcasts them and follows them."""

    network: str
    #: The coin network fees are paid in.
    native: str

    @property
    def hot_address(self) -> str: ...

    async def next_nonce(self) -> int | None:
        """The hot wallet's next nonce as the chain counts it (mined transactions), or
        None on chains without nonces."""
        ...

    async def sign_transfer(
        self, to: str, currency: str, amount: Decimal, *, nonce: int | None, priority: str
    ) -> SignedTransfer:
        """Sign (never broadcast) a transfer of `amount` whole coins of `currency`.
        Raises HotWalletShort when the wallet cannot pay for it now."""
        ...

    async def broadcast(self, transfer: SignedTransfer) -> None:
        """Hand the signed transaction to the node. Sending one the node already has is
        not an error. Raises BroadcastRejected (or NonceTaken) when it can never be
        mined, ChainUnavailable when the node could not be asked."""
        ...

    async def lookup(self, txid: str) -> SentTransfer | None:
        """The transaction as the node sees it now; None when the node does not know it."""
        ...

    async def tip(self) -> int: ...

    async def balance(self, currency: str) -> Decimal | None:
        """The hot wallet's balance of `currency` on chain (None: it has no limit, as on
        the devnet)."""
        ...

    async def close(self) -> None: ...
