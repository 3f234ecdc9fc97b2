"""Bitcoin Cash addresses (CashAddr) and transaction signing (SIGHASH_FORKID), checked
against published vectors rather than against Paydesk's own output: the CashAddr
specification, Bitcoin Cash Node's sighash test data, BIP143's examples, and transactions
signed by other wallets with published keys (one of them mined on mainnet)."""

from __future__ import annotations

import hashlib
import json
import threading
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from bip_utils import Base58Encoder, P2PKHAddrEncoder
from embit import ec
from embit.script import Script
from embit.transaction import Transaction, TransactionOutput

from paydesk.catalogue.service import load_catalogue
from paydesk.chains.bitcoin_cash import (
    FINAL_SEQUENCE,
    SIGHASH_ALL_FORKID,
    _bip143_digest,
    forkid_sighash,
    sign_forkid_transaction,
)
from paydesk.chains.utxo_addresses import CashAddressFormat, address_format_of
from paydesk.chains.utxo_sender import UtxoPayoutSender
from paydesk.chains.utxo_signing import Coin, SigningFailed
from tests.keyring import key_ring

#: The built-in catalogue's Bitcoin Cash, and its test networks as an operator's override
#: would give them (testnet and regtest share their legacy versions).
BCH_MAINNET = address_format_of(load_catalogue(["bch"]).network("bch"))
BCH_TESTNET = CashAddressFormat("bchtest", 111, 196)
BCH_REGTEST = CashAddressFormat("bchreg", 111, 196)

#: Order of secp256k1's group: a low-S signature has s <= N / 2.
CURVE_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141

# ---------------------------------------------------------------------------------------
# Vectors. Each block says where it was published.

# The CashAddr specification (bitcoincash.org, spec/cashaddr.md), "Examples of address
# translation": the same hashes in legacy base58 and in CashAddr.
SPEC_TRANSLATIONS = [
    ("1BpEi6DfDAUFd7GtittLSdBeYJvcoaVggu",
     "bitcoincash:qpm2qsznhks23z7629mms6s4cwef74vcwvy22gdx6a"),
    ("1KXrWXciRDZUpQwQmuM1DbwsKDLYAYsVLR",
     "bitcoincash:qr95sy3j9xwd2ap32xkykttr4cvcu7as4y0qverfuy"),
    ("16w1D5WRVKJuZUsSRzdLp9w3YGcgoxDXb",
     "bitcoincash:qqq3728yw0y47sqn6l2na30mcw6zm78dzqre909m2r"),
    ("3CWFddi6m4ndiGyKqzYvsFYagqDLPVMTzC",
     "bitcoincash:ppm2qsznhks23z7629mms6s4cwef74vcwvn0h829pq"),
    ("3LDsS579y7sruadqu11beEJoTjdFiFCdX4",
     "bitcoincash:pr95sy3j9xwd2ap32xkykttr4cvcu7as4yc93ky28e"),
    ("31nwvkZwyPdgzjBJZXfDmSWsC4ZLKpYyUw",
     "bitcoincash:pqq3728yw0y47sqn6l2na30mcw6zm78dzq5ucqzc37"),
]  # fmt: skip

# The same specification, "Larger test vectors" (20-byte rows: type 0 is P2PKH, type 1
# P2SH), and Bitcoin Cash Node's src/test/cashaddrenc_tests.cpp for the regtest prefix.
SPEC_HASHES = [
    (BCH_MAINNET, "bitcoincash:qr6m7j9njldwwzlg9v7v53unlr4jkmx6eylep8ekg2",
     "76a914f5bf48b397dae70be82b3cca4793f8eb2b6cdac988ac"),
    (BCH_TESTNET, "bchtest:pr6m7j9njldwwzlg9v7v53unlr4jkmx6eyvwc0uz5t",
     "a914f5bf48b397dae70be82b3cca4793f8eb2b6cdac987"),
    (BCH_REGTEST, "bchreg:qrv9c2m36qrqkzwf3p4whq272zv3mksjf5ln6v9le5",
     "76a914d85c2b71d0060b09c9886aeb815e50991dda124d88ac"),
]  # fmt: skip

