"""Deposit addresses as signers: each sweeps its own tokens with its own key.

A deposit address signs like a hot wallet does (offline, with the key derived from the
master seed), so these are the networks' payout senders given a deposit key instead,
sharing the hot wallet's node connection and token table. What they add is the plan: how
much native coin the token transfer may burn, measured before the address holds any,
because that is what the hot wallet must send it first.

The coin itself (ETH, TRX, the Bitcoin family's) is sent whole less its own transfer's
fee, so it needs no top-up. On the Bitcoin family that is the address's outputs in one
transaction, whose fee is known exactly when it is signed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from embit import ec
from embit.script import Script
from embit.transaction import TransactionOutput
from eth_abi import encode
from hexbytes import HexBytes
from web3.types import TxParams

from paydesk.chains.adapter import (
    HotWalletShort,
    PayoutSender,
    SignedTransfer,
    TransferRefused,
    amount_to_units,
    payee_address,
    units_to_amount,
)
from paydesk.chains.evm_sender import TRANSFER_SELECTOR as EVM_TRANSFER_SELECTOR
from paydesk.chains.evm_sender import EvmPayoutSender
from paydesk.chains.tron import base58_to_hex
from paydesk.chains.tron_sender import (
    ENERGY_MARGIN,
    TRANSFER_SELECTOR,
    TRC20_TRANSFER_BYTES,
    TRX_TRANSFER_BYTES,
    UINT256,
    TronPayoutSender,
    _address_word,
    _reverted,
    _word,
)
from paydesk.chains.utxo_sender import CONFIRMATION_TARGETS, UtxoPayoutSender
from paydesk.chains.utxo_signing import Coin, fee_units, spend_shape

#: Base fee growth a transfer signed with what the address already holds must survive:
#: one full block (EIP-1559 raises the base fee by at most 1/8 per block).
BASE_FEE_HEADROOM = (9, 8)


class NotSweepable(TypeError):
    """The network's hot wallet is of a kind sweeps are not built for."""


@dataclass(frozen=True, slots=True)
class SweepPlan:
    """What sweeping `amount` tokens takes now: `top_up` native coin sent to the address
    first (zero: it can sign at once); `held` is what it has. EVM: the gas and fee caps
    it will be signed with."""

    amount: Decimal
    held: Decimal
    top_up: Decimal
    gas: int = 0
    max_fee_per_gas: int = 0
    tip: int = 0
    #: Bitcoin family: the exact fee (`held` − `amount`) and the coins it spends.
    fee: Decimal | None = None
    coins: tuple[Coin, ...] = ()


class DepositKey(Protocol):
    """A deposit address that can sign its own transfers."""

    @property
    def address(self) -> str: ...

    async def balance(self, currency: str) -> Decimal: ...

    async def plan(self, currency: str, amount: Decimal, to: str) -> SweepPlan:
        """Raises HotWalletShort when the transfer cannot be made (it would revert, or
        burn more than a transfer may)."""
        ...

    async def sign(self, currency: str, to: str, plan: SweepPlan) -> SignedTransfer:
        """Raises HotWalletShort when the address cannot pay the fee after all."""
        ...


