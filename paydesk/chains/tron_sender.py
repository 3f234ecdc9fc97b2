"""Payouts on TRON: the hot wallet signs, broadcasts and follows its transfers.

Reads go through a `TronAdapter` (its connection, token table and error translation), so
the sender sees the network as the watcher does. Transactions are built and signed
offline: the raw data is written here in the node's own JSON form, tronpy serializes it
to protobuf for the txid (the SHA-256 of the raw bytes) and signs that txid with the hot
wallet's key. The node never builds a transaction (`createtransaction` and
`triggersmartcontract` are not used) and never sees a key.

TRON has no nonces: what keeps a signed transaction from being mined twice is its txid
(the node refuses a duplicate) and what ends its life is its expiration. A stored
transaction that expired unmined can never be mined, so it is reported like an EVM
transaction whose nonce was taken (`TransferExpired`, a `NonceTaken`): the payout is
signed anew.

Fees: a TRX transfer burns bandwidth (or uses the wallet's free daily bandwidth), plus the
account creation fees when the recipient has no account yet. A TRC-20 transfer also burns
energy, bounded by the transaction's `fee_limit`: the energy is estimated by simulating
the very transfer (`triggerconstantcontract`), priced at the chain's energy fee, less what
energy the wallet has staked.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from tronpy.keys import PrivateKey
from tronpy.proto import calculate_txid_from_raw_data

from paydesk.catalogue.models import Network, Service
from paydesk.chains.adapter import (
    BroadcastRejected,
    ChainMismatch,
    ChainUnavailable,
    HotWalletShort,
    NonceTaken,
    SentTransfer,
    SignedTransfer,
    TransferRefused,
    amount_to_units,
    payee_address,
    units_to_amount,
)
from paydesk.chains.tron import (
    EndpointMissing,
    TronAdapter,
    base58_to_hex,
    receipt_succeeded,
)

SUN = 10**6
#: TRX amounts are protobuf int64.
MAX_SUN = 2**63 - 1
UINT256 = 2**256
#: Payout priorities the payout API knows; TRON prices are fixed by the chain, so they all
#: cost the same.
PRIORITIES = frozenset({"economy", "recommended", "high", "highest"})
#: Upper bounds of a signed transaction's bandwidth in bytes, as the chain counts it
#: (protobuf size plus 64 bytes of result): ~268 for a TRX transfer, ~345 for TRC-20.
TRX_TRANSFER_BYTES = 300
TRC20_TRANSFER_BYTES = 400
#: Headroom over the simulated energy: the real execution may touch colder storage.
ENERGY_MARGIN = (6, 5)
#: Most a TRC-20 payout may burn in energy unless configured otherwise: 100 TRX.
DEFAULT_MAX_FEE_LIMIT = 100 * SUN
#: How long a signed transaction stays valid. Long enough to survive a restart of the
#: worker, short enough that an unsent one is soon known dead and signed anew.
DEFAULT_EXPIRATION_SECONDS = 600

TRANSFER_SELECTOR = "transfer(address,uint256)"
BALANCE_OF_SELECTOR = "balanceOf(address)"

#: Broadcast answers of a busy or badly connected node: nothing wrong with the transaction.
_TRANSIENT = frozenset(
    {"SERVER_BUSY", "NO_CONNECTION", "NOT_ENOUGH_EFFECTIVE_CONNECTION", "BLOCK_UNSOLIDIFIED"}
)
#: The transaction can never be mined: expired, or its reference block is not on the chain.
_DEAD = frozenset({"TRANSACTION_EXPIRATION_ERROR", "TAPOS_ERROR"})


class TransferExpired(NonceTaken):
    """The signed transaction expired (or lost its reference block) without being mined:
    it never can be, so the payout may be signed again. TRON's stand-in for a taken nonce."""


def _word(value: int) -> str:
    return value.to_bytes(32, "big").hex()


