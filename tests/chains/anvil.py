"""A real EVM node for tests: anvil (Foundry's local node), started on a free loopback port.

The binary comes from the npm package pinned in tools/package.json (`npm ci --prefix tools`).
Everything here is synchronous: the helpers prepare chain state (coins, tokens, blocks,
reorganisations) for the code under test, which talks to the node on its own.
"""

from __future__ import annotations

import json
import queue
import re
import subprocess
import threading
from collections import deque
from pathlib import Path
from typing import Any

from bip_utils import Bip39SeedGenerator, Bip44, Bip44Changes, Bip44Coins
from eth_account import Account
from web3 import Web3
from web3.types import RPCEndpoint

REPO_ROOT = Path(__file__).resolve().parents[2]
ANVIL_BINARY = REPO_ROOT / "tools/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil"
TOKEN_ARTIFACT = Path(__file__).resolve().parent / "contracts/TestToken.json"

#: anvil's default mnemonic; its first account starts with 10000 ETH.
DEV_MNEMONIC = "test test test test test test test test test test test junk"

GWEI = 10**9
#: Fee cap far above anvil's base fee (1 gwei at genesis, falling while blocks stay empty).
MAX_FEE = 100 * GWEI
PRIORITY_FEE = 1 * GWEI
TOKEN_GAS = 150_000

_LISTENING = re.compile(r"Listening on 127\.0\.0\.1:(\d+)")


def dev_private_key(index: int = 0) -> str:
    """Private key (0x hex) of anvil's dev account `index`: BIP-44 m/44'/60'/0'/0/index."""
    seed = Bip39SeedGenerator(DEV_MNEMONIC).Generate()
    account = (
        Bip44.FromSeed(seed, Bip44Coins.ETHEREUM)
        .Purpose()
        .Coin()
        .Account(0)
        .Change(Bip44Changes.CHAIN_EXT)
        .AddressIndex(index)
    )
    return "0x" + account.PrivateKey().Raw().ToHex()


def token_artifact() -> dict[str, Any]:
    return json.loads(TOKEN_ARTIFACT.read_text())


class AnvilError(RuntimeError):
    pass