# The bitcash library's tests (tests/samples.py): one private key, the addresses of its
# compressed public key on the three networks, and legacy spellings of the same hashes.
BITCASH_KEY = bytes.fromhex("c28a9f80738f770d527803a566cf6fc3edf6cea586c4fc4a5223a5ad797e1ac3")
BITCASH_ADDRESSES = [
    (BCH_MAINNET, "bitcoincash:qzvsaasdvw6mt9j2rs3gyps673gj86flev4sthhcc0"),
    (BCH_TESTNET, "bchtest:qzvsaasdvw6mt9j2rs3gyps673gj86flev3z0s40ln"),
    (BCH_REGTEST, "bchreg:qzvsaasdvw6mt9j2rs3gyps673gj86flevt7e3kuu4"),
]
BITCASH_LEGACY = [
    (BCH_MAINNET, "1ExJJsNLQDNVVM1s1sdyt1o5P3GC5r32UG",
     "bitcoincash:qzvsaasdvw6mt9j2rs3gyps673gj86flev4sthhcc0"),
    (BCH_MAINNET, "39SrGQEfFXcTYJhBvjZeQja66Cpz82EEUn",
     "bitcoincash:pp23x8hm0g8d6nrkesamaqeml3v6daeudvpa7zhktf"),
    (BCH_TESTNET, "muUFbvTKDEokGTVUjScMhw1QF2rtv5hxCz",
     "bchtest:qzvsaasdvw6mt9j2rs3gyps673gj86flev3z0s40ln"),
    (BCH_REGTEST, "muUFbvTKDEokGTVUjScMhw1QF2rtv5hxCz",
     "bchreg:qzvsaasdvw6mt9j2rs3gyps673gj86flevt7e3kuu4"),
]  # fmt: skip
# bitcash's P2SH CashAddr samples: one script hash (PUBKEY_HASH_P2SH there), three prefixes.
BITCASH_P2SH = [
    (BCH_MAINNET, "bitcoincash:pp23x8hm0g8d6nrkesamaqeml3v6daeudvpa7zhktf"),
    (BCH_TESTNET, "bchtest:pp23x8hm0g8d6nrkesamaqeml3v6daeudv90694pv4"),
    (BCH_REGTEST, "bchreg:pp23x8hm0g8d6nrkesamaqeml3v6daeudvlnvykj0n"),
]

# src/test/data/sighash.json of Bitcoin ABC and of Bitcoin Cash Node (the two files open
# with the same rows), whose header reads "raw_transaction, script, input_index, hashType,
# signature_hash (regular), signature_hash(no forkid), signature_hash(replay protected)". The
# regular digest is the one with SIGHASH_FORKID wherever hashType has the 0x40 bit; the
# nodes compute it with an amount of 0 and print it with uint256::GetHex, byte-reversed.
# Rows whose hashType has the forkid bit and not 0x20 (SIGHASH_UTXOS on Bitcoin Cash now):
# ALL|ANYONECANPAY, NONE|ANYONECANPAY, and undefined base types (hashed as ALL).
SIGHASH_ROW_A = bytes.fromhex(
    "f26ee13003ed504a82b674c3dc2b072bcb5869056004283bd0057b73505aa56873acefbf1c02000000026563"
    "ffffffff7424a77ed18e0328c8003778eac9f6980c4521ccf68754ff4ea1757829d2ba8e020000000963acac"
    "6aab0053ab510531e203a6224cd94afc103cb368c786d3330750305c4e3b3638317c8b6ace873dcbd2d20200"
    "000008516aac526aababac7c0850400298bb6200000000000151c748a501000000000265ab00000000"
)
SIGHASH_ROW_B = bytes.fromhex(
    "e30beb23034cb0e05ffa65359af3eb1596e14791956224160fb6c106cef0f7a5756e513d65020000000100ff"
    "ffffff7cd6afeec53c84610d6d0bb0a236fa77c6f0e0a5c350d677e39821d2fbc994d50200000006acac63ab"
    "6a00b5f6edb7015614d44cc0b5e1b4ea5c52b2fe0ceca9cec1b111009ee8f180d97d09cb850b000000000465"
    "516a00eee62e4204d3b4360100000000080063526a51abac63f190c3040000000008536363005100ab538ad9"
    "0c0200000000026aac7822940300000000056a65ac6a657561e4ad"
)
SIGHASH_ROW_C = bytes.fromhex(
    "5d1142b103f09b97324a6ff96f4d41d889d16d2ac1f314edb38fb0f6c21f8a5fb59fda27b301000000050051"
    "ab53acffffffffd539f10298b5aacd1631287e37799fb8b22fcaace26a171ff0319bf5a2b567b70100000002"
    "6365f37069897cd43ba3118d4d54dec113e119ff65d4bcfdba128fa223baadc1c628e641f82b000000000253"
    "52ffffffff04c0ee16000000000002006accc69d0500000000036a6351c39712030000000002ac5291b0ed00"
    "0000000003abab0000000000"
)
SIGHASH_ROW_D = bytes.fromhex(
    "9971e273018addc99d89ffa20e36c6844b215dd8f6d87f78db44ca5f5dc9222a5a8cc4651903000000035351"
    "acffffffff02ba452c00000000000965636565526a5152ac50ea4c0200000000035351ab00000000"
)
SIGHASH_ROW_E = bytes.fromhex(
    "9f88beb00285746ab675afdc569ca0a0e9ad16d1c88411b7f34efa2462d77a1df985f0443401000000030053"
    "65ffffffff0862484f103c77855322d0d55a30cfae0e11d06bd313438e3a10a1346dfb8a8d0200000005abac"
    "000000ffffffff033730c0020000000001524cc317000000000006abac51ac0053e98852010000000004acab"
    "656a5a2beb14"
)
SIGHASH_ROW_F = bytes.fromhex(
    "043157240271ec9ddb08e4ab57f238a703e936745f8f70ec8be5bb148eb458b59dfa3eb7d50200000007ac51"
    "6a00526552595d4acde298de140682b176936432c29bb8580e60090f85bb0463b2b4e4507b27417f42030000"
    "00046552005148e37dd504b16cf203000000000852ac65536353acabb3c932020000000001ac899b39010000"
    "0000036a5365a1109e01000000000800ac536a5363ac00ebeaf805"
)
SIGHASH_ROWS = [
    (SIGHASH_ROW_A, "ab51006a5352", 0, 1174186177,
     "50b75f605e4068bcb803f3d15fbcb5cd97bd8f479d3fd41bf45d9f8828bc3e9a"),
    (SIGHASH_ROW_B, "536a6aab5151ab", 2, -2021588286,
     "8cc3cc030e874566553e4fd4c0c62758cb1787d310f61eab6f1527e4b6a4b523"),
    (SIGHASH_ROW_C, "52ab51", 1, 709074270,
     "862713ebacc4f366a2ae3df618be57e49985d1c0e109966e9e127bf952d8dc42"),
    (SIGHASH_ROW_D, "636a63", 0, -44108717,
     "b7cfa3f8a37049934f3433fffd79477f8f56258b58b0af4353fdc2ddfe9c8f13"),
    (SIGHASH_ROW_E, "535363ab63", 1, -185369265,
     "d882da3bb11b01a352460e272e969b65756ead51026c371b43fdb885496031e0"),
    (SIGHASH_ROW_F, "006552ab6553ab", 1, 1559297614,
     "e80a85e86588f7c0799afb2e4424508df12ee21005eba1a6759820d899f8bf45"),
]  # fmt: skip

