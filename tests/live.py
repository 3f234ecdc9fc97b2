"""A real `paydesk serve` process on 127.0.0.1, for tests that drive it like a user."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

PAYDESK = str(Path(sys.executable).parent / "paydesk")


@dataclass(frozen=True)
class LiveMerchant:
    merchant: str
    payment_key: str
    payout_key: str


@dataclass(frozen=True)
class LiveServer:
    base_url: str
    env: dict[str, str]
    merchant: LiveMerchant


def paydesk_env(data_dir: Path, database_url: str | None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYDESK_")}
    env["PAYDESK_DATA_DIR"] = str(data_dir)
    env["PAYDESK_LOG_LEVEL"] = "warning"
    env["PAYDESK_RATE_PROVIDERS"] = ""  # no test reaches the internet
    if database_url:
        env["PAYDESK_DATABASE_URL"] = database_url
    env.update(extra)
    return env


def run_cli(
    *args: str, env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PAYDESK, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def create_live_merchant(env: dict[str, str]) -> LiveMerchant:
    done = run_cli("merchant", "create", "--name", "Shop", "--email", "shop@example.test",
                   "--json", env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return LiveMerchant(**json.loads(done.stdout))


@contextmanager
def live_server(env: dict[str, str], port: int, startup_seconds: float = 30) -> Iterator[str]:
    """Start `paydesk serve`, wait until it answers, and stop it afterwards."""
    base_url = f"http://127.0.0.1:{port}"
    env = {**env, "PAYDESK_PUBLIC_URL": base_url}
    process = subprocess.Popen(
        [PAYDESK, "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + startup_seconds
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"paydesk serve exited: {process.stderr.read()}")  # type: ignore[union-attr]
            try:
                if httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("paydesk serve did not answer in time")
            time.sleep(0.1)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
