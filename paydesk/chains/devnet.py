"""The built-in `devnet`: a chain Paydesk runs itself, for demos and the merchants' test mode.

It is a real chain of blocks, persisted in the database: transfers wait in a mempool until a
block takes them, every block names its parent's hash, and the tip can be reorganised. The
watcher reads it through the same adapter interface as Ethereum or Litecoin and credits
through the same path, so whatever an integrator sees on devnet (confirm_check, paid,
underpaid, a reorg taking a payment back) is what a real chain would produce.

Its addresses are bech32 strings with the human-readable part `pdev`, so they can never be
mistaken for (or paid on) a real chain; its coins carry no value and its balances are kept
in the ledger's test book, apart from live money.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

import bech32
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from paydesk.catalogue.service import Catalogue
from paydesk.chains.adapter import (
    Block,
    BlockHeader,
    BroadcastRejected,
    SentTransfer,
    SignedTransfer,
    Transfer,
)
from paydesk.chains.models import DevnetBlock, DevnetTransaction
from paydesk.db import Database, utcnow
from paydesk.money import quantum

if TYPE_CHECKING:  # the invoice service itself hands out devnet addresses
    from paydesk.invoices.models import Invoice
    from paydesk.invoices.service import InvoiceService

DEVNET = "devnet"
DEVNET_HRP = "pdev"
#: Devnet coins carry no value, so its addresses need no secret: only the index makes them
#: unique, and the index is unique per installation.
DEVNET_SEED = b"paydesk devnet v1"
#: Where test payments come from (`from` of the invoice), unless the payer names another.
FAUCET_SEED = b"paydesk devnet faucet"
GENESIS_PARENT = "0x" + "00" * 32


class DevnetAddresses:
    def __init__(self, seed: bytes) -> None:
        self._seed = seed

    def derive(self, index: int) -> str:
        digest = hashlib.blake2b(
            index.to_bytes(8, "big"), key=self._seed[:64], digest_size=20
        ).digest()
        words = bech32.convertbits(digest, 8, 5)
        assert words is not None
        return bech32.bech32_encode(DEVNET_HRP, [0, *words])

    @staticmethod
    def is_valid(address: str) -> bool:
        hrp, data = bech32.bech32_decode(address)
        return hrp == DEVNET_HRP and data is not None and len(data) == 33


FAUCET_ADDRESS = DevnetAddresses(FAUCET_SEED).derive(0)
#: Where devnet payouts are sent from. Test coins need no key: it pays whatever it is asked.
HOT_WALLET_ADDRESS = DevnetAddresses(b"paydesk devnet hot wallet").derive(0)


class DevnetError(ValueError):
    pass


def block_hash(parent: str, height: int, timestamp: datetime, txids: Sequence[str]) -> str:
    """A block's identity: its parent, height, time, contents and a random nonce (so a
    replacement block at the same height always differs from the one it replaces)."""
    material = "|".join([parent, str(height), timestamp.isoformat(), secrets.token_hex(8), *txids])
    return "0x" + hashlib.sha256(material.encode()).hexdigest()


class Devnet:
    """Sending, mining and reorganising the devnet chain, each in the caller's transaction."""

    def __init__(self, catalogue: Catalogue) -> None:
        self.catalogue = catalogue

    def check_transfer(self, address: str, amount: Decimal, currency: str) -> str:
        """The devnet coin code, or DevnetError saying what is wrong."""
        if not DevnetAddresses.is_valid(address):
            raise DevnetError(f"{address!r} is not a devnet address")
        code = currency.upper()
        service = self.catalogue.service(code, DEVNET)
        if service is None:
            raise DevnetError(f"devnet carries no {code}")
        if amount <= 0:
            raise DevnetError("the amount must be positive")
        if amount != amount.quantize(quantum(service.decimals)):
            raise DevnetError(f"{code} on devnet has {service.decimals} decimals")
        return code

    async def send(
        self,
        session: AsyncSession,
        to_address: str,
        amount: Decimal,
        currency: str,
        from_address: str = FAUCET_ADDRESS,
    ) -> DevnetTransaction:
        """Put a transfer in the mempool; the next block takes it."""
        code = self.check_transfer(to_address, amount, currency)
        now = utcnow()
        transaction = DevnetTransaction(
            txid="0x" + secrets.token_hex(32),
            from_address=from_address,
            to_address=to_address,
            currency=code,
            amount=amount,
            block_height=None,
            created_at=now,
        )
        session.add(transaction)
        await session.flush()
        return transaction

    async def tip(self, session: AsyncSession) -> DevnetBlock | None:
        return await session.scalar(
            select(DevnetBlock).order_by(DevnetBlock.height.desc()).limit(1)
        )

    async def mine(self, session: AsyncSession, count: int = 1) -> list[DevnetBlock]:
        """Produce `count` blocks on the tip; each takes what waits in the mempool."""
        await _lock_chain(session)
        tip = await self.tip(session)
        blocks = []
        for _ in range(count):
            height = tip.height + 1 if tip else 0
            parent = tip.hash if tip else GENESIS_PARENT
            rows = (
                await session.execute(
                    select(DevnetTransaction.id, DevnetTransaction.txid)
                    .where(DevnetTransaction.block_height.is_(None))
                    .order_by(DevnetTransaction.id)
                )
            ).all()
            now = utcnow()
            tip = DevnetBlock(
                height=height,
                hash=block_hash(parent, height, now, [row.txid for row in rows]),
                parent_hash=parent,
                timestamp=now,
            )
            session.add(tip)
            if rows:
                await session.execute(
                    update(DevnetTransaction)
                    .where(DevnetTransaction.id.in_([row.id for row in rows]))
                    .values(block_height=height)
                    .execution_options(synchronize_session=False)
                )
            await session.flush()
            blocks.append(tip)
        return blocks

    async def reorganize(
        self, session: AsyncSession, depth: int, *, drop: bool = False
    ) -> list[DevnetBlock]:
        """Replace the last `depth` blocks by a longer branch of `depth + 1` new ones. Their
        transfers go back to the mempool and into the new branch's first block (what
        usually happens on a real chain), or, with `drop`, vanish (a double spend)."""
        if depth < 1:
            raise DevnetError("a reorganisation replaces at least one block")
        await _lock_chain(session)
        tip = await self.tip(session)
        if tip is None or tip.height + 1 < depth + 1:
            raise DevnetError("the chain is not that long (the genesis block stays)")
        fork = tip.height - depth
        if drop:
            await session.execute(
                delete(DevnetTransaction).where(DevnetTransaction.block_height > fork)
            )
        else:
            await session.execute(
                update(DevnetTransaction)
                .where(DevnetTransaction.block_height > fork)
                .values(block_height=None)
                .execution_options(synchronize_session=False)
            )
        await session.execute(delete(DevnetBlock).where(DevnetBlock.height > fork))
        session.expire_all()
        return await self.mine(session, depth + 1)

    async def pay_invoice(
        self,
        session: AsyncSession,
        invoice: Invoice,
        invoices: InvoiceService,
        *,
        amount: Decimal | None = None,
        currency: str | None = None,
        late: bool = False,
    ) -> DevnetTransaction:
        """What a payer would do, for the merchant's test mode: send the invoice's coin (or
        `currency`, to see a wrong token) to its address — by default what is still due;
        `late` first lets the invoice expire, to see a payment after expiry."""
        if invoice.network != DEVNET or not invoice.address or not invoice.payer_currency:
            raise DevnetError("only an invoice with a devnet address can be paid on devnet")
        if late:
            now = utcnow()
            if invoice.expired_at > now:
                invoice.expired_at = now
            await invoices.expire_if_due(session, invoice, now)
        if amount is None:
            assert invoice.payer_amount is not None
            amount = invoice.payer_amount - (invoice.payment_amount or Decimal(0))
            if amount <= 0:
                raise DevnetError("nothing is due on this invoice: give an amount")
        return await self.send(session, invoice.address, amount, currency or invoice.payer_currency)