# BIP143's examples (bitcoin/bips, bip-0143.mediawiki): the digest layout Bitcoin Cash
# adopted, for all six sighash types (the P2SH-P2WSH 6-of-6 multisig example) and for
# SIGHASH_SINGLE on an input without a matching output (the native P2WSH example). They
# predate the forkid bit, so they exercise the layout through its private helper.
BIP143_MULTISIG_TX = bytes.fromhex(
    "010000000136641869ca081e70f394c6948e8af409e18b619df2ed74aa106c1ca29787b96e0100000000ffff"
    "ffff0200e9a435000000001976a914389ffce9cd9ae88dcc0631e88a821ffdbe9bfe2688acc0832f05000000"
    "001976a9147480a33f950689af511e6e84c138dbbd3c3ee41588ac00000000"
)
BIP143_MULTISIG_SCRIPT = bytes.fromhex(
    "56210307b8ae49ac90a048e9b53357a2354b3334e9c8bee813ecb98e99a7e07e8c3ba32103b28f0c28bfab54"
    "554ae8c658ac5c3e0ce6e79ad336331f78c428dd43eea8449b21034b8113d703413d57761b8b9781957b8c0a"
    "c1dfe69f492580ca4195f50376ba4a21033400f6afecb833092a9a21cfdf1ed1376e58c5d1f47de746831239"
    "87e967a8f42103a6d48b1131e94ba04d9737d61acdaa1322008af9602b3b14862c07a1789aac162102d8b661"
    "b0b3302ee2f162b09e07a55ad5dfbe673a9f01d9f0c19617681024306b56ae"
)
BIP143_MULTISIG_VALUE = 987654321
BIP143_MULTISIG_DIGESTS = [
    (0x01, "185c0be5263dce5b4bb50a047973c1b6272bfbd0103a89444597dc40b248ee7c"),
    (0x02, "e9733bc60ea13c95c6527066bb975a2ff29a925e80aa14c213f686cbae5d2f36"),
    (0x03, "1e1f1c303dc025bd664acb72e583e933fae4cff9148bf78c157d1e8f78530aea"),
    (0x81, "2a67f03e63a6a422125878b40b82da593be8d4efaafe88ee528af6e5a9955c6e"),
    (0x82, "781ba15f3779d5542ce8ecb5c18716733a5ee42a6f51488ec96154934e2c890a"),
    (0x83, "511e8e52ed574121fc1b654970395502128263f62662e076dc6baf05c2e6a99b"),
]
BIP143_P2WSH_TX = bytes.fromhex(
    "0100000002fe3dc9208094f3ffd12645477b3dc56f60ec4fa8e6f5d67c565d1c6b9216b36e0000000000ffff"
    "ffff0815cf020f013ed6cf91d29f4202e8a58726b1ac6c79da47c23d1bee0a6925f80000000000ffffffff01"
    "00f2052a010000001976a914a30741f8145e5acadf23f751864167f32e0963f788ac00000000"
)
BIP143_P2WSH_SCRIPT = bytes.fromhex(
    "21026dccc749adc2a9d0d89497ac511f760f45c47dc5ed9cf352a58ac706453880aeadab210255a9626aebf5"
    "e29c0e6538428ba0d1dcf6ca98ffdf086aa8ced5e0d0215ea465ac"
)
BIP143_P2WSH_VALUE = 4900000000
BIP143_P2WSH_SINGLE_DIGEST = "82dde6e4f1e94d02c2b7ad03d2115d691f48d064e9d52f58194a6637e4194391"

