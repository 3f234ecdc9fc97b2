from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from urllib.parse import quote


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
    #: Public block explorer pages, with a `{txid}` / `{address}` placeholder (None: the
    #: network has no public explorer, like the devnet).
    explorer_tx: str | None = None
    explorer_address: str | None = None
    #: UTXO networks: the chain the node must report (main, test, regtest), the bech32
    #: prefix of native segwit addresses (None: the coin has no segwit) and the base58
    #: version bytes of P2PKH and P2SH addresses.
    node_chain: str | None = None
    bech32_hrp: str | None = None
    p2pkh_version: int | None = None
    p2sh_version: int | None = None
    #: Bitcoin Cash: the CashAddr prefix its addresses are spelled with (bitcoincash,
    #: bchtest, bchreg); the base58 versions above still read legacy addresses.
    cashaddr_prefix: str | None = None
    #: The BIP32 account addresses derive from, m/purpose'/coin'/account' as
    #: (purpose, coin type, account); None: no HD addresses (the devnet).
    key_path: tuple[int, int, int] | None = None
    #: TRON: the id of block 0 the node must serve (mainnet, Nile, Shasta differ there).
    genesis_id: str | None = None

    def tx_url(self, txid: str) -> str | None:
        """The explorer page of a transaction. The txid is quoted: it comes from a chain
        and must not reshape the link. None without a template or a txid."""
        return _fill(self.explorer_tx, "{txid}", txid)

    def address_url(self, address: str) -> str | None:
        """The explorer page of an address (quoted like `tx_url`)."""
        return _fill(self.explorer_address, "{address}", address)


def _fill(template: str | None, placeholder: str, value: str) -> str | None:
    if not template or not value:
        return None
    return template.replace(placeholder, quote(value, safe=""))


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
