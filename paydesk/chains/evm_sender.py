"""Payouts on EVM networks: the hot wallet signs, broadcasts and follows its transfers.

Reads go through an `EvmAdapter` (its node connection, token table and error translation),
so a sender sees the network exactly as the watcher does. Signing is offline, with the hot
wallet's private key: the node never holds a key and `eth_sendTransaction` is never used.

A transfer is signed first and broadcast second. Its hash (the keccak of the signed bytes)
is known before the node sees it, so the caller can store it, crash, and send the very same
bytes again; `broadcast` therefore treats "the node already has it" as success.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from decimal import Decimal
from typing import Any, cast

from eth_abi import decode, encode
from eth_account import Account
from eth_utils import function_signature_to_4byte_selector, keccak
from hexbytes import HexBytes
from web3.exceptions import ContractLogicError, TransactionNotFound
from web3.types import RPCEndpoint, TxParams

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
from paydesk.chains.evm import EvmAdapter

GWEI = 10**9
#: What a plain value transfer to an address without code costs, on every EVM chain that
#: prices gas like Ethereum.
PLAIN_TRANSFER_GAS = 21_000
#: Tip used when the node cannot suggest one (`eth_maxPriorityFeePerGas` is not standard).
FALLBACK_TIP = 1 * GWEI
#: Headroom over a gas estimate: unused gas is refunded, running out fails the transfer.
GAS_MARGIN = (6, 5)
#: Tip multipliers (numerator, denominator) of each payout priority; integers only.
PRIORITY_TIP_SCALE: dict[str, tuple[int, int]] = {
    "economy": (1, 1),
    "recommended": (1, 1),
    "high": (3, 2),
    "highest": (2, 1),
}

TRANSFER_SELECTOR = function_signature_to_4byte_selector("transfer(address,uint256)")
BALANCE_OF_SELECTOR = function_signature_to_4byte_selector("balanceOf(address)")

# Node answers to eth_sendRawTransaction, matched on the message in words: "AlreadyKnown",
# "ALREADY_EXISTS" and "already known" all read the same (see `_words`).
#: The node already holds this very transaction (geth, anvil, Nethermind, Besu, Erigon).
_ALREADY_KNOWN = re.compile(r"\b(already known|known transaction|already imported)\b")
#: The nonce was used: by this transaction (mined) or by another one.
_NONCE_USED = re.compile(
    r"\b(nonce too low|nonce is too low|old nonce|nonce has already been used)\b"
)
#: The node is overloaded or rate-limits us: nothing is wrong with the transaction.
_TRANSIENT = re.compile(
    r"\b(rate limit(ed)?|too many requests|limit exceeded|(tx ?|transaction )pool is full"
    r"|timeout|timed out)\b"
)
_UINT256 = 2**256

#: JSON-RPC codes of a busy or failing node (EIP-1474 "limit exceeded", internal error).
_TRANSIENT_CODES = frozenset({-32005, -32603})


def _show(units: int, decimals: int) -> str:
    """Units as whole coins for a message: all decimals, no exponent ("0E-18")."""
    return f"{units_to_amount(units, decimals):f}"


def _words(message: str) -> str:
    """A node message in lowercase words: camel case and underscores become spaces."""
    spaced = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", message)
    return " ".join(re.split(r"[\s_\-]+", spaced.lower()))


def _error_text(error: Any) -> str:
    if isinstance(error, dict):
        message = str(error.get("message") or "")
        data = error.get("data")
        if isinstance(data, str) and data and not data.startswith("0x"):
            message = f"{message}: {data}" if message else data
        return message or repr(error)
    return str(error)


class EvmPayoutSender:
    """One EVM network's hot wallet (a `PayoutSender`): `adapter` reads the node and knows
    the tokens, `private_key` (32 raw bytes) signs."""

    def __init__(self, adapter: EvmAdapter, private_key: bytes) -> None:
        self._adapter = adapter
        self._account = Account.from_key(private_key)
        self.network = adapter.network
        self.native = adapter.native
        self._tokens_by_currency = {
            currency: (contract, decimals)
            for contract, (currency, decimals) in adapter.tokens.items()
        }
        self._chain_id: int | None = None

    @classmethod
    def from_catalogue(
        cls,
        network: Network,
        services: Iterable[Service],
        url: str,
        private_key: bytes,
        **options: Any,
    ) -> EvmPayoutSender:
        """The sender for a catalogue network; `options` go to `EvmAdapter`."""
        return cls(EvmAdapter.from_catalogue(network, services, url, **options), private_key)

    @property
    def hot_address(self) -> str:
        return str(self._account.address)

    @property
    def adapter(self) -> EvmAdapter:
        return self._adapter

    # ------------------------------------------------------------------ plumbing
    # The adapter's connection and error translation are shared on purpose: one keep-alive
    # session per node, and the same idea of "unavailable" as the watcher.
    @property
    def _w3(self) -> Any:
        return self._adapter._w3

    async def _request(self, method: str, params: list[Any]) -> dict[str, Any]:
        """A raw JSON-RPC call whose error answer is returned, not raised: for the calls
        where what the node says matters more than that it said no."""
        await self._adapter._connect()
        with self._adapter._unavailable(method):
            response = await self._adapter._provider.make_request(RPCEndpoint(method), params)
        return cast(dict[str, Any], response)

    async def _node_chain_id(self) -> int:
        """Checked once: signing for the wrong chain would give a transaction that the node
        refuses at best, or one valid on another chain at worst."""
        if self._chain_id is None:
            self._chain_id = await self._adapter.check_chain_id()
        return self._chain_id

    # ------------------------------------------------------------------ reads
    async def tip(self) -> int:
        return await self._adapter.tip()

    async def close(self) -> None:
        await self._adapter.close()

    async def next_nonce(self) -> int:
        """Mined transactions only: pending ones may still be dropped, and the caller keeps
        its own counter of what it has signed."""
        await self._adapter._connect()
        with self._adapter._unavailable("eth_getTransactionCount"):
            return int(await self._w3.eth.get_transaction_count(self.hot_address, "latest"))

    async def balance(self, currency: str) -> Decimal:
        if currency == self.native:
            units = await self._native_units("latest")
            return units_to_amount(units, self._adapter.native_decimals)
        contract, decimals = self._token(currency)
        return units_to_amount(await self._token_units(contract, "latest"), decimals)

    async def _native_units(self, block: str) -> int:
        await self._adapter._connect()
        with self._adapter._unavailable("eth_getBalance"):
            return int(await self._w3.eth.get_balance(self.hot_address, block))

    async def _token_units(self, contract: str, block: str) -> int:
        data = BALANCE_OF_SELECTOR + encode(["address"], [self.hot_address])
        call: TxParams = {"to": contract, "data": HexBytes(data)}
        await self._adapter._connect()
        with self._adapter._unavailable(f"balanceOf at {contract}"):
            result = bytes(await self._w3.eth.call(call, block))
        if len(result) != 32:
            raise ChainMismatch(f"{self.network}: no ERC-20 contract answers at {contract}")
        (units,) = decode(["uint256"], result)
        return int(units)

    def _token(self, currency: str) -> tuple[str, int]:
        token = self._tokens_by_currency.get(currency)
        if token is None:
            raise TransferRefused(f"{self.network} carries no {currency}")
        return token

    async def lookup(self, txid: str) -> SentTransfer | None:
        await self._adapter._connect()
        with self._adapter._unavailable(f"eth_getTransactionReceipt {txid}"):
            try:
                receipt = await self._w3.eth.get_transaction_receipt(txid)
            except TransactionNotFound:
                receipt = None
            if receipt is None:
                try:
                    await self._w3.eth.get_transaction(txid)
                except TransactionNotFound:
                    return None
                return SentTransfer(block_height=None)
        fee = int(receipt["gasUsed"]) * int(receipt["effectiveGasPrice"])
        return SentTransfer(
            block_height=int(receipt["blockNumber"]),
            succeeded=int(receipt["status"]) == 1,
            fee=units_to_amount(fee, self._adapter.native_decimals),
        )

    # ------------------------------------------------------------------ signing
    async def sign_transfer(
        self,
        to: str,
        currency: str,
        amount: Decimal,
        *,
        nonce: int | None,
        priority: str = "recommended",
    ) -> SignedTransfer:
        """An EIP-1559 transfer signed offline. The nonce is the caller's (it counts what it
        has signed but not yet seen mined), so it is required. Balances are checked against
        the pending state: payouts still waiting in the mempool already spend the wallet."""
        if nonce is None or nonce < 0:
            raise ValueError(f"{self.network} transfers need the account nonce, not {nonce!r}")
        recipient = payee_address(self._adapter, to)
        scale = PRIORITY_TIP_SCALE.get(priority)
        if scale is None:
            raise TransferRefused(f"unknown priority {priority!r}")
        native_decimals = self._adapter.native_decimals
        contract: str | None = None
        decimals = native_decimals
        if currency != self.native:
            contract, decimals = self._token(currency)
        try:
            units = amount_to_units(amount, decimals, _UINT256)
        except ValueError as exc:
            raise TransferRefused(f"{self.network} {currency}: {exc}") from None
        await self._node_chain_id()  # a node of another chain is refused before any read

        if contract is None:
            value = units
            held = await self._native_units("pending")
            if held < value:
                raise HotWalletShort(
                    f"{self.network}: the hot wallet {self.hot_address} holds "
                    f"{_show(held, native_decimals)} {self.native}, {amount:f} {self.native} "
                    "are to be sent"
                )
            call: TxParams = {"from": self.hot_address, "to": recipient, "value": value}
            destination, data, held_native = recipient, b"", held
        else:
            held = await self._token_units(contract, "pending")
            if held < units:
                raise HotWalletShort(
                    f"{self.network}: the hot wallet {self.hot_address} holds "
                    f"{_show(held, decimals)} {currency}, {amount:f} {currency} are to be sent"
                )
            value = 0
            data = TRANSFER_SELECTOR + encode(["address", "uint256"], [recipient, units])
            destination = contract
            call = {"from": self.hot_address, "to": contract, "data": HexBytes(data)}
            held_native = await self._native_units("pending")
        gas = await self._gas(call)

        numerator, denominator = scale
        tip = await self._suggested_tip() * numerator // denominator
        max_fee_per_gas = 2 * await self._base_fee() + tip
        max_fee = gas * max_fee_per_gas
        if held_native < value + max_fee:
            raise HotWalletShort(
                f"{self.network}: the hot wallet {self.hot_address} holds "
                f"{_show(held_native, native_decimals)} {self.native}, needs "
                f"{_show(value + max_fee, native_decimals)} {self.native} (what it sends "
                f"in {self.native} plus the most the network fee can cost)"
            )

        return await self._signed(destination, value, data, nonce, gas, max_fee_per_gas, tip)

    async def _signed(
        self, to: str, value: int, data: bytes, nonce: int, gas: int, max_fee_per_gas: int,
        tip: int,
    ) -> SignedTransfer:  # fmt: skip
        """An EIP-1559 transaction of this account, signed offline for the node's chain."""
        signed = self._account.sign_transaction(
            {
                "type": 2,
                "chainId": await self._node_chain_id(),
                "nonce": nonce,
                "to": to,
                "value": value,
                "data": HexBytes(data),
                "gas": gas,
                "maxFeePerGas": max_fee_per_gas,
                "maxPriorityFeePerGas": tip,
            }
        )
        raw = bytes(signed.raw_transaction)
        return SignedTransfer(
            txid=HexBytes(keccak(raw)).to_0x_hex(),
            raw=HexBytes(raw).to_0x_hex(),
            from_address=self.hot_address,
            nonce=nonce,
            max_fee=units_to_amount(gas * max_fee_per_gas, self._adapter.native_decimals),
        )

    async def _gas(self, call: TxParams) -> int:
        """The node's estimate plus a margin; exactly 21000 for a plain transfer. Estimating
        native transfers too covers contract wallets and chains (Arbitrum) where a plain
        transfer costs more than 21000. A transfer that would revert is not signed."""
        await self._adapter._connect()
        with self._adapter._unavailable("eth_estimateGas"):
            try:
                estimate = int(await self._w3.eth.estimate_gas(call))
            except ContractLogicError as exc:
                raise HotWalletShort(
                    f"{self.network}: the transfer from the hot wallet {self.hot_address} "
                    f"would fail: {exc.message or exc}"
                ) from exc
        if estimate == PLAIN_TRANSFER_GAS and not call.get("data"):
            return PLAIN_TRANSFER_GAS
        numerator, denominator = GAS_MARGIN
        return -(-estimate * numerator // denominator)

    async def _suggested_tip(self) -> int:
        """The node's suggested priority fee; a fixed one where the node lacks the call."""
        response = await self._request("eth_maxPriorityFeePerGas", [])
        if response.get("error") is not None or response.get("result") is None:
            return FALLBACK_TIP
        return int(str(response["result"]), 16)

    async def _base_fee(self) -> int:
        await self._adapter._connect()
        with self._adapter._unavailable("eth_getBlockByNumber latest"):
            block = await self._w3.eth.get_block("latest")
        base_fee = block.get("baseFeePerGas")
        if base_fee is None:
            raise ChainMismatch(f"{self.network}: the node's blocks have no EIP-1559 base fee")
        return int(base_fee)

    # ------------------------------------------------------------------ broadcasting
    async def broadcast(self, transfer: SignedTransfer) -> None:
        """Send the signed bytes. The node's refusals are told apart by their message,
        since nodes agree on no error code for them."""
        response = await self._request("eth_sendRawTransaction", [transfer.raw])
        error = response.get("error")
        if error is None:
            return
        text = _error_text(error)
        words = _words(text)
        code = error.get("code") if isinstance(error, dict) else None
        if _ALREADY_KNOWN.search(words):
            return
        if code in _TRANSIENT_CODES or _TRANSIENT.search(words):
            raise ChainUnavailable(f"{self.network}: eth_sendRawTransaction: {text}")
        # Whatever the refusal, a node that has the transaction (mined: "nonce too low";
        # or from an earlier broadcast whose answer was lost) means it was sent.
        if await self.lookup(transfer.txid) is not None:
            return
        if _NONCE_USED.search(words):
            raise NonceTaken(
                f"{self.network}: nonce {transfer.nonce} of {transfer.from_address} was "
                f"used by another transaction ({text})"
            )
        raise BroadcastRejected(f"{self.network}: the node refused {transfer.txid}: {text}")
