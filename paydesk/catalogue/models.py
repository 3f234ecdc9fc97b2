from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class Currency:
    code: str
    name: str
    precision: int
    is_fiat: bool


@dataclass(frozen=True, slots=True)
class Network:
    code: str
    name: str
    native: str
    family: str
    confirmations: int
    #: EIP-155 chain id of EVM networks (what a node must report, what payouts sign for).
    chain_id: int | None = None


@dataclass(frozen=True, slots=True)
class Service:
    """A coin on a network: what an invoice can be paid with."""

    network: str
    currency: str
    decimals: int
    min_amount: Decimal
    max_amount: Decimal
    percent: Decimal
    fee_amount: Decimal
    contract: str | None = None
    available: bool = True
    #: Payout limits and fee (percent of the amount + a fixed fee covering the network fee).
    payout_min_amount: Decimal = Decimal(0)
    payout_max_amount: Decimal = Decimal(0)
    payout_percent: Decimal = Decimal(0)
    payout_fee_amount: Decimal = Decimal(0)

    @property
    def key(self) -> tuple[str, str]:
        return (self.network, self.currency)
