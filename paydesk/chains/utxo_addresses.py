"""Addresses of the Bitcoin family, spelled as the network's catalogue entry says (mainnet,
testnet and regtest differ only in their prefixes): deriving them from a public key,
checking what a payer or merchant typed, and turning one into the script it pays."""

from __future__ import annotations

from dataclasses import dataclass

from bip_utils import (
    Base58Decoder,
    P2PKHAddrEncoder,
    P2WPKHAddrEncoder,
    SegwitBech32Decoder,
)

from paydesk.catalogue.models import Network
from paydesk.chains.bitcoin_cash import CashAddressFormat

#: Witness programs a native segwit address may carry: P2WPKH, P2WSH, P2TR.
_PROGRAM_LENGTHS = {0: (20, 32), 1: (32,)}
_OP_DUP, _OP_HASH160, _OP_EQUALVERIFY, _OP_CHECKSIG, _OP_EQUAL = 0x76, 0xA9, 0x88, 0xAC, 0x87


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


@dataclass(frozen=True, slots=True)
class UtxoAddressFormat:
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

    def normalize(self, address: str) -> str | None:
        """The canonical spelling (bech32 in lower case) of a valid address of this
        network, or None."""
        try:
            return self._script_and_spelling(address.strip())[1]
        except ValueError:
            return None

    def script_pubkey(self, address: str) -> bytes:
        """The output script paying `address` (ValueError for an invalid one)."""
        return self._script_and_spelling(address.strip())[0]

    def _script_and_spelling(self, address: str) -> tuple[bytes, str]:
        if not address or len(address) > 100:
            raise ValueError("not an address")
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
        try:
            payload = Base58Decoder.CheckDecode(address)
        except Exception as exc:
            raise ValueError(str(exc)) from None
        if len(payload) != 21:
            raise ValueError("not a base58 address")
        version, key_hash = payload[0], payload[1:]
        if version == self.p2pkh_version:
            script = bytes([_OP_DUP, _OP_HASH160, 20]) + key_hash
            return script + bytes([_OP_EQUALVERIFY, _OP_CHECKSIG]), address
        if self.p2sh_version is not None and version == self.p2sh_version:
            return bytes([_OP_HASH160, 20]) + key_hash + bytes([_OP_EQUAL]), address
        raise ValueError("another network's address")


#: Either spelling: the watcher and the payout sender take both.
AddressFormat = UtxoAddressFormat | CashAddressFormat