async def _lock_chain(session: AsyncSession) -> None:
    """One producer at a time (SQLite's write lock does this by itself)."""
    if session.bind.dialect.name == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(hashtext('paydesk-devnet'))"))


class DevnetAdapter:
    """The devnet seen through the adapter interface, read from the database."""

    network = DEVNET
    has_mempool = True

    def __init__(self, db: Database) -> None:
        self._db = db

    async def tip(self) -> int:
        async with self._db.reader() as session:
            height = await session.scalar(select(func.max(DevnetBlock.height)))
        return -1 if height is None else int(height)

    async def headers(self, start: int, end: int) -> list[BlockHeader]:
        async with self._db.reader() as session:
            rows = await session.scalars(
                select(DevnetBlock)
                .where(DevnetBlock.height.between(start, end))
                .order_by(DevnetBlock.height)
            )
            return [_header(row) for row in rows]

    async def blocks(self, start: int, end: int) -> list[Block]:
        async with self._db.reader() as session:
            headers = [
                _header(row)
                for row in await session.scalars(
                    select(DevnetBlock)
                    .where(DevnetBlock.height.between(start, end))
                    .order_by(DevnetBlock.height)
                )
            ]
            transfers: dict[int, list[Transfer]] = {}
            for row in await session.scalars(
                select(DevnetTransaction)
                .where(DevnetTransaction.block_height.between(start, end))
                .order_by(DevnetTransaction.id)
            ):
                assert row.block_height is not None
                transfers.setdefault(row.block_height, []).append(_transfer(row))
        return [Block(header, transfers.get(header.height, [])) for header in headers]

    async def pending(self) -> list[Transfer]:
        async with self._db.reader() as session:
            rows = await session.scalars(
                select(DevnetTransaction)
                .where(DevnetTransaction.block_height.is_(None))
                .order_by(DevnetTransaction.id)
            )
            return [_transfer(row) for row in rows]

    async def check_node(self) -> None:
        return None  # the devnet is this database: nothing else it could be

    def normalize_address(self, address: str) -> str | None:
        return address if DevnetAddresses.is_valid(address) else None

    async def close(self) -> None:
        return None