# The bitcash library's tests (tests/test_transaction.py, FINAL_TX_1): BITCASH_KEY signs
# one P2PKH coin (of its uncompressed key) with SIGHASH_ALL|FORKID.
BITCASH_TX = bytes.fromhex(
    "01000000018878399d83ec25c627cfbf753ff9ca3602373eac437ab2676154a3c2da23adf3010000008a4730"
    "44022013d0751fb16eb7e1ac75aa799ebbfb552bf112174f4a7eea689b8930cf582abc02206bc2082f380194"
    "76ecc3dc839fdeda87a70041f23f0843edd101792109a10c6e4141043d5c2875c9bd116875a71a5db64cffcb"
    "13396b163d039b1d932782489180433476a4352a2add00ebb0d5c94c515b72eb10f1fd8f3f03b42f4a2b255b"
    "fc9aa9e3ffffffff0250c30000000000001976a91492461bde6283b461ece7ddf4dbf1e0a48bd113d888ac08"
    "88fc04000000001976a914990ef60d63b5b5964a1c2282061af45123e93fcb88ac00000000"
)
BITCASH_TXID = "f7e1086edae26fee6ad5efcf9d2c2ff6126c468ddc3a35ed4df51ad557b56ce0"
BITCASH_SPENT_SCRIPT = bytes.fromhex("76a91492461bde6283b461ece7ddf4dbf1e0a48bd113d888ac")
BITCASH_SPENT_VALUE = 83727960

# Trust Wallet Core's tests (rust/tw_tests/tests/chains/bitcoincash/test_cases.rs,
# transfer_96ee20): a key, the coin it spends (its address given without the prefix) and
# the signed transaction, broadcast and mined on mainnet as 96ee2000…bbb4. The coin pays
# a legacy address and a prefixed CashAddr; the transaction is version 1.
TRUST_WALLET_KEY = bytes.fromhex("7fdafb9db5bc501f2096e7d13d331dc7a75d9594af3d251313ba8b6200f4e384")
TRUST_WALLET_COIN = Coin(
    "050d00e2e18ef13969606f1ceee290d3f49bd940684ce39898159352952b8ce2",
    2,
    5151,
    "qzhlrcrcne07x94h99thved2pgzdtv8ccujjy73xya",
)
TRUST_WALLET_PAYEES = [
    ("1Bp9U1ogV3A14FMvKbRJms7ctyso4Z4Tcx", 600),
    ("bitcoincash:qz0q3xmg38sr94rw8wg45vujah7kzma3cskxymnw06", 4325),
]
TRUST_WALLET_SIGHASH = "1136d4975aee4ff6ccf0b8a9c640532f563b48d9856fdc9682c37a071702937c"
TRUST_WALLET_TX = bytes.fromhex(
    "0100000001e28c2b955293159898e34c6840d99bf4d390e2ee1c6f606939f18ee1e2000d05020000006b4830"
    "45022100b70d158b43cbcded60e6977e93f9a84966bc0cec6f2dfd1463d1223a90563f0d02207548d081069d"
    "e570a494d0967ba388ff02641d91cadb060587ead95a98d4e3534121038eab72ec78e639d02758e7860cdec0"
    "18b49498c307791f785aa3019622f4ea5bffffffff0258020000000000001976a914769bdff96a02f9135a1d"
    "19b749db6a78fe07dc9088ace5100000000000001976a9149e089b6889e032d46e3b915a3392edfd616fb1c4"
    "88ac00000000"
)
TRUST_WALLET_TXID = "96ee20002b34e468f9d3c5ee54f6a8ddaa61c118889c4f35395c2cd93ba5bbb4"


# ---------------------------------------------------------------------------------------
# Helpers.


def make_key(label: str) -> bytes:
    """A private key for tests that need more than the published ones."""
    return hashlib.sha256(label.encode()).digest()


def public_key(private: bytes) -> bytes:
    return ec.PrivateKey(private).get_public_key().sec()


