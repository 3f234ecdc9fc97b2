from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from paydesk.catalogue.service import CatalogueError, load_catalogue
from tests.keyring import ALL_NETWORKS


def test_built_in_catalogue_covers_the_spec_networks():
    catalogue = load_catalogue(ALL_NETWORKS)
    assert {n.code for n in catalogue.networks} == set(ALL_NETWORKS)
    pairs = {(s.network, s.currency) for s in catalogue.services}
    expected = [
        ("tron", "USDT"), ("eth", "USDC"), ("bsc", "USDT"), ("btc", "BTC"),
        ("ltc", "LTC"), ("polygon", "USDT"), ("arbitrum", "ETH"), ("ton", "USDT"),
    ]  # fmt: skip
    assert set(expected) <= pairs
    assert catalogue.service("USDT", "bsc").decimals == 18
    assert catalogue.service("usdt", "TRON").contract == "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"


def test_only_enabled_networks_are_visible():
    catalogue = load_catalogue(["devnet"])
    assert catalogue.network("tron") is None
    assert catalogue.service("USDT", "tron") is None
    assert catalogue.currency("XMR") is None  # carried by no enabled network
    assert catalogue.currency("USD").is_fiat
    assert catalogue.currency("usdt").code == "USDT"
    assert catalogue.precision("JPY") == 0 and catalogue.precision("KWD") == 3


def test_unknown_enabled_network_is_an_error():
    with pytest.raises(CatalogueError, match="nonet"):
        load_catalogue(["devnet", "nonet"])


def test_operator_override_merges_by_key(tmp_path: Path):
    override = tmp_path / "c.toml"
    override.write_text(
        '[fiat]\nXTS = { name = "Test", precision = 2 }\n'
        '[[services]]\nnetwork = "devnet"\ncurrency = "USDT"\npercent = 1.5\nmin_amount = "2"\n'
    )
    catalogue = load_catalogue(["devnet"], override)
    usdt = catalogue.service("USDT", "devnet")
    assert usdt.percent == Decimal("1.5") and usdt.min_amount == Decimal(2)
    assert usdt.max_amount == Decimal(1000000)  # untouched fields keep their values
    assert catalogue.currency("XTS").is_fiat


def test_bad_limits_are_refused(tmp_path: Path):
    override = tmp_path / "c.toml"
    override.write_text(
        '[[services]]\nnetwork = "devnet"\ncurrency = "USDT"\nmin_amount = "5000000"\n'
    )
    with pytest.raises(CatalogueError, match="bad limits"):
        load_catalogue(["devnet"], override)


def test_explorer_links_for_real_networks_only(tmp_path: Path):
    catalogue = load_catalogue(ALL_NETWORKS)
    for network in catalogue.networks:
        if network.code == "devnet":
            assert network.explorer_tx is None and network.explorer_address is None
            assert network.tx_url("ab" * 32) is None and network.address_url("pdev1x") is None
        else:
            assert network.explorer_tx and network.explorer_tx.startswith("https://")
            assert "{txid}" in network.explorer_tx
            assert network.code == "xmr" or "{address}" in (network.explorer_address or "")
    assert catalogue.network("btc").tx_url("ab" * 32) == "https://mempool.space/tx/" + "ab" * 32
    assert catalogue.network("tron").tx_url("ff") == "https://tronscan.org/#/transaction/ff"
    eth = catalogue.network("eth")
    assert eth.address_url("0xAbC") == "https://etherscan.io/address/0xAbC"
    # Whatever the value holds stays inside the path segment.
    assert eth.tx_url("a/../b?c#d") == "https://etherscan.io/tx/a%2F..%2Fb%3Fc%23d"
    assert eth.tx_url("") is None
    assert catalogue.network("xmr").address_url("4abc") is None

    # An operator points a network at another explorer, or turns a link off.
    override = tmp_path / "c.toml"
    override.write_text(
        '[networks.eth]\nexplorer_tx = "https://eth.example.test/t/{txid}"\n'
        'explorer_address = ""\n'
        '[networks.devnet]\nexplorer_tx = "http://devnet.local/tx/{txid}"\n'
    )
    overridden = load_catalogue(["devnet", "eth"], override)
    assert overridden.network("eth").tx_url("aa") == "https://eth.example.test/t/aa"
    assert overridden.network("eth").address_url("0x1") is None
    assert overridden.network("eth").confirmations == 12  # untouched keys stay
    assert overridden.network("devnet").tx_url("aa") == "http://devnet.local/tx/aa"


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ('explorer_tx = "https://x.test/tx/"', "no {txid}"),
        ('explorer_tx = "javascript:alert({txid})"', "http"),
        ('explorer_address = "https://x.test/{txid}"', "no {address}"),
    ],
)
def test_bad_explorer_templates_are_refused(tmp_path: Path, line: str, error: str):
    override = tmp_path / "c.toml"
    override.write_text(f"[networks.eth]\n{line}\n")
    with pytest.raises(CatalogueError, match=error):
        load_catalogue(["devnet"], override)