class DevnetPayoutSender:
    """Payouts on the devnet: the same steps as on a real chain (a transaction whose id is
    known before it is handed over, then followed until it has its confirmations), with
    the database as the node."""

    network = DEVNET
    native = "ETH"
    hot_address = HOT_WALLET_ADDRESS

    def __init__(self, db: Database, catalogue: Catalogue) -> None:
        self._db = db
        self._devnet = Devnet(catalogue)
        self._chain = DevnetAdapter(db)

    async def next_nonce(self) -> int | None:
        return None

    async def sign_transfer(
        self, to: str, currency: str, amount: Decimal, *, nonce: int | None, priority: str
    ) -> SignedTransfer:
        try:
            code = self._devnet.check_transfer(to, amount, currency)
        except DevnetError as exc:
            raise BroadcastRejected(str(exc)) from None
        raw = json.dumps({"to": to, "currency": code, "amount": f"{amount:f}"})
        return SignedTransfer("0x" + secrets.token_hex(32), raw, HOT_WALLET_ADDRESS)

    async def broadcast(self, transfer: SignedTransfer) -> None:
        body = json.loads(transfer.raw)
        async with self._db.transaction() as session:
            known = await session.scalar(
                select(DevnetTransaction.id).where(DevnetTransaction.txid == transfer.txid)
            )
            if known is not None:
                return
            session.add(
                DevnetTransaction(
                    txid=transfer.txid,
                    from_address=transfer.from_address,
                    to_address=body["to"],
                    currency=body["currency"],
                    amount=Decimal(body["amount"]),
                    block_height=None,
                    created_at=utcnow(),
                )
            )

    async def lookup(self, txid: str) -> SentTransfer | None:
        async with self._db.reader() as session:
            row = await session.scalar(
                select(DevnetTransaction).where(DevnetTransaction.txid == txid)
            )
        return None if row is None else SentTransfer(block_height=row.block_height)

    async def tip(self) -> int:
        return await self._chain.tip()

    async def balance(self, currency: str) -> Decimal | None:
        return None

    async def close(self) -> None:
        return None


def _header(row: DevnetBlock) -> BlockHeader:
    return BlockHeader(
        height=row.height,
        hash=row.hash,
        parent_hash=row.parent_hash,
        timestamp=int(row.timestamp.timestamp()),
    )


def _transfer(row: DevnetTransaction) -> Transfer:
    return Transfer(
        txid=row.txid,
        output_index=0,
        to_address=row.to_address,
        currency=row.currency,
        amount=row.amount,
        from_address=row.from_address,
    )