class EvmDepositKey(EvmPayoutSender):
    """An EVM deposit address; its `hot_address` is the deposit address."""

    @property
    def address(self) -> str:
        return self.hot_address

    async def plan(self, currency: str, amount: Decimal, to: str) -> SweepPlan:
        """Gas from the node's estimate (no balance needed for that), fee caps as payouts
        set them: twice the base fee plus the tip. What the address already holds is used
        when it still covers the base fee with a block's growth, so a top-up whose fees
        rose a little meanwhile is not followed by another one."""
        recipient = payee_address(self._adapter, to)
        if currency == self.native:
            return await self._plan_native(recipient)
        contract, decimals = self._token(currency)
        try:
            units = amount_to_units(amount, decimals, 2**256)
        except ValueError as exc:
            raise TransferRefused(f"{self.network} {currency}: {exc}") from None
        data = EVM_TRANSFER_SELECTOR + encode(["address", "uint256"], [recipient, units])
        call: TxParams = {"from": self.hot_address, "to": contract, "data": HexBytes(data)}
        gas = await self._gas(call)
        tip = await self._suggested_tip()
        base_fee = await self._base_fee()
        held = await self._native_units("pending")
        decimals_native = self._adapter.native_decimals
        normal = 2 * base_fee + tip
        affordable = held // gas
        numerator, denominator = BASE_FEE_HEADROOM
        top_up = 0
        if affordable >= normal:
            max_fee_per_gas = normal
        elif affordable >= base_fee * numerator // denominator + tip:
            max_fee_per_gas = affordable
        else:
            max_fee_per_gas = normal
            top_up = gas * normal - held
        return SweepPlan(
            amount=amount,
            held=units_to_amount(held, decimals_native),
            top_up=units_to_amount(top_up, decimals_native),
            gas=gas,
            max_fee_per_gas=max_fee_per_gas,
            tip=min(tip, max_fee_per_gas),
        )

    async def _plan_native(self, recipient: str) -> SweepPlan:
        """All the coin the address holds less what its transfer may burn (gas × the
        payouts' fee cap): it pays its own fee, no top-up. What the fee cap leaves
        unburned stays on the address, the platform's holdings still."""
        gas = await self._gas({"from": self.hot_address, "to": recipient, "value": 0})
        tip = await self._suggested_tip()
        max_fee_per_gas = 2 * await self._base_fee() + tip
        held = await self._native_units("pending")
        decimals = self._adapter.native_decimals
        burn = gas * max_fee_per_gas
        if held <= burn:
            raise HotWalletShort(
                f"{self.network}: {self.hot_address} holds {units_to_amount(held, decimals)} "
                f"{self.native}, no more than the {units_to_amount(burn, decimals)} moving "
                "it may burn"
            )
        return SweepPlan(
            amount=units_to_amount(held - burn, decimals),
            held=units_to_amount(held, decimals),
            top_up=Decimal(0),
            gas=gas,
            max_fee_per_gas=max_fee_per_gas,
            tip=tip,
        )

    async def sign(self, currency: str, to: str, plan: SweepPlan) -> SignedTransfer:
        """The transfer (of the token, or of the coin itself), with the plan's gas and
        fee caps and the address's next nonce (pending ones counted: only sweeps ever
        sign for it)."""
        recipient = payee_address(self._adapter, to)
        if currency == self.native:
            target, value, data = (
                recipient,
                amount_to_units(plan.amount, self._adapter.native_decimals),
                b"",
            )
        else:
            contract, decimals = self._token(currency)
            units = amount_to_units(plan.amount, decimals, 2**256)
            target, value = contract, 0
            data = EVM_TRANSFER_SELECTOR + encode(["address", "uint256"], [recipient, units])
        held = await self._native_units("pending")
        max_fee = plan.gas * plan.max_fee_per_gas
        if held < max_fee + value:
            raise HotWalletShort(
                f"{self.network}: the deposit address {self.hot_address} holds "
                f"{units_to_amount(held, self._adapter.native_decimals)} {self.native}, its "
                f"transfer may burn {units_to_amount(max_fee, self._adapter.native_decimals)}"
            )
        await self._adapter._connect()
        with self._adapter._unavailable("eth_getTransactionCount"):
            nonce = int(await self._w3.eth.get_transaction_count(self.hot_address, "pending"))
        return await self._signed(
            target, value, data, nonce, plan.gas, plan.max_fee_per_gas, plan.tip
        )


