"""Addresses of the Bitcoin family, spelled as the network's catalogue entry says (mainnet,
testnet and regtest differ only in their prefixes): deriving them from a public key,
checking what a payer or merchant typed, and turning one into the script it pays. Bitcoin
Cash spells them in CashAddr (`bitcoincash:q…`, a checksum over the prefix too, so one
network's address never passes for another's); its legacy base58 addresses still read."""

from __future__ import annotations

from dataclasses import dataclass

from bip_utils import (
    Base58Decoder,
    BchP2PKHAddrDecoder,
    BchP2PKHAddrEncoder,
    BchP2SHAddrDecoder,
    P2PKHAddrEncoder,
    P2WPKHAddrEncoder,
    SegwitBech32Decoder,
)
from bip_utils.bech32 import BchBech32Encoder

from paydesk.catalogue.models import Network

#: Witness programs a native segwit address may carry: P2WPKH, P2WSH, P2TR.
_PROGRAM_LENGTHS = {0: (20, 32), 1: (32,)}
_OP_DUP, _OP_HASH160, _OP_EQUALVERIFY, _OP_CHECKSIG, _OP_EQUAL = 0x76, 0xA9, 0x88, 0xAC, 0x87
#: CashAddr version bytes of a 160-bit hash: P2PKH and P2SH (the only kinds Paydesk pays).
_CASH_P2PKH, _CASH_P2SH = b"\x00", b"\x08"
_MAX_ADDRESS_LENGTH = 100


def p2pkh_script(key_hash: bytes) -> bytes:
    return bytes([_OP_DUP, _OP_HASH160, 20]) + key_hash + bytes([_OP_EQUALVERIFY, _OP_CHECKSIG])


def p2sh_script(script_hash: bytes) -> bytes:
    return bytes([_OP_HASH160, 20]) + script_hash + bytes([_OP_EQUAL])


def _base58_payload(address: str) -> tuple[int, bytes]:
    """(version byte, 20-byte hash) of a base58check address (ValueError otherwise)."""
    try:
        payload = Base58Decoder.CheckDecode(address)
    except Exception as exc:  # bip-utils raises several types for bad input
        raise ValueError(str(exc)) from None
    if len(payload) != 21:
        raise ValueError("not a base58 address")
    return payload[0], payload[1:]


class UnsupportedNetwork(ValueError):
    """The network's entry does not say how its addresses are spelled."""


def address_format_of(network: Network) -> UtxoAddressFormat | CashAddressFormat:
    """How a Bitcoin-family network spells addresses: CashAddr where the catalogue gives
    a `cashaddr_prefix` (Bitcoin Cash), else bech32 and base58."""
    if network.family == "utxo" and network.cashaddr_prefix and network.p2pkh_version is not None:
        return CashAddressFormat(
            network.cashaddr_prefix, network.p2pkh_version, network.p2sh_version
        )
    return UtxoAddressFormat.of(network)


class _ScriptAddresses:
    """What both spellings offer, over their `_script_and_spelling`."""

    __slots__ = ()

    def normalize(self, address: str) -> str | None:
        """The canonical spelling of a valid address of this network, or None."""
        try:
            return self._parse(address)[1]
        except ValueError:
            return None

    def script_pubkey(self, address: str) -> bytes:
        """The output script paying `address` (ValueError for an invalid one)."""
        return self._parse(address)[0]

    def _parse(self, address: str) -> tuple[bytes, str]:
        address = address.strip()
        if not address or len(address) > _MAX_ADDRESS_LENGTH:
            raise ValueError("not an address")
        return self._script_and_spelling(address)

    def _script_and_spelling(self, address: str) -> tuple[bytes, str]:
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class UtxoAddressFormat(_ScriptAddresses):
    bech32_hrp: str | None
    p2pkh_version: int
    p2sh_version: int | None
    #: Paydesk's own addresses (deposits, hot wallet, change) are native segwit (P2WPKH)
    #: rather than P2PKH: what the key path's purpose says (84' or 44').
    witness: bool = True

    @classmethod
    def of(cls, network: Network) -> UtxoAddressFormat:
        if network.family != "utxo" or network.p2pkh_version is None:
            raise UnsupportedNetwork(f"{network.code} has no address format in the catalogue")
        witness = network.key_path is not None and network.key_path[0] == 84
        return cls(network.bech32_hrp, network.p2pkh_version, network.p2sh_version, witness)

    @property
    def segwit(self) -> bool:
        """The network has native segwit addresses (a payee may give one)."""
        return self.bech32_hrp is not None

    def from_public_key(self, public_key: bytes) -> str:
        """The address Paydesk gives out for a key: P2WPKH on a BIP84 path, else P2PKH."""
        if self.witness and self.bech32_hrp is not None:
            return P2WPKHAddrEncoder.EncodeKey(public_key, hrp=self.bech32_hrp, wit_ver=0)
        return P2PKHAddrEncoder.EncodeKey(public_key, net_ver=bytes([self.p2pkh_version]))

    def _script_and_spelling(self, address: str) -> tuple[bytes, str]:
        """Bech32 (spelled in lower case) or base58."""
        if self.bech32_hrp is not None and address.lower().startswith(self.bech32_hrp + "1"):
            if address != address.lower() and address != address.upper():
                raise ValueError("mixed case")
            spelled = address.lower()
            try:
                version, program = SegwitBech32Decoder.Decode(self.bech32_hrp, spelled)
            except Exception as exc:  # bip-utils raises several types for bad input
                raise ValueError(str(exc)) from None
            if len(program) not in _PROGRAM_LENGTHS.get(version, ()):
                raise ValueError("unknown witness program")
            # bech32 (v0) and bech32m (v1+) checksums are told apart by the decoder.
            opcode = 0 if version == 0 else 0x50 + version
            return bytes([opcode, len(program)]) + program, spelled
        version, key_hash = _base58_payload(address)
        if version == self.p2pkh_version:
            return p2pkh_script(key_hash), address
        if self.p2sh_version is not None and version == self.p2sh_version:
            return p2sh_script(key_hash), address
        raise ValueError("another network's address")


