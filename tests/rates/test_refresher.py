"""The refresher loop of `paydesk worker`, and the operator's `paydesk rates` commands."""

from __future__ import annotations

import asyncio
import json

import pytest
from sqlalchemy import func, select

from paydesk.rates.models import StoredRate
from paydesk.rates.worker import rates_loop
from tests.live import paydesk_env, run_cli


@pytest.fixture
def settings_overrides(rate_server):
    return rate_server.settings("binance", "ecb", rate_refresh_seconds=0.2)


async def stored(context) -> dict[str, int]:
    async with context.db.reader() as session:
        rows = await session.execute(
            select(StoredRate.source, func.count()).group_by(StoredRate.source)
        )
        return dict(rows.all())


async def test_loop_refreshes_until_stopped(context, rate_server):
    rate_server.faults["ecb"] = "down"
    stop = asyncio.Event()
    task = asyncio.create_task(rates_loop(context, stop))
    for _ in range(100):
        if (await stored(context)).get("binance"):
            break
        await asyncio.sleep(0.05)
    assert await stored(context) == {"binance": 6}
    rate_server.faults.clear()  # the ECB comes back: the next round stores it
    for _ in range(100):
        if (await stored(context)).get("ecb"):
            break
        await asyncio.sleep(0.05)
    assert await stored(context) == {"binance": 6, "ecb": 7}
    stop.set()
    await asyncio.wait_for(task, timeout=5)
    tickers = sum(1 for _, path, _ in rate_server.requests if "ticker/24hr" in path)
    assert tickers >= 2


@pytest.mark.slow
def test_operator_commands(rate_server, tmp_path):
    env = paydesk_env(
        tmp_path / "data",
        None,
        PAYDESK_RATE_PROVIDERS="binance,kucoin,ecb",
        PAYDESK_RATE_ENDPOINTS=json.dumps(rate_server.endpoints("binance", "kucoin", "ecb")),
        PAYDESK_RATE_TIMEOUT_SECONDS="2",
    )
    rate_server.faults["kucoin"] = "down"
    done = run_cli("rates", "refresh", env=env)
    assert done.returncode == 0, done.stderr
    assert "binance" in done.stdout and "ok" in done.stdout and "503" in done.stdout

    listed = run_cli("rates", "show", env=env)
    assert listed.returncode == 0, listed.stderr
    assert "BTC/USDT" in listed.stdout and "90000" in listed.stdout
    assert "EUR/USD" in listed.stdout and "1.08" in listed.stdout

    pair = run_cli("rates", "show", "btc/usd", env=env)
    assert pair.returncode == 0, pair.stderr
    lines = {line.split("│")[1].strip(): line for line in pair.stdout.splitlines() if "│" in line}
    assert "90000" in lines["Binance"] and "binance+static" in lines["Binance"]
    assert "90000" in lines["(none)"]  # the aggregate is Binance alone while KuCoin is down
    assert "90000" in lines["Kucoin"] and "aggregate+static" in lines["Kucoin"]  # fell back

    rate_server.faults.update(binance="down", ecb="down")
    failed = run_cli("rates", "refresh", env=env)
    assert failed.returncode == 1
    bad = run_cli("rates", "show", "BTCUSD", env=env)
    assert bad.returncode == 1 and "BASE/QUOTE" in bad.stderr
