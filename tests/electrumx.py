"""A real ElectrumX (PyPI `e-x`) over a test's litecoind in regtest: started on a free
loopback port with its own database directory, stopped after the test.

ElectrumX reads the node every 200 ms (its default is 5 s), so a test waits for it to
catch up (`synced`) before it looks: a new block or mempool transaction is indexed about
a tenth of a second after the node has it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from paydesk.chains.electrum import parse_header, scripthash
from paydesk.chains.electrum_client import ElectrumClient
from tests.conftest import free_port
from tests.litecoin import RPC_PASSWORD, RPC_USER, Litecoind

#: Startup is 0.3 s here; a cold import of ElectrumX on a loaded machine takes longer.
STARTUP_SECONDS = 30


def electrumx_path() -> str:
    found = shutil.which("electrumx_server")
    if found:
        return found
    beside = Path(sys.executable).parent / "electrumx_server"
    if beside.exists():
        return str(beside)
    message = 'electrumx_server is not installed (pip install ".[test]" installs e-x)'
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@dataclass
class ElectrumX:
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"


@contextmanager
def electrumx(node: Litecoind, work_dir: Path) -> Iterator[ElectrumX]:
    """ElectrumX indexing `node`, answering on 127.0.0.1 once it has the node's blocks."""
    db_dir = work_dir / "db"
    db_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {
        **os.environ,
        "COIN": "Litecoin",
        "NET": "regtest",
        "DB_DIRECTORY": str(db_dir),
        "DAEMON_URL": f"http://{RPC_USER}:{RPC_PASSWORD}@127.0.0.1:{node.port}/",
        "SERVICES": f"tcp://127.0.0.1:{port}",
        "DB_ENGINE": "leveldb",
        "PEER_DISCOVERY": "off",
        "PEER_ANNOUNCE": "",
        "ALLOW_ROOT": "1",
        "DAEMON_POLL_INTERVAL_BLOCKS": "200",
        "DAEMON_POLL_INTERVAL_MEMPOOL": "200",
    }
    log = work_dir / "electrumx.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [electrumx_path()], env=env, stdout=output, stderr=subprocess.STDOUT
        )
    server = ElectrumX(port, process, log)
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while not _listening(port):
            if process.poll() is not None:
                raise RuntimeError(f"electrumx_server exited:\n{log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"electrumx_server did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.05)
        asyncio.run(synced(server, node))
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


async def synced(
    server: ElectrumX, node: Litecoind, mempool: tuple[str, ...] = (), timeout: float = 20
) -> None:
    """Wait until the server's tip is the node's best block and `mempool` transactions
    are in its mempool index."""
    client = ElectrumClient(server.url, timeout=5)
    try:
        deadline = time.monotonic() + timeout
        while True:
            best = node.rpc("getbestblockhash")
            height = node.rpc("getblockcount")
            tip = await client.request("blockchain.headers.subscribe")
            done = tip["height"] == height and _header_hash(tip["hex"]) == best
            if done and mempool:
                done = await _in_mempool(client, node, mempool)
            if done:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"ElectrumX did not catch up; its log: {server.log}")
            await asyncio.sleep(0.05)
    finally:
        await client.close()


async def _in_mempool(client: ElectrumClient, node: Litecoind, txids: tuple[str, ...]) -> bool:
    """Each transaction shows in the mempool history of its first output's address."""
    for txid in txids:
        raw = node.rpc("getrawtransaction", txid, True)
        script = bytes.fromhex(raw["vout"][0]["scriptPubKey"]["hex"])
        entries = await client.request("blockchain.scripthash.get_mempool", scripthash(script))
        if txid not in {entry["tx_hash"] for entry in entries}:
            return False
    return True


def _header_hash(header_hex: str) -> str:
    return parse_header(bytes.fromhex(header_hex), 0).hash