def outputs_to(payees: list[tuple[str, int]], address_format: CashAddressFormat = BCH_MAINNET):
    return [
        TransactionOutput(units, Script(address_format.script_pubkey(address)))
        for address, units in payees
    ]


def pushes(script: bytes) -> list[bytes]:
    """The data of a scriptSig made of direct pushes only."""
    items, offset = [], 0
    while offset < len(script):
        length = script[offset]
        assert 0 < length < 0x4C, "not a direct push"
        items.append(script[offset + 1 : offset + 1 + length])
        offset += 1 + length
    assert offset == len(script)
    return items


def der_s(der: bytes) -> int:
    """The s of a DER-encoded ECDSA signature."""
    assert der[0] == 0x30 and der[1] == len(der) - 2 and der[2] == 0x02
    r_length = der[3]
    assert der[4 + r_length] == 0x02
    s_length = der[5 + r_length]
    return int.from_bytes(der[6 + r_length : 6 + r_length + s_length], "big")


def assert_signed(tx: Transaction, coins: list[Coin], address_format: CashAddressFormat):
    """Every input: final, no witness, `<DER signature + 0x41> <compressed key>`, the key
    of the coin's address, a low-S signature that verifies against the forkid digest."""
    assert not tx.is_segwit
    for index, coin in enumerate(coins):
        spent = tx.vin[index]
        assert spent.sequence == FINAL_SEQUENCE
        signature, public = pushes(spent.script_sig.data)
        assert signature[-1] == SIGHASH_ALL_FORKID
        assert len(public) == 33 and public[0] in (2, 3)
        script = address_format.script_pubkey(coin.address)
        assert script == address_format.script_pubkey(address_format.from_public_key(public))
        digest = forkid_sighash(tx, index, script, coin.units)
        der = signature[:-1]
        assert ec.PublicKey.parse(public).verify(ec.Signature.parse(der), digest)
        assert der_s(der) <= CURVE_ORDER // 2


# ---------------------------------------------------------------------------------------
# Addresses.


@pytest.mark.parametrize(("legacy", "cashaddr"), SPEC_TRANSLATIONS)
def test_spec_translations_normalize_to_cashaddr(legacy, cashaddr):
    assert BCH_MAINNET.normalize(legacy) == cashaddr
    assert BCH_MAINNET.normalize(cashaddr) == cashaddr
    assert BCH_MAINNET.script_pubkey(legacy) == BCH_MAINNET.script_pubkey(cashaddr)


@pytest.mark.parametrize(("address_format", "address", "script"), SPEC_HASHES)
def test_spec_hashes_decode_to_their_scripts(address_format, address, script):
    assert address_format.normalize(address) == address
    assert address_format.script_pubkey(address).hex() == script
    without_prefix = address.split(":")[1]
    assert address_format.script_pubkey(without_prefix).hex() == script
    # And from the hash to the address, through the legacy spelling of the same hash.
    if script.startswith("76a914"):
        legacy = bytes([address_format.p2pkh_version]) + bytes.fromhex(script[6:46])
    else:
        legacy = bytes([address_format.p2sh_version]) + bytes.fromhex(script[4:44])
    assert address_format.normalize(Base58Encoder.CheckEncode(legacy)) == address


@pytest.mark.parametrize(("address_format", "address"), BITCASH_ADDRESSES)
def test_addresses_of_a_published_key(address_format, address):
    assert address_format.from_public_key(public_key(BITCASH_KEY)) == address
    assert address_format.normalize(address) == address


def test_the_mined_transactions_key_has_its_coins_address():
    derived = BCH_MAINNET.from_public_key(public_key(TRUST_WALLET_KEY))
    assert derived == "bitcoincash:" + TRUST_WALLET_COIN.address


@pytest.mark.parametrize(("address_format", "legacy", "cashaddr"), BITCASH_LEGACY)
def test_legacy_addresses_of_each_network_normalize_to_its_prefix(address_format, legacy, cashaddr):
    assert address_format.normalize(legacy) == cashaddr
    assert address_format.script_pubkey(legacy) == address_format.script_pubkey(cashaddr)


@pytest.mark.parametrize(("address_format", "address"), BITCASH_P2SH)
def test_p2sh_addresses_of_each_prefix_pay_the_same_script(address_format, address):
    assert address_format.normalize(address) == address
    assert address_format.script_pubkey(address) == bytes.fromhex(
        "a91455131efb7a0edd4c76cc3bbe833bfc59a6f73c6b87"
    )