@dataclass(frozen=True, slots=True)
class CashAddressFormat(_ScriptAddresses):
    """The addresses of one Bitcoin Cash network: its CashAddr prefix and the base58
    versions its legacy addresses were written with. Same contract as
    `UtxoAddressFormat`, so the payment and payout code can take either."""

    prefix: str
    p2pkh_version: int
    p2sh_version: int | None

    @property
    def segwit(self) -> bool:
        """Bitcoin Cash never adopted segwit."""
        return False

    #: Paydesk's own addresses are P2PKH, and there is no bech32 spelling.
    witness = False
    bech32_hrp = None

    def from_public_key(self, public_key: bytes) -> str:
        """The CashAddr P2PKH address of a key (of its compressed form, which is the one
        the signer puts in scriptSigs)."""
        return BchP2PKHAddrEncoder.EncodeKey(public_key, hrp=self.prefix, net_ver=_CASH_P2PKH)

    def _script_and_spelling(self, address: str) -> tuple[bytes, str]:
        """CashAddr with or without its prefix, in one case, or a legacy base58 address
        (spelled back in CashAddr)."""
        try:
            return self._cashaddr(address)
        except ValueError as exc:
            if ":" in address:
                raise
            cashaddr_error = exc
        try:
            return self._legacy(address)
        except ValueError:
            raise cashaddr_error from None

    def _cashaddr(self, address: str) -> tuple[bytes, str]:
        # The spec accepts all lower or all upper case (QR codes) and nothing in between.
        if address != address.lower() and address != address.upper():
            raise ValueError("mixed case")
        spelled = address.lower()
        if ":" not in spelled:
            spelled = f"{self.prefix}:{spelled}"
        elif spelled.rpartition(":")[0] != self.prefix:
            raise ValueError("another network's prefix")
        try:
            key_hash = BchP2PKHAddrDecoder.DecodeAddr(spelled, hrp=self.prefix,
                                                      net_ver=_CASH_P2PKH)  # fmt: skip
            return p2pkh_script(key_hash), spelled
        except Exception as p2pkh_error:  # bip-utils raises several types for bad input
            try:
                script_hash = BchP2SHAddrDecoder.DecodeAddr(spelled, hrp=self.prefix,
                                                            net_ver=_CASH_P2SH)  # fmt: skip
            except Exception:
                raise ValueError(str(p2pkh_error)) from None
            return p2sh_script(script_hash), spelled

    def _legacy(self, address: str) -> tuple[bytes, str]:
        version, digest = _base58_payload(address)
        if version == self.p2pkh_version:
            return p2pkh_script(digest), BchBech32Encoder.Encode(self.prefix, _CASH_P2PKH, digest)
        if self.p2sh_version is not None and version == self.p2sh_version:
            return p2sh_script(digest), BchBech32Encoder.Encode(self.prefix, _CASH_P2SH, digest)
        raise ValueError("another network's address")


#: Either spelling: the watcher and the payout sender take both.
AddressFormat = UtxoAddressFormat | CashAddressFormat