class TronDepositKey(TronPayoutSender):
    """A TRON deposit address; its `hot_address` is the deposit address."""

    @property
    def address(self) -> str:
        return self.hot_address

    async def plan(self, currency: str, amount: Decimal, to: str) -> SweepPlan:
        """The TRX the TRC-20 transfer burns, as the payout sender measures it: the
        simulated energy plus 20 %, less the address's staked energy, at the chain's
        price, and its bandwidth unless the free daily allowance covers it (an address
        that never held TRX has no account yet, so none)."""
        recipient = payee_address(self._adapter, to)
        if currency == self.native:
            return await self._plan_native(recipient)
        contract, decimals = self._token(currency)
        try:
            units = amount_to_units(amount, decimals, UINT256)
        except ValueError as exc:
            raise TransferRefused(f"{self.network} {currency}: {exc}") from None
        parameter = _address_word(base58_to_hex(recipient)) + _word(units)
        simulated, resources, params, held = await asyncio.gather(
            self._constant_call(contract, TRANSFER_SELECTOR, parameter),
            self._resources(),
            self._chain_parameters(),
            self._sun(self._hot_hex),
        )
        if _reverted(simulated):
            raise HotWalletShort(
                f"{self.network}: the {currency} transfer from {self.hot_address} would fail"
            )
        numerator, denominator = ENERGY_MARGIN
        energy = -(-int(simulated.get("energy_used", 0)) * numerator // denominator)
        price = params.get("getEnergyFee", 0)
        if energy * price > self.max_fee_limit:
            raise HotWalletShort(
                f"{self.network}: a {currency} transfer needs {energy} energy, more than the "
                f"{units_to_amount(self.max_fee_limit, 6)} {self.native} a transfer may burn"
            )
        staked = max(0, int(resources.get("EnergyLimit", 0)) - int(resources.get("EnergyUsed", 0)))
        burn = max(0, energy - staked) * price + self._bandwidth_fee(
            TRC20_TRANSFER_BYTES, resources, params
        )
        native_decimals = self._adapter.native_decimals
        return SweepPlan(
            amount=amount,
            held=units_to_amount(held, native_decimals),
            top_up=units_to_amount(max(0, burn - held), native_decimals),
        )

    async def _plan_native(self, recipient: str) -> SweepPlan:
        """All the TRX the address holds less its transfer's fee, reckoned as payouts do
        (its bandwidth, unless its free allowance covers it; creating the recipient's
        account if it has none): it pays its own fee, no top-up."""
        resources, params, held, account = await asyncio.gather(
            self._resources(),
            self._chain_parameters(),
            self._sun(self._hot_hex),
            self._account(base58_to_hex(recipient)),
        )
        if account:
            fee = self._bandwidth_fee(TRX_TRANSFER_BYTES, resources, params)
        else:
            fee = params.get("getCreateAccountFee", 0) + params.get(
                "getCreateNewAccountFeeInSystemContract", 0
            )
        if held <= fee:
            raise HotWalletShort(
                f"{self.network}: {self.hot_address} holds {held} sun, no more than the "
                f"{fee} sun moving it costs"
            )
        decimals = self._adapter.native_decimals
        return SweepPlan(
            amount=units_to_amount(held - fee, decimals),
            held=units_to_amount(held, decimals),
            top_up=Decimal(0),
        )

    async def sign(self, currency: str, to: str, plan: SweepPlan) -> SignedTransfer:
        return await self.sign_transfer(to, currency, plan.amount, nonce=None)


@dataclass(frozen=True, slots=True)
class Outpoint:
    """A credited deposit's output (Bitcoin family), and the block it was mined in (what
    fetches its transaction from a node without a transaction index)."""

    txid: str
    vout: int
    block_hash: str


#: Sweeping is never urgent: its fee rate is the economy one.
SWEEP_TARGET = CONFIRMATION_TARGETS["economy"]


class UtxoDepositKey:
    """A Bitcoin-family deposit address. Its coins are the credited deposits' outputs the
    node's UTXO set still holds (`gettxout`, mempool spends included): the watcher's
    records say where to look, the node says what is left."""

    def __init__(
        self, hot_wallet: UtxoPayoutSender, private_key: bytes, outpoints: Sequence[Outpoint]
    ) -> None:
        self._wallet = hot_wallet
        self._private_key = private_key
        self._outpoints = list(outpoints)
        public = ec.PrivateKey(private_key).get_public_key().sec()
        self.address = hot_wallet.address_format.from_public_key(public)

    async def _coins(self) -> list[Coin]:
        wallet = self._wallet
        answers = await wallet.rpc.batch(
            [("gettxout", [point.txid, point.vout, True]) for point in self._outpoints]
        )
        script = wallet.address_format.script_pubkey(self.address).hex()
        coins = []
        for point, answer in zip(self._outpoints, answers, strict=True):
            if not answer or answer.get("scriptPubKey", {}).get("hex") != script:
                continue  # spent (maybe by a sweep in flight), or not this address's
            units = amount_to_units(Decimal(answer["value"]), wallet.decimals)
            coins.append(Coin(point.txid, point.vout, units, self.address))
        return coins

    async def balance(self, currency: str) -> Decimal:
        if currency != self._wallet.native:
            return Decimal(0)
        coins = await self._coins()
        return units_to_amount(sum(coin.units for coin in coins), self._wallet.decimals)

    async def plan(self, currency: str, amount: Decimal, to: str) -> SweepPlan:
        """Every coin of the address to `to`, less the fee at the economy rate; refused
        (HotWalletShort, so it is tried again later) when the fee would leave dust."""
        wallet = self._wallet
        try:
            script = wallet.address_format.script_pubkey(to)
        except ValueError as exc:
            raise TransferRefused(f"{to!r} is no {wallet.network} address: {exc}") from None
        coins = await self._coins()
        shape = spend_shape(wallet.address_format)
        rate = await wallet.fee_rate(SWEEP_TARGET)
        fee = fee_units(shape, len(coins), len(script), rate, wallet.decimals)
        total = sum(coin.units for coin in coins)
        if total - fee < shape.dust_units:
            raise HotWalletShort(
                f"{wallet.network}: {self.address} holds {total} units, too few to pay the "
                f"{fee} units of fee moving them costs"
            )
        decimals = wallet.decimals
        return SweepPlan(
            amount=units_to_amount(total - fee, decimals),
            held=units_to_amount(total, decimals),
            top_up=Decimal(0),
            fee=units_to_amount(fee, decimals),
            coins=tuple(coins),
        )

    async def sign(self, currency: str, to: str, plan: SweepPlan) -> SignedTransfer:
        wallet = self._wallet
        script = wallet.address_format.script_pubkey(to)
        units = amount_to_units(plan.amount, wallet.decimals)
        blocks = {point.txid: point.block_hash for point in self._outpoints}
        tx = await wallet.sign_coins(
            list(plan.coins),
            [TransactionOutput(units, Script(script))],
            {self.address: self._private_key},
            block_hashes=blocks,
        )
        return SignedTransfer(
            txid=tx.txid().hex(),
            raw=tx.serialize().hex(),
            from_address=self.address,
            nonce=None,
            max_fee=plan.fee or Decimal(0),
        )


def deposit_key(
    hot_wallet: PayoutSender, private_key: bytes, outpoints: Sequence[Outpoint] = ()
) -> DepositKey:
    """The signer of a deposit address (`private_key`, 32 bytes) on the hot wallet's
    network, over the hot wallet's connection (never close it: that closes both). On the
    Bitcoin family, `outpoints` are where its deposits were paid."""
    if isinstance(hot_wallet, UtxoPayoutSender):
        return UtxoDepositKey(hot_wallet, private_key, outpoints)
    if isinstance(hot_wallet, EvmPayoutSender):
        return EvmDepositKey(hot_wallet.adapter, private_key)
    if isinstance(hot_wallet, TronPayoutSender):
        return TronDepositKey(
            hot_wallet.adapter,
            private_key,
            max_fee_limit=hot_wallet.max_fee_limit,
            expiration_seconds=hot_wallet.expiration_seconds,
        )
    raise NotSweepable(f"{hot_wallet.network}: no sweeps for {type(hot_wallet).__name__}")
