"""Webhook delivery: deliveries per second and event-to-delivery latency.

    .venv/bin/python bench/webhooks.py [--events 10000] [--rate 500] [--seconds 10]

On a throwaway PostgreSQL database, against a fast receiver on 127.0.0.1:

- ceiling: the same signed bodies POSTed by a bare aiohttp client at the worker's
  concurrency, no database: what this machine's loopback HTTP allows;
- drain: `--events` recorded events, then `paydesk worker` (1, then 2 processes) until
  every delivery is settled: deliveries/s, and the ratio to the ceiling;
- latency: events recorded at `--rate` per second for `--seconds` while one worker
  runs: p50/p99 from the event's commit to its delivery being recorded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from bench.run import DSN, PAYDESK, free_port, log, server, sql  # noqa: E402
from paydesk.config import Settings  # noqa: E402
from paydesk.context import build_context  # noqa: E402
from paydesk.webhooks import service as webhooks  # noqa: E402

DATABASE = "paydesk_bench"


def paydesk_env(work: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYDESK_")}
    env.update(
        PAYDESK_DATA_DIR=str(work / "data"),
        PAYDESK_DATABASE_URL=f"postgresql+asyncpg://postgres@127.0.0.1:5432/{DATABASE}",
        PAYDESK_LOG_LEVEL="warning",
        PAYDESK_RATE_PROVIDERS="",
        PAYDESK_CALLBACK_ALLOWLIST="127.0.0.0/8",
        PAYDESK_DB_POOL_SIZE="20",
    )
    return env


def settings_of(env: dict[str, str]) -> Settings:
    return Settings(**{k[8:].lower(): v for k, v in env.items() if k.startswith("PAYDESK_")})


PAYLOAD = {"uuid": "", "order_id": "bench", "status": "paid", "is_final": True,
           "amount": "15", "currency": "USDT", "payer_currency": "USDT", "payment_amount": "15",
           "network": "devnet"}  # fmt: skip


async def record(env: dict[str, str], merchant: str, url: str, count: int, rate: float = 0) -> None:
    """`count` events, in batches of 100, paced to `rate` per second when given."""
    context = build_context(settings_of(env))
    started = time.perf_counter()
    try:
        done = 0
        while done < count:
            batch = min(100, count - done)
            async with context.db.transaction() as session:
                for _ in range(batch):
                    subject = uuid.uuid4()
                    await webhooks.record(
                        session, merchant_id=uuid.UUID(merchant), topic=webhooks.INVOICE_STATUS,
                        subject_uuid=subject, url=url, payload={**PAYLOAD, "uuid": str(subject)},
                    )  # fmt: skip
            done += batch
            if rate:
                ahead = done / rate - (time.perf_counter() - started)
                if ahead > 0:
                    await asyncio.sleep(ahead)
    finally:
        await context.close()


async def settled(env: dict[str, str]) -> tuple[int, int, list[float]]:
    """(pending, total, latencies in ms of delivered ones)."""
    import asyncpg

    connection = await asyncpg.connect(DSN)
    try:
        rows = await connection.fetch(
            "SELECT d.status, EXTRACT(EPOCH FROM (d.delivered_at - e.created_at)) * 1000 AS ms "
            "FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id"
        )
    finally:
        await connection.close()
    pending = sum(1 for r in rows if r["status"] == "pending")
    latencies = [float(r["ms"]) for r in rows if r["ms"] is not None]
    return pending, len(rows), latencies


def wait_settled(env: dict[str, str], timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pending, total, _ = asyncio.run(settled(env))
        if total and not pending:
            return
        time.sleep(0.5)
    sys.exit("deliveries did not settle in time")


def workers(env: dict[str, str], count: int) -> list[subprocess.Popen[bytes]]:
    return [
        subprocess.Popen([PAYDESK, "worker"], env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
        for _ in range(count)
    ]


def stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        process.send_signal(signal.SIGTERM)
    for process in processes:
        process.wait(timeout=30)


async def ceiling(url: str, count: int, concurrency: int) -> float:
    """The same bodies POSTed by the same HTTP client library, with no database."""
    body = json.dumps({**PAYLOAD, "sign": "0" * 32}).encode()
    gate = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256)) as client:

        async def one() -> None:
            async with gate, client.post(url, data=body) as response:
                await response.read()
                assert response.status == 200

        started = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(count)))
        return count / (time.perf_counter() - started)


def truncate() -> None:
    sql("TRUNCATE webhook_attempts, webhook_deliveries, webhook_events CASCADE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=500)
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()
    sql(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)', f'CREATE DATABASE "{DATABASE}"',
        database="postgres")  # fmt: skip
    work = Path(tempfile.mkdtemp(prefix="paydesk-bench-"))
    env = paydesk_env(work)
    try:
        subprocess.run([PAYDESK, "migrate"], env=env, check=True, capture_output=True)
        created = subprocess.run(
            [PAYDESK, "merchant", "create", "--name", "B", "--email", "b@example.test", "--json"],
            env=env, check=True, capture_output=True, text=True,
        )  # fmt: skip
        merchant = json.loads(created.stdout)["merchant"]
        port = free_port()
        receiver = [sys.executable, "-m", "uvicorn", "bench.receiver_app:app", "--host",
                    "127.0.0.1", "--port", str(port), "--log-level", "warning",
                    "--no-access-log"]  # fmt: skip
        with server(receiver, env, port) as base:
            url = f"{base}/ipn"
            concurrency = settings_of(env).webhook_concurrency
            bare = asyncio.run(ceiling(url, args.events, concurrency))
            log(f"ceiling (bare aiohttp, concurrency {concurrency}): {bare:8.0f} posts/s")
            results = {"ceiling": bare}
            # Warm-up: a first worker stocks the deposit-address pool, so no measured
            # worker spends its run deriving addresses.
            warm = workers(env, 1)
            time.sleep(4)
            stop(warm)
            for count in (1, 2):
                truncate()
                asyncio.run(record(env, merchant, url, args.events))
                started = time.perf_counter()
                running = workers(env, count)
                try:
                    wait_settled(env)
                finally:
                    stop(running)
                rate = args.events / (time.perf_counter() - started)
                results[f"workers_{count}"] = rate
                log(f"drain, {count} worker(s): {rate:8.0f} deliveries/s"
                    f"  ratio to ceiling {rate / bare:.2f}")  # fmt: skip
            truncate()
            running = workers(env, 1)
            try:
                time.sleep(1)  # started and polling
                asyncio.run(record(env, merchant, url, int(args.rate * args.seconds), args.rate))
                wait_settled(env)
            finally:
                stop(running)
            _, _, latencies = asyncio.run(settled(env))
            latencies.sort()
            p50 = statistics.median(latencies)
            p99 = latencies[int(len(latencies) * 0.99) - 1]
            log(
                f"latency at {args.rate:.0f} events/s, 1 worker: p50 {p50:.0f} ms  p99 {p99:.0f} ms"
            )
            results.update(latency_p50_ms=p50, latency_p99_ms=p99)
            out = HERE / "results"
            out.mkdir(exist_ok=True)
            stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
            (out / f"webhooks-{stamp}.json").write_text(json.dumps(results, indent=1))
            log("target: >= 500 deliveries/s")
    finally:
        sql(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)', database="postgres")


if __name__ == "__main__":
    main()
