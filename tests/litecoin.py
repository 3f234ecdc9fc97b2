"""A real Litecoin Core node (Debian's `litecoind`) in regtest, started on free loopback
ports for a test and stopped after it, with what tests need to drive it: its own legacy
wallet to pay from, mining, and the reorganisation recipe.

Tests stay below height 431: Litecoin's regtest activates MWEB at 432, after which mining
needs an MWEB peg-in in every block.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from paydesk.chains.adapter import ChainAdapter
from paydesk.chains.watcher import Watcher
from paydesk.context import Context
from paydesk.deposits.models import Deposit
from paydesk.invoices.models import Invoice
from paydesk.invoices.schemas import InvoiceDraft
from paydesk.ledger import service as ledger
from paydesk.ledger.models import AccountKind, JournalTransaction
from tests.conftest import free_port

RPC_USER, RPC_PASSWORD = "paydesk", "regtest-password"
#: The catalogue entries that make Paydesk's `ltc` network the node's regtest chain.
REGTEST_CATALOGUE = """
[networks.ltc]
node_chain = "regtest"
bech32_hrp = "rltc"
p2pkh_version = 111
p2sh_version = 58
confirmations = 3
"""


def litecoind_path() -> str:
    found = shutil.which("litecoind")
    if found:
        return found
    if os.environ.get("CI") == "true":
        pytest.fail("litecoind is not installed (scripts/test installs it)")
    pytest.skip("litecoind is not installed (scripts/test installs it)")


@dataclass
class Litecoind:
    port: int
    process: subprocess.Popen[bytes]
    miner: str = ""

    @property
    def url(self) -> str:
        return f"http://{RPC_USER}:{RPC_PASSWORD}@127.0.0.1:{self.port}/"

    def rpc(self, method: str, *params: Any) -> Any:
        response = httpx.post(
            # The payer's wallet: Paydesk keeps its own watch-only one on the same node.
            f"http://127.0.0.1:{self.port}/wallet/payer",
            auth=(RPC_USER, RPC_PASSWORD),
            json={"jsonrpc": "1.0", "id": 1, "method": method, "params": list(params)},
            timeout=30,
        )
        answer = json.loads(response.text, parse_float=Decimal)
        if answer.get("error"):
            raise RuntimeError(f"{method}: {answer['error']}")
        return answer["result"]

    def mine(self, blocks: int = 1) -> list[str]:
        height = self.rpc("getblockcount")
        assert height + blocks < 432, "regtest MWEB activates at 432: keep tests below it"
        return self.rpc("generatetoaddress", blocks, self.miner)

    def send(self, address: str, amount: Decimal | str) -> str:
        """Pay from the node's wallet (as a payer's wallet would)."""
        return self.rpc("sendtoaddress", address, str(amount))

    def orphan(self, block_hash: str, txids: list[str], longer_by: int = 1) -> None:
        """Replace the chain from `block_hash` on with a longer branch that leaves `txids`
        out: they go back to the mempool and stay there."""
        height = self.rpc("getblockheader", block_hash)["height"]
        replaced = self.rpc("getblockcount") - height + 1
        self.rpc("invalidateblock", block_hash)
        for txid in txids:
            self.rpc("prioritisetransaction", txid, 0, -100_000_000)
        self.mine(replaced + longer_by)


@contextmanager
def litecoind(data_dir: Path) -> Iterator[Litecoind]:
    data_dir.mkdir(parents=True, exist_ok=True)
    port, p2p = free_port(), free_port()
    process = subprocess.Popen(
        [
            litecoind_path(), "-regtest", f"-datadir={data_dir}", "-listen=0", "-dnsseed=0",
            "-upnp=0", "-discover=0", f"-port={p2p}", "-rpcbind=127.0.0.1",
            "-rpcallowip=127.0.0.1", f"-rpcport={port}", f"-rpcuser={RPC_USER}",
            f"-rpcpassword={RPC_PASSWORD}", "-fallbackfee=0.0001", "-txindex=1",
            "-printtoconsole=0",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    node = Litecoind(port, process)
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"litecoind exited: {process.stderr.read().decode()}")  # type: ignore[union-attr]
            try:
                node.rpc("getblockcount")
                break
            except (httpx.TransportError, RuntimeError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        node.rpc("createwallet", "payer")
        node.miner = node.rpc("getnewaddress")
        node.mine(101)  # the first block reward matures
        yield node
    finally:
        try:
            node.rpc("stop")
            process.wait(timeout=20)
        except Exception:
            process.kill()
            process.wait(timeout=10)


# ---------------------------------------------------------------------------- Paydesk's side
def new_watcher(context: Context, adapter: ChainAdapter) -> Watcher:
    return Watcher(context, context.catalogue.network("ltc"), adapter, owner="test")


async def ltc_invoice(
    context: Context, merchant: Any, order_id: str, amount: str = "0.5"
) -> Invoice:
    async with context.db.transaction() as session:
        created = await context.invoices.create(
            session, merchant.merchant_id,
            InvoiceDraft(amount=Decimal(amount), currency="LTC", network="ltc", order_id=order_id),
        )  # fmt: skip
    return created.invoice


async def reread(context: Context, invoice: Invoice) -> Invoice:
    async with context.db.reader() as session:
        found = await session.get(Invoice, invoice.id)
    assert found is not None
    return found


async def balance(context: Context, merchant: Any) -> Decimal:
    async with context.db.reader() as session:
        account = await ledger.find_account(
            session, AccountKind.MERCHANT_BUSINESS, "LTC", owner=merchant.merchant_id
        )
        return await ledger.balance(session, account) if account else Decimal(0)


async def deposits(context: Context) -> list[Deposit]:
    async with context.db.reader() as session:
        return list(await session.scalars(select(Deposit).order_by(Deposit.id)))


async def ledger_kinds(context: Context) -> list[str]:
    async with context.db.reader() as session:
        return list(
            await session.scalars(select(JournalTransaction.kind).order_by(JournalTransaction.id))
        )