class Anvil:
    """One anvil process. Use as a context manager or call `stop()`."""

    def __init__(
        self,
        chain_id: int = 1,
        *,
        no_mining: bool = False,
        binary: Path = ANVIL_BINARY,
        startup_timeout: float = 10.0,
    ) -> None:
        self.chain_id = chain_id
        self.no_mining = no_mining
        command = [str(binary), "--host", "127.0.0.1", "--port", "0", "--chain-id", str(chain_id)]
        if no_mining:
            command.append("--no-mining")
        self._output: deque[str] = deque(maxlen=40)
        self._port: queue.Queue[int | None] = queue.Queue()
        self._process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        # anvil logs every request it serves: keep draining its output so it never blocks.
        self._reader = threading.Thread(target=self._read_output, daemon=True)
        self._reader.start()
        try:
            port = self._port.get(timeout=startup_timeout)
        except queue.Empty:
            port = None
        if port is None:
            self.stop()
            raise AnvilError(
                f"anvil did not start within {startup_timeout}s:\n" + "\n".join(self._output)
            )
        self.url = f"http://127.0.0.1:{port}"
        self.w3 = Web3(Web3.HTTPProvider(self.url, request_kwargs={"timeout": 30}))
        self.account = Account.from_key(dev_private_key(0))
        self.address: str = self.account.address
        self._token_abi = token_artifact()["abi"]

    def _read_output(self) -> None:
        assert self._process.stdout is not None
        announced = False
        for line in self._process.stdout:
            self._output.append(line.rstrip())
            if not announced and (match := _LISTENING.search(line)):
                announced = True
                self._port.put(int(match.group(1)))
        if not announced:
            self._port.put(None)  # exited before listening

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._reader.join(timeout=5)
        if self._process.stdout is not None:
            self._process.stdout.close()

    def __enter__(self) -> Anvil:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ raw RPC
    def rpc(self, method: str, *params: Any) -> Any:
        response = self.w3.provider.make_request(RPCEndpoint(method), list(params))
        if response.get("error"):
            raise AnvilError(f"{method}: {response['error']}")
        return response.get("result")

    # ------------------------------------------------------------------ chain control
    def block_number(self) -> int:
        return self.w3.eth.block_number

    def mine(self, n: int = 1) -> None:
        self.rpc("anvil_mine", hex(n))

    def set_automine(self, enabled: bool) -> None:
        """Switch mining a block per transaction on or off (to put several in one block)."""
        self.rpc("evm_setAutomine", enabled)
        self.no_mining = not enabled

    def snapshot(self) -> str:
        return str(self.rpc("evm_snapshot"))

    def revert(self, snapshot_id: str) -> None:
        if not self.rpc("evm_revert", snapshot_id):
            raise AnvilError(f"evm_revert({snapshot_id}) failed")

    def reorg(self, depth: int, txs: list[tuple[str, int]] | None = None) -> None:
        """Replace the newest `depth` blocks with as many new ones; `txs` are
        (raw signed transaction, block offset from the fork point) pairs to include."""
        self.rpc("anvil_reorg", depth, [[raw, offset] for raw, offset in txs or []])

    def nonce(self, block: int | str = "pending") -> int:
        return self.w3.eth.get_transaction_count(self.address, block)

    # ------------------------------------------------------------------ transactions
    def _sign(self, tx: dict[str, Any], nonce: int | None) -> str:
        tx = {
            "chainId": self.chain_id,
            "nonce": self.nonce() if nonce is None else nonce,
            "maxFeePerGas": MAX_FEE,
            "maxPriorityFeePerGas": PRIORITY_FEE,
            "type": 2,
            **tx,
        }
        return self.account.sign_transaction(tx).raw_transaction.to_0x_hex()

    def _send(self, raw: str) -> str:
        """Submit; unless started with --no-mining, return once the transaction is mined
        (anvil answers eth_sendRawTransaction before its automatic block exists)."""
        txhash = self.w3.eth.send_raw_transaction(raw)
        if not self.no_mining:
            self.w3.eth.wait_for_transaction_receipt(txhash, timeout=10, poll_latency=0.005)
        return txhash.to_0x_hex()

    def _receipt(self, txhash: str) -> Any:
        if self.rpc("eth_getTransactionReceipt", txhash) is None:  # --no-mining: mine it now
            self.mine()
        receipt = self.w3.eth.get_transaction_receipt(txhash)
        if receipt["status"] != 1:
            raise AnvilError(f"transaction {txhash} reverted")
        return receipt

    def _token(self, address: str) -> Any:
        return self.w3.eth.contract(address=Web3.to_checksum_address(address), abi=self._token_abi)

    def sign_native(self, to: str, amount_wei: int, nonce: int | None = None) -> str:
        """Raw signed transfer of `amount_wei` from dev account 0 (for `reorg`)."""
        tx = {"to": Web3.to_checksum_address(to), "value": amount_wei, "gas": 21_000}
        return self._sign(tx, nonce)

    def sign_token_transfer(
        self, token: str, to: str, amount_units: int, nonce: int | None = None
    ) -> str:
        """Raw signed `token.transfer(to, amount_units)` from dev account 0 (for `reorg`)."""
        contract = self._token(token)
        data = contract.encode_abi("transfer", [Web3.to_checksum_address(to), amount_units])
        return self._sign({"to": contract.address, "data": data, "gas": TOKEN_GAS}, nonce)

    def send_native(self, to: str, amount_wei: int) -> str:
        return self._send(self.sign_native(to, amount_wei))

    def send_token(self, token: str, to: str, amount_units: int) -> str:
        return self._send(self.sign_token_transfer(token, to, amount_units))

    def deploy_token(self, symbol: str, decimals: int, supply: int = 10**12) -> str:
        """Deploy TestToken and mint `supply` whole tokens to dev account 0; its address."""
        artifact = token_artifact()
        factory = self.w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
        data = factory.constructor(f"Test {symbol}", symbol, decimals).data_in_transaction
        gas = self.w3.eth.estimate_gas({"from": self.address, "data": data})
        receipt = self._receipt(self._send(self._sign({"data": data, "gas": gas * 2}, None)))
        token = Web3.to_checksum_address(receipt["contractAddress"])
        contract = self._token(token)
        data = contract.encode_abi("mint", [self.address, supply * 10**decimals])
        self._receipt(self._send(self._sign({"to": token, "data": data, "gas": TOKEN_GAS}, None)))
        return token

    def token_balance(self, token: str, owner: str) -> int:
        contract = self._token(token)
        return int(contract.functions.balanceOf(Web3.to_checksum_address(owner)).call())