@pytest.mark.parametrize(
    "spelled",
    [
        "BITCOINCASH:QPM2QSZNHKS23Z7629MMS6S4CWEF74VCWVY22GDX6A",
        "QPM2QSZNHKS23Z7629MMS6S4CWEF74VCWVY22GDX6A",
        "qpm2qsznhks23z7629mms6s4cwef74vcwvy22gdx6a",
        "  bitcoincash:qpm2qsznhks23z7629mms6s4cwef74vcwvy22gdx6a\n",
    ],
)
def test_one_case_with_or_without_the_prefix_is_accepted(spelled):
    assert (
        BCH_MAINNET.normalize(spelled) == "bitcoincash:qpm2qsznhks23z7629mms6s4cwef74vcwvy22gdx6a"
    )


@pytest.mark.parametrize(
    ("address_format", "address"),
    [
        # Mixed case, in the payload or in the prefix.
        (BCH_MAINNET, "bitcoincash:qpm2qsznhks23z7629mms6s4cwef74vcwvy22gdx6A"),
        (BCH_MAINNET, "BitcoinCash:qpm2qsznhks23z7629mms6s4cwef74vcwvy22gdx6a"),
        (BCH_MAINNET, "Qpm2qsznhks23z7629mms6s4cwef74vcwvy22gdx6a"),
        # A bad checksum (last character changed) and a swapped pair of characters.
        (BCH_MAINNET, "bitcoincash:qpm2qsznhks23z7629mms6s4cwef74vcwvy22gdx6q"),
        (BCH_MAINNET, "bitcoincash:qpm2qsznhks23z7629mms6s4cwef74vcwvy22gxd6a"),
        # Another network's prefix, given or implied by the checksum.
        (BCH_MAINNET, "bchtest:pr6m7j9njldwwzlg9v7v53unlr4jkmx6eyvwc0uz5t"),
        (BCH_MAINNET, "pr6m7j9njldwwzlg9v7v53unlr4jkmx6eyvwc0uz5t"),
        (BCH_TESTNET, "bitcoincash:qpm2qsznhks23z7629mms6s4cwef74vcwvy22gdx6a"),
        (BCH_TESTNET, "qpm2qsznhks23z7629mms6s4cwef74vcwvy22gdx6a"),
        (BCH_TESTNET, "bchreg:qrv9c2m36qrqkzwf3p4whq272zv3mksjf5ln6v9le5"),
        (BCH_MAINNET, "pref:pr6m7j9njldwwzlg9v7v53unlr4jkmx6ey65nvtks5"),
        (BCH_MAINNET, "bitcoincash:bitcoincash:qpm2qsznhks23z7629mms6s4cwef74vcwvy22gdx6a"),
        # Valid checksums over payloads Paydesk does not pay: the spec's checksum-only
        # vector, a 192-bit and a 256-bit hash (spec), a token-aware P2PKH address (Bitcoin
        # Cash Node's cashaddrenc_tests) and a P2SH32 address (bitcash's samples).
        (BCH_MAINNET, "bitcoincash:qpzry9x8gf2tvdw0s3jn54khce6mua7lcw20ayyn"),
        (BCH_MAINNET, "bitcoincash:q9adhakpwzztepkpwp5z0dq62m6u5v5xtyj7j3h2ws4mr9g0"),
        (BCH_MAINNET, "bitcoincash:qvch8mmxy0rtfrlarg7ucrxxfzds5pamg73h7370aa87d80gyhqxq5nlegake"),
        (BCH_MAINNET, "bitcoincash:zr6m7j9njldwwzlg9v7v53unlr4jkmx6eycnjehshe"),
        (BCH_MAINNET, "bitcoincash:pvch8mmxy0rtfrlarg7ucrxxfzds5pamg73h7370aa87d80gyhqxqaw3dsfwg"),
        # Legacy addresses of another network, one with a bad checksum, Bitcoin's segwit.
        (BCH_MAINNET, "muUFbvTKDEokGTVUjScMhw1QF2rtv5hxCz"),
        (BCH_TESTNET, "1ExJJsNLQDNVVM1s1sdyt1o5P3GC5r32UG"),
        (BCH_MAINNET, "1ExJJsNLQDNVVM1s1sdyt1o5P3GC5r32UH"),
        (BCH_MAINNET, "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"),
        (BCH_MAINNET, ""),
        (BCH_MAINNET, "bitcoincash:"),
        (BCH_MAINNET, "q" * 200),
    ],
)
def test_invalid_or_foreign_addresses_are_refused(address_format, address):
    assert address_format.normalize(address) is None
    with pytest.raises(ValueError):
        address_format.script_pubkey(address)


def test_no_segwit():
    assert BCH_MAINNET.segwit is False
    assert CashAddressFormat("bchtest", 111, None).segwit is False


def test_without_a_legacy_p2sh_version_only_cashaddr_p2sh_is_accepted():
    address_format = CashAddressFormat("bitcoincash", 0, None)
    assert address_format.normalize("3CWFddi6m4ndiGyKqzYvsFYagqDLPVMTzC") is None
    cashaddr = "bitcoincash:ppm2qsznhks23z7629mms6s4cwef74vcwvn0h829pq"
    assert address_format.normalize(cashaddr) == cashaddr


