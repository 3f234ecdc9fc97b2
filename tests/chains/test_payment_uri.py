"""Payment URIs for QR codes: exact strings per network family, and the devnet's read back."""

from __future__ import annotations

from decimal import Decimal

import pytest

from paydesk.catalogue.service import load_catalogue
from paydesk.chains.devnet import DevnetAddresses
from paydesk.chains.uri import parse_devnet_uri, payment_uri

CATALOGUE = load_catalogue(["devnet", "btc", "ltc", "bch", "doge", "eth", "bsc", "tron", "xmr"])
BTC_ADDRESS = "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq"
LTC_ADDRESS = "ltc1qg82tdyq2n2qg7qlwm6tqrrjwhlyv3jx8zxp3cn"
BCH_ADDRESS = "qpm2qsznhks23z7629mms6s4cwef74vcwvy22gdx6a"
EVM_ADDRESS = "0x9858EfFD232B4033E47d90003D41EC34EcaEda94"
TRON_ADDRESS = "TXYZopYRdj2D9XRtbG411XZZ3kM5VkAeBf"
XMR_ADDRESS = (
    "44AFFq5kSiGBoZ4NMDwYtN18obc8AemS33DBLWs3H7otX"
    "ft3XjrpDtQGv7SqSsaBYBb98uNbr2VBBEt7f2wfn3RVGQBEP3A"
)
DEVNET_ADDRESS = DevnetAddresses(b"uri tests").derive(0)
USDT_ERC20 = "0xdAC17F958D2ee523a2206206994597C13D831ec7"
USDT_BEP20 = "0x55d398326f99059fF775485246999027B3197955"


def uri(network: str, currency: str | None, address: str, amount: str | None) -> str:
    found = CATALOGUE.network(network)
    assert found is not None
    service = CATALOGUE.service(currency, network) if currency else None
    return payment_uri(found, service, address, None if amount is None else Decimal(amount))


@pytest.mark.parametrize(
    ("network", "currency", "address", "amount", "expected"),
    [
        # BIP21: plain decimals, no exponent, no trailing zeros or dot.
        ("btc", "BTC", BTC_ADDRESS, "0.00150000", f"bitcoin:{BTC_ADDRESS}?amount=0.0015"),
        ("btc", "BTC", BTC_ADDRESS, "1E-8", f"bitcoin:{BTC_ADDRESS}?amount=0.00000001"),
        ("btc", "BTC", BTC_ADDRESS, "20.00000000", f"bitcoin:{BTC_ADDRESS}?amount=20"),
        ("ltc", "LTC", LTC_ADDRESS, "12.5", f"litecoin:{LTC_ADDRESS}?amount=12.5"),
        ("doge", "DOGE", "DH5yaieqoZN36fDVciNyRueRGvGLR3mr7L", "1E+2",
         "dogecoin:DH5yaieqoZN36fDVciNyRueRGvGLR3mr7L?amount=100"),
        ("bch", "BCH", BCH_ADDRESS, "0.5", f"bitcoincash:{BCH_ADDRESS}?amount=0.5"),
        # A CashAddr that carries its prefix does not get it twice.
        ("bch", "BCH", f"bitcoincash:{BCH_ADDRESS}", "0.5",
         f"bitcoincash:{BCH_ADDRESS}?amount=0.5"),
        # EIP-681, native coin: `value` in wei, the chain id always present.
        ("eth", "ETH", EVM_ADDRESS, "0.05", f"ethereum:{EVM_ADDRESS}@1?value=50000000000000000"),
        ("eth", None, EVM_ADDRESS, "1.5", f"ethereum:{EVM_ADDRESS}@1?value=1500000000000000000"),
        ("bsc", "BNB", EVM_ADDRESS, "2", f"ethereum:{EVM_ADDRESS}@56?value=2000000000000000000"),
        # EIP-681, token: transfer() on the contract, the amount in the token's own units.
        ("eth", "USDT", EVM_ADDRESS, "12.345678",
         f"ethereum:{USDT_ERC20}@1/transfer?address={EVM_ADDRESS}&uint256=12345678"),
        ("eth", "USDT", EVM_ADDRESS, "20.00000000",
         f"ethereum:{USDT_ERC20}@1/transfer?address={EVM_ADDRESS}&uint256=20000000"),
        ("bsc", "USDT", EVM_ADDRESS, "12.5",
         f"ethereum:{USDT_BEP20}@56/transfer?address={EVM_ADDRESS}"
         "&uint256=12500000000000000000"),
        # Wider than any float: exact.
        ("bsc", "USDT", EVM_ADDRESS, "123456789012.123456789012345678",
         f"ethereum:{USDT_BEP20}@56/transfer?address={EVM_ADDRESS}"
         "&uint256=123456789012123456789012345678"),
        ("devnet", "USDT", DEVNET_ADDRESS, "20.000000",
         f"devnet:{DEVNET_ADDRESS}?amount=20&currency=USDT"),
        ("devnet", "ETH", DEVNET_ADDRESS, "0.0001",
         f"devnet:{DEVNET_ADDRESS}?amount=0.0001&currency=ETH"),
        # No URI standard we rely on: the bare address.
        ("tron", "USDT", TRON_ADDRESS, "20", TRON_ADDRESS),
        ("tron", "TRX", TRON_ADDRESS, "20", TRON_ADDRESS),
        ("xmr", "XMR", XMR_ADDRESS, "1", XMR_ADDRESS),
    ],
)  # fmt: skip
def test_exact_uris(network, currency, address, amount, expected):
    assert uri(network, currency, address, amount) == expected


