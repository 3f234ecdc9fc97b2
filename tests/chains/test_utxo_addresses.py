"""Bitcoin-family addresses as the catalogue spells them, checked against published test
vectors (BIP84, BIP86, BIP173, BIP350) rather than against Paydesk's own output."""

from __future__ import annotations

import pytest
from bip_utils import Bip39SeedGenerator, Bip44Changes, Bip84, Bip84Coins
from bip_utils.bech32.bech32 import Bech32Encodings, Bech32Utils
from bip_utils.bech32.bech32_base import Bech32BaseUtils

from paydesk.catalogue.service import load_catalogue
from paydesk.chains.keys import XpubDeriver
from paydesk.chains.utxo_addresses import UtxoAddressFormat

CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
MNEMONIC = " ".join(["abandon"] * 11 + ["about"])
CATALOGUE = load_catalogue(["btc", "ltc"])
BTC = UtxoAddressFormat.of(CATALOGUE.network("btc"))
LTC = UtxoAddressFormat.of(CATALOGUE.network("ltc"))


def encoded(version: int, program: str, encoding: Bech32Encodings, hrp: str = "bc") -> str:
    """A segwit address with the checksum of `encoding`, right or wrong for `version`."""
    data = [version, *Bech32BaseUtils.ConvertToBase32(bytes.fromhex(program))]
    checksum = Bech32Utils.ComputeChecksum(hrp, data, encoding)
    return hrp + "1" + "".join(CHARSET[d] for d in data + checksum)


def test_the_checksum_helper_builds_valid_addresses_too():
    right = encoded(0, "751e76e8199196d454941c45d1b3a323f1433bd6", Bech32Encodings.BECH32)
    assert right == "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"


def test_bip84_vectors_derive_through_the_catalogues_spelling():
    seed = Bip39SeedGenerator(MNEMONIC).Generate()
    account = Bip84.FromSeed(seed, Bip84Coins.BITCOIN).Purpose().Coin().Account(0)
    deriver = XpubDeriver(account, BTC.from_public_key)
    # BIP84's published first receive and change addresses of this mnemonic.
    assert deriver.derive(0) == "bc1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyu"
    assert deriver.derive(1) == "bc1qnjg0jd8228aq7egyzacy8cys3knf9xvrerkf9g"
    change = account.Change(Bip44Changes.CHAIN_INT).AddressIndex(0).PublicKey()
    assert BTC.from_public_key(change.RawCompressed().ToBytes()) == (
        "bc1q8c6fshw2dlwun7ekn9qwf37cu2rn755upcp6el"
    )


@pytest.mark.parametrize(
    ("address", "script"),
    [
        ("BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4",
         "0014751e76e8199196d454941c45d1b3a323f1433bd6"),
        ("bc1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3qccfmv3",
         "00201863143c14c5166804bd19203356da136c985678cd4d27a1b8c6329604903262"),
        ("bc1p5cyxnuxmeuwuvkwfem96lqzszd02n6xdcjrs20cac6yqjjwudpxqkedrcr",
         "5120a60869f0dbcf1dc659c9cecbaf8050135ea9e8cdc487053f1dc6880949dc684c"),
        ("1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2",
         "76a91477bff20c60e522dfaa3350c39b030a5d004e839a88ac"),
        ("3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy", "a914b472a266d0bd89c13706a4132ccfb16f7c3b9fcb87"),
    ],
)  # fmt: skip
def test_valid_addresses_and_their_scripts(address, script):
    assert BTC.normalize(address) == (address.lower() if address[:3].lower() == "bc1" else address)
    assert BTC.script_pubkey(address).hex() == script


@pytest.mark.parametrize(
    "address",
    [
        "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t5",  # bad checksum
        "bC1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4",  # mixed case
        # BIP350: a v0 program with a bech32m checksum, a v1 one with a bech32 checksum.
        encoded(0, "751e76e8199196d454941c45d1b3a323f1433bd6", Bech32Encodings.BECH32M),
        encoded(
            1,
            "a60869f0dbcf1dc659c9cecbaf8050135ea9e8cdc487053f1dc6880949dc684c",
            Bech32Encodings.BECH32,
        ),
        encoded(0, "751e76e8199196d454941c45d1b3a323f1433bd6", Bech32Encodings.BECH32, "tb"),
        "ltc1qcr8te4kr609gcawutmrza0j4xv80jy8zakc57d",
        "LVuDpNCSSj6pQ7t9Pv6d6sUkLKoqDEVUnJ",  # Litecoin's P2PKH version
        "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN3",  # base58 checksum
        "",
        "x" * 200,
    ],
)
def test_invalid_addresses_are_refused(address):
    assert BTC.normalize(address) is None
    with pytest.raises(ValueError):
        BTC.script_pubkey(address)


def test_litecoin_spells_the_same_key_its_own_way():
    seed = Bip39SeedGenerator(MNEMONIC).Generate()
    account = Bip84.FromSeed(seed, Bip84Coins.LITECOIN).Purpose().Coin().Account(0)
    # bip-utils' own Litecoin encoding and the catalogue's agree on mainnet.
    key = account.Change(Bip44Changes.CHAIN_EXT).AddressIndex(0).PublicKey()
    assert LTC.from_public_key(key.RawCompressed().ToBytes()) == key.ToAddress()
    assert LTC.normalize(key.ToAddress()) == key.ToAddress()
    assert BTC.normalize(key.ToAddress()) is None