# ---------------------------------------------------------------------------------------
# The digest.


@pytest.mark.parametrize(("raw", "script", "index", "hash_type", "expected"), SIGHASH_ROWS)
def test_forkid_digest_matches_the_nodes_test_data(raw, script, index, hash_type, expected):
    tx = Transaction.parse(raw)
    digest = forkid_sighash(tx, index, bytes.fromhex(script), 0, hash_type & 0xFFFFFFFF)
    assert digest == bytes.fromhex(expected)[::-1]


@pytest.mark.parametrize(("hash_type", "expected"), BIP143_MULTISIG_DIGESTS)
def test_the_bip143_layout_for_every_sighash_type(hash_type, expected):
    tx = Transaction.parse(BIP143_MULTISIG_TX)
    digest = _bip143_digest(tx, 0, BIP143_MULTISIG_SCRIPT, BIP143_MULTISIG_VALUE, hash_type)
    assert digest.hex() == expected


def test_single_without_a_matching_output_hashes_no_outputs():
    tx = Transaction.parse(BIP143_P2WSH_TX)
    digest = _bip143_digest(tx, 1, BIP143_P2WSH_SCRIPT, BIP143_P2WSH_VALUE, 0x03)
    assert digest.hex() == BIP143_P2WSH_SINGLE_DIGEST


def test_a_published_signature_verifies_against_the_digest():
    tx = Transaction.parse(BITCASH_TX)
    assert tx.txid().hex() == BITCASH_TXID
    digest = forkid_sighash(tx, 0, BITCASH_SPENT_SCRIPT, BITCASH_SPENT_VALUE)
    signature, public = pushes(tx.vin[0].script_sig.data)
    assert signature[-1] == SIGHASH_ALL_FORKID
    assert public == ec.PrivateKey(BITCASH_KEY, compressed=False).get_public_key().sec()
    assert ec.PublicKey.parse(public).verify(ec.Signature.parse(signature[:-1]), digest)
    # RFC6979 makes the signature deterministic: the same key signs the same bytes.
    ours = ec.PrivateKey(BITCASH_KEY).sign(digest, grind=False).serialize()
    assert ours == signature[:-1]


@pytest.mark.parametrize(
    "hash_type",
    [
        0x01,  # no fork id: Bitcoin's legacy digest, refused by Bitcoin Cash
        0x81,
        0x61,  # SIGHASH_UTXOS
        -1644732552 & 0xFFFFFFFF,  # a sighash.json row with the forkid and UTXOS bits
        -1,
        1 << 32,
    ],
)
def test_sighash_types_refused(hash_type):
    tx = Transaction.parse(SIGHASH_ROW_D)
    with pytest.raises(ValueError):
        forkid_sighash(tx, 0, b"", 0, hash_type)


def test_an_input_the_transaction_lacks_is_refused():
    tx = Transaction.parse(SIGHASH_ROW_D)
    with pytest.raises(ValueError):
        forkid_sighash(tx, 1, b"", 0)


# ---------------------------------------------------------------------------------------
# Signing.


def test_signing_reproduces_a_mined_transaction_byte_for_byte():
    keys = {TRUST_WALLET_COIN.address: TRUST_WALLET_KEY}
    outputs = outputs_to(TRUST_WALLET_PAYEES)
    tx = sign_forkid_transaction([TRUST_WALLET_COIN], outputs, keys, BCH_MAINNET, version=1)
    assert tx.serialize() == TRUST_WALLET_TX
    assert tx.txid().hex() == TRUST_WALLET_TXID
    script = BCH_MAINNET.script_pubkey(TRUST_WALLET_COIN.address)
    digest = forkid_sighash(tx, 0, script, TRUST_WALLET_COIN.units)
    assert digest.hex() == TRUST_WALLET_SIGHASH
    assert_signed(tx, [TRUST_WALLET_COIN], BCH_MAINNET)


def test_payouts_are_version_2_final_and_deterministic():
    keys = {TRUST_WALLET_COIN.address: TRUST_WALLET_KEY}
    outputs = outputs_to(TRUST_WALLET_PAYEES)
    tx = sign_forkid_transaction([TRUST_WALLET_COIN], outputs, keys, BCH_MAINNET)
    assert (tx.version, tx.locktime) == (2, 0)
    assert [out.serialize() for out in tx.vout] == [out.serialize() for out in outputs]
    assert_signed(tx, [TRUST_WALLET_COIN], BCH_MAINNET)
    again = sign_forkid_transaction([TRUST_WALLET_COIN], outputs, keys, BCH_MAINNET)
    assert again.serialize() == tx.serialize()
    # Only the version differs from the mined transaction, and with it every signature.
    assert tx.serialize()[4:] != TRUST_WALLET_TX[4:]