@pytest.mark.parametrize(
    ("network", "currency", "address", "expected"),
    [
        ("btc", "BTC", BTC_ADDRESS, f"bitcoin:{BTC_ADDRESS}"),
        ("bch", "BCH", f"bitcoincash:{BCH_ADDRESS}", f"bitcoincash:{BCH_ADDRESS}"),
        ("eth", "ETH", EVM_ADDRESS, f"ethereum:{EVM_ADDRESS}@1"),
        ("eth", "USDT", EVM_ADDRESS, f"ethereum:{USDT_ERC20}@1/transfer?address={EVM_ADDRESS}"),
        ("devnet", "USDC", DEVNET_ADDRESS, f"devnet:{DEVNET_ADDRESS}?currency=USDC"),
        ("tron", "USDT", TRON_ADDRESS, TRON_ADDRESS),
    ],
)
def test_without_amount(network, currency, address, expected):
    assert uri(network, currency, address, None) == expected


@pytest.mark.parametrize(
    ("network", "currency", "amount"),
    [
        ("eth", "USDT", "1.0000001"),  # 6 decimals
        ("eth", "ETH", "0.0000000000000000001"),  # finer than a wei
        ("btc", "BTC", "0.000000001"),  # finer than a satoshi
        ("devnet", "USDT", "1.0000001"),
    ],
)
def test_more_places_than_the_coin_has(network, currency, amount):
    with pytest.raises(ValueError, match="decimal places"):
        uri(network, currency, EVM_ADDRESS, amount)


@pytest.mark.parametrize("amount", ["-1", "NaN", "Infinity"])
def test_not_an_amount(amount):
    with pytest.raises(ValueError, match="not an amount"):
        uri("btc", "BTC", BTC_ADDRESS, amount)


# ------------------------------------------------------------------ devnet URIs read back
@pytest.mark.parametrize(
    ("currency", "amount"), [("USDT", "20.000000"), ("BTC", "0.00001"), ("ETH", None)]
)
def test_devnet_round_trip(currency, amount):
    text = uri("devnet", currency, DEVNET_ADDRESS, amount)
    expected = None if amount is None else Decimal(amount)
    assert parse_devnet_uri(text) == (DEVNET_ADDRESS, expected, currency)


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        (DEVNET_ADDRESS, (DEVNET_ADDRESS, None, None)),
        (f"  {DEVNET_ADDRESS}\n", (DEVNET_ADDRESS, None, None)),
        (f"devnet:{DEVNET_ADDRESS}", (DEVNET_ADDRESS, None, None)),
        (f"DEVNET:{DEVNET_ADDRESS}?currency=usdt", (DEVNET_ADDRESS, None, "USDT")),
        (f"devnet:{DEVNET_ADDRESS}?currency=USDT&amount=0.5",
         (DEVNET_ADDRESS, Decimal("0.5"), "USDT")),
        # Percent-encoding is read; parameters it does not know are ignored (BIP21).
        (f"devnet:{DEVNET_ADDRESS}?amount=%31.5&label=Shop",
         (DEVNET_ADDRESS, Decimal("1.5"), None)),
    ],
)  # fmt: skip
def test_parse_devnet_uri(text, parsed):
    assert parse_devnet_uri(text) == parsed


@pytest.mark.parametrize(
    "text",
    [
        "",
        "devnet:",
        "devnet:?amount=1",
        f"bitcoin:{BTC_ADDRESS}?amount=1",
        f"devnet:{DEVNET_ADDRESS}?amount=1e5",
        f"devnet:{DEVNET_ADDRESS}?amount=-1",
        f"devnet:{DEVNET_ADDRESS}?amount=",
        f"devnet:{DEVNET_ADDRESS}?amount=1,5",
        f"devnet:{DEVNET_ADDRESS}?amount=1&amount=2",
        f"devnet:{DEVNET_ADDRESS}?currency=",
        f"devnet:{DEVNET_ADDRESS}?currency=US DT",
        f"devnet:{DEVNET_ADDRESS}?amount",
        f"devnet:{DEVNET_ADDRESS}?amount=1&&currency=USDT",
        f"devnet:{DEVNET_ADDRESS}?req-memo=x",
        f"devnet:{DEVNET_ADDRESS}#amount=1",
        f"devnet:{DEVNET_ADDRESS}/x",
        "pdev1 with space",
    ],
)
def test_malformed_devnet_uris(text):
    with pytest.raises(ValueError):
        parse_devnet_uri(text)
