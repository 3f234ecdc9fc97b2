"""Payment URIs: what a QR code carries so that a wallet app fills in the address, and
the amount and coin where the network has a URI standard that wallets agree on.

Bitcoin-family chains use BIP21, EVM chains EIP-681 (amounts in atomic units, the chain id
always present so a wallet cannot pay on the wrong chain), the devnet a scheme of its own
that `paydesk devnet pay` reads back. Other networks get the bare address: their URI
schemes are not read alike by common wallets, and a wrong amount is worse than none.
"""

from __future__ import annotations

import re
from decimal import Decimal
from urllib.parse import parse_qsl

from paydesk.catalogue.models import Network, Service
from paydesk.money import MONEY, plain

#: BIP21 schemes by network code.
UTXO_SCHEMES = {
    "btc": "bitcoin",
    "ltc": "litecoin",
    "doge": "dogecoin",
    "dash": "dash",
    "bch": "bitcoincash",
}
DEVNET_SCHEME = "devnet"
#: Decimals of an EVM chain's native coin when no service says otherwise.
EVM_NATIVE_DECIMALS = 18

_ADDRESS = re.compile(r"^[A-Za-z0-9]+$")
#: BIP21's amount grammar (digits, an optional fraction), with at least one digit.
_AMOUNT = re.compile(r"^(\d+(\.\d*)?|\.\d+)$")
_CURRENCY = re.compile(r"^[A-Za-z0-9]{1,16}$")


def payment_uri(
    network: Network, service: Service | None, address: str, amount: Decimal | None
) -> str:
    """The text for a payment QR code; without `amount`, a URI that names no amount."""
    if amount is not None and (not amount.is_finite() or amount.is_signed()):
        raise ValueError(f"not an amount to pay: {amount}")
    if network.family == "utxo":
        return _bip21(network, service, address, amount)
    if network.family == "evm":
        return _eip681(network, service, address, amount)
    if network.family == DEVNET_SCHEME:
        currency = service.currency if service else network.native
        params = [] if amount is None else [f"amount={_decimal_text(amount, service)}"]
        return f"{DEVNET_SCHEME}:{address}?{'&'.join([*params, f'currency={currency}'])}"
    return address


def parse_devnet_uri(text: str) -> tuple[str, Decimal | None, str | None]:
    """(address, amount, currency) of a `devnet:` URI, or of a bare address."""
    text = text.strip()
    scheme, colon, rest = text.partition(":")
    if not colon:
        return _devnet_address(text), None, None
    if scheme.lower() != DEVNET_SCHEME:
        raise ValueError(f"not a devnet address or {DEVNET_SCHEME}: URI: {text!r}")
    address, _, query = rest.partition("?")
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        raise ValueError(f"malformed query in {text!r}") from None
    params: dict[str, str] = {}
    for name, value in pairs:
        if name in params:
            raise ValueError(f"{name} given twice in {text!r}")
        if name.startswith("req-"):  # BIP21: a parameter the payer must not ignore
            raise ValueError(f"unsupported required parameter {name} in {text!r}")
        params[name] = value
    amount = params.get("amount")
    if amount is not None and not _AMOUNT.match(amount):
        raise ValueError(f"not an amount: {amount!r}")
    currency = params.get("currency")
    if currency is not None and not _CURRENCY.match(currency):
        raise ValueError(f"not a currency code: {currency!r}")
    return (
        _devnet_address(address),
        None if amount is None else Decimal(amount),
        None if currency is None else currency.upper(),
    )


def _bip21(network: Network, service: Service | None, address: str, amount: Decimal | None) -> str:
    scheme = UTXO_SCHEMES.get(network.code)
    if scheme is None:
        raise ValueError(f"no BIP21 scheme for network {network.code}")
    # Bitcoin Cash addresses are often written with their prefix, which is the scheme.
    uri = address if address.lower().startswith(f"{scheme}:") else f"{scheme}:{address}"
    if amount is None:
        return uri
    return f"{uri}?amount={_decimal_text(amount, service)}"


def _eip681(network: Network, service: Service | None, address: str, amount: Decimal | None) -> str:
    if network.chain_id is None:
        raise ValueError(f"EVM network {network.code} has no chain id")
    chain = network.chain_id
    if service is None or service.contract is None:
        decimals = service.decimals if service else EVM_NATIVE_DECIMALS
        uri = f"ethereum:{address}@{chain}"
        return uri if amount is None else f"{uri}?value={atomic(amount, decimals)}"
    uri = f"ethereum:{service.contract}@{chain}/transfer?address={address}"
    return uri if amount is None else f"{uri}&uint256={atomic(amount, service.decimals)}"


def atomic(amount: Decimal, decimals: int) -> int:
    """`amount` in the coin's smallest unit, exactly; ValueError if it does not fit."""
    units = MONEY.scaleb(amount, decimals)
    if units != units.to_integral_value():
        raise ValueError(f"{plain(amount)} has more than {decimals} decimal places")
    return int(units)


def _decimal_text(amount: Decimal, service: Service | None) -> str:
    if service is not None:
        atomic(amount, service.decimals)  # a wallet cannot send a fraction of a unit
    return plain(amount)


def _devnet_address(address: str) -> str:
    if not _ADDRESS.match(address):
        raise ValueError(f"not a devnet address: {address!r}")
    return address