def _address_word(address_hex: str) -> str:
    """A "41…" address as an ABI word: the 20-byte body, left-padded."""
    return address_hex[2:].rjust(64, "0")


def _text(message: Any) -> str:
    """A node message: hex of UTF-8 when `visible` is unset, plain text otherwise."""
    text = str(message or "")
    try:
        return bytes.fromhex(text).decode("utf-8")
    except ValueError:
        return text


def _trx(sun: int) -> str:
    """Sun as TRX for a message: no exponent, no trailing zeros."""
    return f"{units_to_amount(sun, 6).normalize():f}"


class TronPayoutSender:
    """One TRON network's hot wallet (a `PayoutSender`): `adapter` reads the node and knows
    the tokens, `private_key` (32 raw bytes) signs."""

    def __init__(
        self,
        adapter: TronAdapter,
        private_key: bytes,
        *,
        max_fee_limit: int = DEFAULT_MAX_FEE_LIMIT,
        expiration_seconds: int = DEFAULT_EXPIRATION_SECONDS,
    ) -> None:
        self._adapter = adapter
        self._key = PrivateKey(bytes(private_key))
        self.network = adapter.network
        self.native = adapter.native
        self.max_fee_limit = max_fee_limit
        self.expiration_seconds = expiration_seconds
        self._hot_hex = self._key.public_key.to_hex_address()
        self._hot_address = self._key.public_key.to_base58check_address()
        self._tokens_by_currency = {
            currency: (contract, decimals)
            for contract, (currency, decimals) in adapter.tokens.items()
        }

    @classmethod
    def from_catalogue(
        cls,
        network: Network,
        services: Iterable[Service],
        url: str,
        private_key: bytes,
        *,
        max_fee_limit: int = DEFAULT_MAX_FEE_LIMIT,
        expiration_seconds: int = DEFAULT_EXPIRATION_SECONDS,
        **options: Any,
    ) -> TronPayoutSender:
        """The sender for a catalogue network; `options` (genesis_id, api_key…) go to
        `TronAdapter`."""
        return cls(
            TronAdapter.from_catalogue(network, services, url, **options),
            private_key,
            max_fee_limit=max_fee_limit,
            expiration_seconds=expiration_seconds,
        )

    @property
    def hot_address(self) -> str:
        return self._hot_address

    @property
    def adapter(self) -> TronAdapter:
        return self._adapter

    # ------------------------------------------------------------------ reads
    async def tip(self) -> int:
        return await self._adapter.tip()

    async def close(self) -> None:
        await self._adapter.close()

    async def next_nonce(self) -> None:
        """TRON accounts have no nonce."""
        return None

    async def balance(self, currency: str) -> Decimal:
        if currency == self.native:
            return units_to_amount(await self._sun(self._hot_hex), self._adapter.native_decimals)
        contract, decimals = self._token(currency)
        return units_to_amount(await self._token_units(contract), decimals)

    async def _account(self, address_hex: str) -> dict[str, Any]:
        """`{}` when the account does not exist (it never received anything)."""
        answer = await self._adapter.post("wallet/getaccount", {"address": address_hex})
        return answer if isinstance(answer, dict) else {}

    async def _sun(self, address_hex: str) -> int:
        return int((await self._account(address_hex)).get("balance", 0))

    async def _constant_call(self, contract: str, selector: str, parameter: str) -> dict[str, Any]:
        """A contract call simulated by the node, as the hot wallet."""
        answer = await self._adapter.post(
            "wallet/triggerconstantcontract",
            {
                "owner_address": self._hot_hex,
                "contract_address": base58_to_hex(contract),
                "function_selector": selector,
                "parameter": parameter,
            },
        )
        result = answer.get("result", {})
        if not result.get("result"):
            message = _text(result.get("message"))
            if result.get("code") == "CONTRACT_VALIDATE_ERROR":
                raise ChainMismatch(f"{self.network}: no contract answers at {contract}: {message}")
            raise ChainUnavailable(f"{self.network}: {selector} at {contract}: {message}")
        return answer  # type: ignore[no-any-return]

    async def _token_units(self, contract: str) -> int:
        answer = await self._constant_call(
            contract, BALANCE_OF_SELECTOR, _address_word(self._hot_hex)
        )
        results = answer.get("constant_result") or [""]
        if len(results[0]) != 64 or _reverted(answer):
            raise ChainMismatch(f"{self.network}: no TRC-20 contract answers at {contract}")
        with self._adapter._unavailable(f"balanceOf at {contract}"):
            return int(results[0], 16)

    async def _chain_parameters(self) -> dict[str, int]:
        answer = await self._adapter.post("wallet/getchainparameters")
        with self._adapter._unavailable("getchainparameters"):
            return {
                str(item["key"]): int(item.get("value", 0))
                for item in answer.get("chainParameter", [])
            }

    def _token(self, currency: str) -> tuple[str, int]:
        token = self._tokens_by_currency.get(currency)
        if token is None:
            raise TransferRefused(f"{self.network} carries no {currency}")
        return token

    async def lookup(self, txid: str) -> SentTransfer | None:
        """In a block: its receipt (a reverted token transfer fails, the fee is the TRX it
        burned for bandwidth and energy). Otherwise in the node's pending pool, or unknown."""
        info = await self._adapter.post("wallet/gettransactioninfobyid", {"value": txid})
        if info:
            with self._adapter._unavailable(f"the receipt of {txid}"):
                return SentTransfer(
                    block_height=int(info["blockNumber"]),
                    succeeded=receipt_succeeded(info),
                    fee=units_to_amount(int(info.get("fee", 0)), self._adapter.native_decimals),
                )
        try:
            pending = await self._adapter.post("wallet/gettransactionfrompending", {"value": txid})
        except EndpointMissing:
            # A provider without the pending pool: "unknown" makes the caller broadcast the
            # same bytes again, which a node holding them answers as a duplicate.
            return None
        return SentTransfer(block_height=None) if pending else None

    # ------------------------------------------------------------------ signing
    async def sign_transfer(
        self,
        to: str,
        currency: str,
        amount: Decimal,
        *,
        nonce: int | None = None,
        priority: str = "recommended",
    ) -> SignedTransfer:
        """A TRX (`TransferContract`) or TRC-20 (`TriggerSmartContract` calling
        `transfer(address,uint256)`) transfer, signed offline. Raises HotWalletShort when
        the wallet cannot pay the amount and the fee now, or when the token transfer would
        fail (the simulation reverts)."""
        if nonce is not None:
            raise ValueError(f"{self.network} transactions have no nonce, not {nonce!r}")
        if priority not in PRIORITIES:
            raise TransferRefused(f"unknown priority {priority!r}")
        recipient = payee_address(self._adapter, to)
        if recipient == self.hot_address:
            raise TransferRefused(f"{self.network}: the hot wallet cannot pay itself")
        contract: str | None = None
        decimals, limit = self._adapter.native_decimals, MAX_SUN
        if currency != self.native:
            contract, decimals = self._token(currency)
            limit = UINT256
        try:
            units = amount_to_units(amount, decimals, limit)
        except ValueError as exc:
            raise TransferRefused(f"{self.network} {currency}: {exc}") from None
        recipient_hex = base58_to_hex(recipient)

        if contract is None:
            raw, max_fee = await self._native_transfer(recipient_hex, units, amount)
        else:
            raw, max_fee = await self._token_transfer(contract, currency, recipient_hex, units)
        txid = calculate_txid_from_raw_data(raw)
        signature = self._key.sign_msg_hash(bytes.fromhex(txid)).hex()
        signed = {"visible": False, "txID": txid, "raw_data": raw, "signature": [signature]}
        return SignedTransfer(
            txid=txid,
            raw=json.dumps(signed, separators=(",", ":"), sort_keys=True),
            from_address=self.hot_address,
            nonce=None,
            max_fee=units_to_amount(max_fee, self._adapter.native_decimals),
        )

    async def _native_transfer(
        self, recipient_hex: str, sun: int, amount: Decimal
    ) -> tuple[dict[str, Any], int]:
        ref, account, resources, params, recipient = await asyncio.gather(
            self._reference(),
            self._account(self._hot_hex),
            self._resources(),
            self._chain_parameters(),
            self._account(recipient_hex),
        )
        held = int(account.get("balance", 0))
        if recipient:
            fee = self._bandwidth_fee(TRX_TRANSFER_BYTES, resources, params)
        else:
            # A transfer to an address without an account creates it, for a fee.
            fee = params.get("getCreateAccountFee", 0) + params.get(
                "getCreateNewAccountFeeInSystemContract", 0
            )
        if held < sun + fee:
            raise HotWalletShort(
                f"{self.network}: the hot wallet {self.hot_address} holds {_trx(held)} "
                f"{self.native}, needs {_trx(sun + fee)} {self.native} ({amount:f} to send "
                f"and up to {_trx(fee)} in network fees)"
            )
        value = {"amount": sun, "owner_address": self._hot_hex, "to_address": recipient_hex}
        return self._raw("TransferContract", value, ref), fee

    async def _token_transfer(
        self, contract: str, currency: str, recipient_hex: str, units: int
    ) -> tuple[dict[str, Any], int]:
        _, decimals = self._token(currency)
        parameter = _address_word(recipient_hex) + _word(units)
        ref, account, resources, params, held_units = await asyncio.gather(
            self._reference(),
            self._account(self._hot_hex),
            self._resources(),
            self._chain_parameters(),
            self._token_units(contract),
        )
        if held_units < units:
            raise HotWalletShort(
                f"{self.network}: the hot wallet {self.hot_address} holds "
                f"{units_to_amount(held_units, decimals).normalize():f} {currency}, "
                f"{units_to_amount(units, decimals).normalize():f} {currency} are to be sent"
            )
        simulated = await self._constant_call(contract, TRANSFER_SELECTOR, parameter)
        if _reverted(simulated):
            raise HotWalletShort(
                f"{self.network}: the {currency} transfer from the hot wallet "
                f"{self.hot_address} would fail: {_text(simulated['result'].get('message'))}"
            )
        numerator, denominator = ENERGY_MARGIN
        energy = -(-int(simulated.get("energy_used", 0)) * numerator // denominator)
        energy_price = params.get("getEnergyFee", 0)
        fee_limit = energy * energy_price
        if fee_limit > self.max_fee_limit:
            raise HotWalletShort(
                f"{self.network}: a {currency} transfer needs {energy} energy, up to "
                f"{_trx(fee_limit)} {self.native}: more than the {_trx(self.max_fee_limit)} "
                f"{self.native} a payout may burn"
            )
        staked = max(0, int(resources.get("EnergyLimit", 0)) - int(resources.get("EnergyUsed", 0)))
        bandwidth_fee = self._bandwidth_fee(TRC20_TRANSFER_BYTES, resources, params)
        burn = max(0, energy - staked) * energy_price + bandwidth_fee
        held = int(account.get("balance", 0))
        if held < burn:
            raise HotWalletShort(
                f"{self.network}: the hot wallet {self.hot_address} holds {_trx(held)} "
                f"{self.native}, a {currency} transfer burns up to {_trx(burn)} "
                f"{self.native} in energy and bandwidth"
            )
        value = {
            "data": "a9059cbb" + parameter,
            "owner_address": self._hot_hex,
            "contract_address": base58_to_hex(contract),
        }
        raw = self._raw("TriggerSmartContract", value, ref)
        raw["fee_limit"] = max(fee_limit, 1)
        return raw, raw["fee_limit"] + bandwidth_fee

    async def _resources(self) -> dict[str, Any]:
        answer = await self._adapter.post("wallet/getaccountresource", {"address": self._hot_hex})
        return answer if isinstance(answer, dict) else {}

    @staticmethod
    def _bandwidth_fee(size: int, resources: dict[str, Any], params: dict[str, int]) -> int:
        """Nothing when the wallet's free or staked bandwidth covers the transaction, else
        its size burned at the chain's price per byte (the node uses one or the other)."""
        free = int(resources.get("freeNetLimit", 0)) - int(resources.get("freeNetUsed", 0))
        staked = int(resources.get("NetLimit", 0)) - int(resources.get("NetUsed", 0))
        if max(free, staked) >= size:
            return 0
        return size * params.get("getTransactionFee", 0)

    async def _reference(self) -> tuple[str, int]:
        """The block id transactions refer to (TaPoS): the newest solidified one, which no
        reorganisation can take away (java-tron's own `createtransaction` does the same)."""
        header = await self._adapter.solid_header()
        return header.hash, header.timestamp

    def _raw(self, kind: str, value: dict[str, Any], ref: tuple[str, int]) -> dict[str, Any]:
        """A transaction's raw_data in the node's JSON form (hex addresses). It expires
        `expiration_seconds` after the later of now and the reference block's time."""
        block_id, block_seconds = ref
        now_ms = int(time.time() * 1000)
        start = max(now_ms, block_seconds * 1000)
        return {
            "contract": [
                {
                    "parameter": {
                        "value": value,
                        "type_url": f"type.googleapis.com/protocol.{kind}",
                    },
                    "type": kind,
                }
            ],
            # The reference block's number (its last two bytes) and part of its hash.
            "ref_block_bytes": block_id[12:16],
            "ref_block_hash": block_id[16:32],
            "expiration": start + self.expiration_seconds * 1000,
            "timestamp": now_ms,
        }

    # ------------------------------------------------------------------ broadcasting
    async def broadcast(self, transfer: SignedTransfer) -> None:
        """Send the signed transaction. The node's answer code tells a duplicate (fine) from
        a busy node (try later) and from a refusal; a refused transaction the node has
        nevertheless (mined, or pending from an earlier broadcast) counts as sent."""
        try:
            body = json.loads(transfer.raw)
        except ValueError as exc:
            raise TransferRefused(f"{self.network}: {transfer.txid} is no transaction") from exc
        answer = await self._adapter.post("wallet/broadcasttransaction", body, node_errors=True)
        if not isinstance(answer, dict):
            raise ChainUnavailable(f"{self.network}: broadcasttransaction answered {answer!r}")
        if answer.get("result") is True:
            return
        code = answer.get("code")
        text = _text(answer.get("message")) or str(answer.get("Error") or answer)
        if code == "DUP_TRANSACTION_ERROR":
            return
        if code in _TRANSIENT:
            raise ChainUnavailable(f"{self.network}: broadcasttransaction: {code} {text}")
        if code == "BANDWITH_ERROR":
            # The wallet cannot pay the bandwidth now; the same bytes may pass after a
            # top-up, until they expire (and are then signed anew).
            raise ChainUnavailable(
                f"{self.network}: the hot wallet cannot pay the bandwidth of "
                f"{transfer.txid} yet: {code} {text}"
            )
        if await self.lookup(transfer.txid) is not None:
            return
        if code in _DEAD:
            raise TransferExpired(
                f"{self.network}: {transfer.txid} can never be mined ({code}: {text})"
            )
        raise BroadcastRejected(
            f"{self.network}: the node refused {transfer.txid}: {code or 'error'} {text}"
        )


def _reverted(answer: dict[str, Any]) -> bool:
    """Whether a simulated call failed: the node marks it on the transaction's result."""
    ret = (answer.get("transaction") or {}).get("ret") or [{}]
    return ret[0].get("ret") == "FAILED"