def test_several_coins_of_several_keys():
    first, second = make_key("first"), make_key("second")
    first_address = BCH_TESTNET.from_public_key(public_key(first))
    second_cashaddr = BCH_TESTNET.from_public_key(public_key(second))
    # The same hash as a legacy testnet address: a coin may be listed in that spelling.
    second_legacy = P2PKHAddrEncoder.EncodeKey(public_key(second), net_ver=bytes([111]))
    coins = [
        Coin("11" * 32, 0, 150_000, first_address),
        Coin("22" * 32, 3, 70_000, second_legacy),
        Coin("33" * 32, 1, 1_000, first_address),
    ]
    keys = {first_address: first, second_legacy: second}
    outputs = outputs_to([(second_cashaddr, 200_000), (first_address, 20_000)], BCH_TESTNET)
    tx = sign_forkid_transaction(coins, outputs, keys, BCH_TESTNET)
    assert [(inp.txid.hex(), inp.vout) for inp in tx.vin] == [
        (coin.txid, coin.vout) for coin in coins
    ]
    assert_signed(tx, coins, BCH_TESTNET)
    # Each signature commits to its own coin's value.
    script = BCH_TESTNET.script_pubkey(first_address)
    signature, public = pushes(tx.vin[0].script_sig.data)
    wrong_value = forkid_sighash(tx, 0, script, coins[0].units + 1)
    assert not ec.PublicKey.parse(public).verify(ec.Signature.parse(signature[:-1]), wrong_value)


def test_a_missing_key_fails():
    other = BCH_MAINNET.from_public_key(public_key(make_key("other")))
    coins = [TRUST_WALLET_COIN, Coin("44" * 32, 0, 10_000, other)]
    keys = {TRUST_WALLET_COIN.address: TRUST_WALLET_KEY}
    with pytest.raises(SigningFailed, match=other):
        sign_forkid_transaction(coins, outputs_to(TRUST_WALLET_PAYEES), keys, BCH_MAINNET)


@pytest.mark.parametrize(
    ("coin", "key"),
    [
        # Another address's key.
        (TRUST_WALLET_COIN, BITCASH_KEY),
        # A P2SH coin: not spendable with a key alone.
        (Coin("55" * 32, 0, 10_000, "bitcoincash:ppm2qsznhks23z7629mms6s4cwef74vcwvn0h829pq"),
         TRUST_WALLET_KEY),
        # Not an address of this network.
        (Coin("66" * 32, 0, 10_000, "bchtest:qzvsaasdvw6mt9j2rs3gyps673gj86flev3z0s40ln"),
         BITCASH_KEY),
        # Not a private key.
        (TRUST_WALLET_COIN, bytes(32)),
        (TRUST_WALLET_COIN, TRUST_WALLET_KEY[:31]),
    ],
)  # fmt: skip
def test_a_key_that_cannot_sign_its_coin_fails(coin, key):
    with pytest.raises(SigningFailed):
        sign_forkid_transaction(
            [coin], outputs_to(TRUST_WALLET_PAYEES), {coin.address: key}, BCH_MAINNET
        )


def test_nothing_to_spend_fails():
    with pytest.raises(SigningFailed):
        sign_forkid_transaction([], outputs_to(TRUST_WALLET_PAYEES), {}, BCH_MAINNET)


# ---------------------------------------------------------------------------------------
# The payout sender on a Bitcoin Cash Node: it has no `estimatesmartfee` (HTTP 404 and
# JSON-RPC error -32601, as Bitcoin Core answers an unknown method) but `estimatefee`,
# which takes no argument and answers BCH per kB.
class BchnFees(BaseHTTPRequestHandler):
    answers = {
        "estimatefee": {"result": 0.00002, "error": None},
        "getnetworkinfo": {"result": {"relayfee": 0.00001}, "error": None},
    }

    def do_POST(self) -> None:
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        answer = self.answers.get(request["method"])
        status = 200
        if answer is None:
            status = 404
            answer = {"result": None, "error": {"code": -32601, "message": "Method not found"}}
        body = json.dumps({**answer, "id": request["id"]}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


async def test_the_fee_rate_falls_back_to_estimatefee() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), BchnFees)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    network = load_catalogue(["bch"]).network("bch")
    keys = key_ring(" ".join(["abandon"] * 11 + ["about"]))
    sender = UtxoPayoutSender.from_catalogue(
        network, [], f"http://u:p@127.0.0.1:{server.server_address[1]}/", keys.account("bch")
    )
    try:
        assert sender.address_format == BCH_MAINNET
        assert sender.hot_address.startswith("bitcoincash:q")
        assert await sender.fee_rate(6) == Decimal("0.00002")
    finally:
        await sender.close()
        server.shutdown()
        server.server_close()
