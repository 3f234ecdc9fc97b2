"""Signed invoice (or payout) creation through the full Paydesk API against a bare ceiling.

    .venv/bin/python bench/run.py [--duration 10] [--rounds 3] [--connections 64]
                                  [--workers 1] [--scenario fiat|crypto|payout|moneroo]

Both servers run on 127.0.0.1 against one throwaway PostgreSQL database; wrk loads them in
interleaved rounds (ceiling, paydesk, ceiling, ...) and the medians are compared, because
absolute rates drift on a shared machine while same-minute ratios hold.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import httpx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PAYDESK = str(Path(sys.executable).parent / "paydesk")
PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
DATABASE = "paydesk_bench"
DSN = f"postgresql://postgres@127.0.0.1:5432/{DATABASE}"
#: Upper bound of requests per second, to size the file of pre-signed requests.
MAX_RATE = 15_000
#: Emptied between rounds; the address pool stays (the worker keeps it stocked).
#: The ceiling's invoice-like table: uuid key, unique (merchant, order_id), numeric amount.
CEILING_TABLE = """
CREATE TABLE IF NOT EXISTS bench_invoices (
    uuid uuid PRIMARY KEY,
    merchant_id uuid NOT NULL,
    order_id varchar(128) NOT NULL,
    amount numeric NOT NULL,
    currency varchar(16) NOT NULL,
    status varchar(32) NOT NULL,
    expired_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL,
    UNIQUE (merchant_id, order_id)
)
"""
PAYDESK_TABLES = "invoices, idempotency_records"
#: Where the payout scenario pays to (a devnet address no invoice holds).
PAYOUT_DESTINATION = "pdev1qjw75zgnkqkpp6e94n760w3uetq8wuezzk00d9e"
#: The payout scenario's merchant balance: enough for every request of every round.
PAYOUT_FUNDS = "1000000000000"


@dataclass
class Round:
    target: str
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    status_errors: int
    socket_errors: int


def log(message: str) -> None:
    print(message, flush=True)


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        sys.exit("wrk is missing: install it (Debian: apt-get install wrk) and run again")
    log("installing wrk: apt-get install -y wrk")
    subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=True, capture_output=True)
    return shutil.which("wrk") or sys.exit("wrk did not install")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def admin(*statements: str, database: str = "postgres") -> None:
    connection = await asyncpg.connect(database=database, **PG)
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


def sql(*statements: str, database: str = DATABASE) -> None:
    asyncio.run(admin(*statements, database=database))


def create_merchant(env: dict[str, str]) -> dict[str, str]:
    """A merchant made with the CLI: uuid and keys, as `merchant create --json` prints."""
    created = subprocess.run(
        [PAYDESK, "merchant", "create", "--name", "Bench", "--email", "bench@example.test",
         "--json"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )  # fmt: skip
    return dict(json.loads(created.stdout))


def write_requests(path: Path, count: int, key: str, scenario: str) -> None:
    """Pre-signed bodies, one per line, each with its own order_id."""
    template = {
        "fiat": '{"amount":"15.00","currency":"USD","order_id":"bench-%d"}',
        "crypto": '{"amount":"15","currency":"USDT","network":"devnet","order_id":"bench-%d"}',
        "payout": '{"amount":"1","currency":"USDT","network":"devnet","order_id":"bench-%d",'
        f'"address":"{PAYOUT_DESTINATION}","is_subtract":true}}',
        "moneroo": '{"amount":100,"currency":"USD","description":"Order %d","return_url":'
        '"https://shop.example/thanks","customer":{"email":"buyer@example.com",'
        '"first_name":"Awa","last_name":"Diallo"},"metadata":{"order_id":"1"}}',
    }[scenario]
    key_bytes = key.encode()
    with path.open("w") as handle:
        for n in range(count):
            body = (template % n).encode()
            sign = hashlib.md5(base64.b64encode(body) + key_bytes, usedforsecurity=False)
            handle.write(f"{sign.hexdigest()}\t{body.decode()}\n")


#: Where each scenario posts.
PATHS = {
    "fiat": "/v1/payment",
    "crypto": "/v1/payment",
    "payout": "/v1/payout",
    "moneroo": "/v1/payments/initialize",
}


def moneroo_key(env: dict[str, str], merchant: str) -> str:
    """The merchant's sandbox secret key, as `paydesk merchant keys` shows it."""
    shown = subprocess.run(
        [PAYDESK, "merchant", "keys", merchant, "--json"],
        env=env, check=True, capture_output=True, text=True,
    )  # fmt: skip
    return str(json.loads(shown.stdout)["moneroo_test_secret_key"])


def fund_devnet_balance(base: str, merchant: dict[str, str], env: dict[str, str]) -> None:
    """A static wallet deposit on the devnet, credited by the worker: the payouts' funds."""
    body = b'{"currency":"USDT","network":"devnet","order_id":"bench-funds"}'
    sign = hashlib.md5(base64.b64encode(body) + merchant["payment_key"].encode()).hexdigest()
    answer = httpx.post(
        f"{base}/v1/wallet",
        content=body,
        headers={"merchant": merchant["merchant"], "sign": sign,
                 "content-type": "application/json"},
    )  # fmt: skip
    address = answer.json()["result"]["address"]
    subprocess.run(
        [PAYDESK, "devnet", "pay", f"devnet:{address}?currency=USDT", PAYOUT_FUNDS, "--mine"],
        env=env, check=True, capture_output=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        credited = asyncio.run(scalar("SELECT count(*) FROM deposits WHERE status = 'credited'"))
        if credited:
            log(f"funded the merchant with {PAYOUT_FUNDS} devnet USDT")
            return
        time.sleep(0.2)
    raise RuntimeError("the funding deposit was never credited")


async def scalar(query: str) -> object:
    connection = await asyncpg.connect(database=DATABASE, **PG)
    try:
        return await connection.fetchval(query)
    finally:
        await connection.close()


@contextmanager
def running(command: list[str], env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    """A process whose output goes to a file beside its data (a pipe nobody reads would
    stop it once its logs filled the pipe's buffer)."""
    handle, name = tempfile.mkstemp(prefix=f"bench-{Path(command[0]).name}-", suffix=".log")
    log_file = Path(name)
    with open(handle, "w") as output:
        process = subprocess.Popen(
            command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=output, text=True
        )
    process.log_file = log_file  # type: ignore[attr-defined]
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
        errors = log_file.read_text().count("Traceback")
        if errors:
            log(f"{' '.join(command[:2])}: {errors} tracebacks, see {log_file}")
        else:
            log_file.unlink()


@contextmanager
def server(command: list[str], env: dict[str, str], port: int) -> Iterator[str]:
    base = f"http://127.0.0.1:{port}"
    with running(command, env) as process:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                output = process.log_file.read_text()  # type: ignore[attr-defined]
                sys.exit(f"server exited: {' '.join(command)}\n{output}")
            try:
                httpx.get(base + "/docs", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    sys.exit(f"server did not start: {' '.join(command)}")
                time.sleep(0.2)
        yield base


def load(
    wrk: str,
    target: str,
    base: str,
    args: argparse.Namespace,
    env: dict[str, str],
    duration: int,
    script: str = "post.lua",
) -> Round:
    """One wrk round with `script` (pre-signed POSTs by default); its RESULT line."""
    done = subprocess.run(
        [
            wrk,
            f"-t{args.threads}",
            f"-c{args.connections}",
            f"-d{duration}s",
            "--timeout",
            "10s",
            "-s",
            str(HERE / script),
            base,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=duration + 60,
        check=True,
    )
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
    values = {k: int(v) for k, v in (part.split("=") for part in line.split()[1:])}
    return Round(
        target=target,
        requests=values["requests"],
        rps=values["requests"] / (values["duration_us"] / 1e6),
        p50_ms=values["p50_us"] / 1000,
        p99_ms=values["p99_us"] / 1000,
        status_errors=values["status_errors"],
        socket_errors=values["socket_errors"],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per target (>= 3)")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--workers", type=int, default=1, help="server processes per target")
    parser.add_argument(
        "--pool",
        type=int,
        default=None,
        help="database connections per server process, both targets "
        "(default: 32 split across workers)",
    )
    parser.add_argument(
        "--scenario",
        choices=["fiat", "crypto", "payout", "moneroo"],
        default="fiat",
        help="fiat: payer picks the coin; crypto: USDT with a devnet address; payout: "
        "1 USDT payouts on the devnet from a funded balance (reserve, row, webhook event); "
        "moneroo: Moneroo initialize with a sandbox Bearer key",
    )
    args = parser.parse_args()
    args.pool = args.pool or max(8, 32 // args.workers)
    wrk = ensure_wrk()

    sql(
        f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)',
        f'CREATE DATABASE "{DATABASE}"',
        database="postgres",
    )
    work = Path(tempfile.mkdtemp(prefix="paydesk-bench-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYDESK_")}
    env.update(
        PAYDESK_DATA_DIR=str(work / "data"),
        PAYDESK_DATABASE_URL=f"postgresql+asyncpg://postgres@127.0.0.1:5432/{DATABASE}",
        PAYDESK_LOG_LEVEL="warning",
        PAYDESK_DB_POOL_SIZE=str(args.pool),
        # One key sends every request: Moneroo's per-key limit would refuse nearly all.
        PAYDESK_MONEROO_RATE_LIMIT_PER_MINUTE="0",
    )
    try:
        subprocess.run([PAYDESK, "migrate"], env=env, check=True, capture_output=True)
        merchant = create_merchant(env)
        requests_file = work / "requests.tsv"
        count = (args.duration + 2) * MAX_RATE
        log(f"signing {count} requests ({args.scenario})")
        payout = args.scenario == "payout"
        moneroo = args.scenario == "moneroo"
        key = merchant["payout_key"] if payout else merchant["payment_key"]
        bearer = moneroo_key(env, merchant["merchant"]) if moneroo else ""
        write_requests(requests_file, count, key, args.scenario)

        ceiling_env = dict(
            env,
            BENCH_CEILING_DSN=DSN,
            BENCH_MERCHANT=merchant["merchant"],
            BENCH_PAYMENT_KEY=key,
            BENCH_BEARER=bearer,
            BENCH_POOL=str(args.pool),
        )
        sql(CEILING_TABLE)
        wrk_env = dict(
            os.environ,
            BENCH_REQUESTS=str(requests_file),
            BENCH_MERCHANT=merchant["merchant"],
            BENCH_THREADS=str(args.threads),
            BENCH_PATH=PATHS[args.scenario],
            BENCH_BEARER=bearer,
        )
        ceiling_port, paydesk_port = free_port(), free_port()
        ceiling_cmd = [
            sys.executable,
            "-m",
            "uvicorn",
            "bench.ceiling_app:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(ceiling_port),
            "--workers",
            str(args.workers),
            "--log-level",
            "warning",
            "--no-access-log",
        ]
        paydesk_cmd = [
            PAYDESK,
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(paydesk_port),
            "--workers",
            str(args.workers),
        ]
        rounds: list[Round] = []
        # Paydesk on PostgreSQL runs as documented: API processes plus `paydesk worker`
        # (which, among other things, keeps the deposit-address pool stocked).
        with (
            server(ceiling_cmd, ceiling_env, ceiling_port) as ceiling,
            server(paydesk_cmd, env, paydesk_port) as paydesk,
            running([PAYDESK, "worker"], env),
        ):
            tables = {"payout": "payouts", "moneroo": "checkout_payments"}.get(
                args.scenario, PAYDESK_TABLES
            )
            if payout:
                fund_devnet_balance(paydesk, merchant, env)
            targets = {"ceiling": (ceiling, "bench_invoices"), "paydesk": (paydesk, tables)}
            for name, (base, tables) in targets.items():  # warm-up, then start clean
                load(wrk, name, base, args, wrk_env, 3)
                sql(f"TRUNCATE {tables} CASCADE")
            for number in range(1, args.rounds + 1):
                for name, (base, tables) in targets.items():
                    result = load(wrk, name, base, args, wrk_env, args.duration)
                    sql(f"TRUNCATE {tables} CASCADE")
                    rounds.append(result)
                    log(
                        f"round {number} {name:8} {result.rps:8.0f} req/s"
                        f"  p50 {result.p50_ms:6.1f} ms  p99 {result.p99_ms:6.1f} ms"
                        f"  non-2xx {result.status_errors}  socket errors {result.socket_errors}"
                    )
        report(args, rounds)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        sql(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)', database="postgres")


def medians(
    rounds: list[Round], targets: tuple[str, ...] = ("ceiling", "paydesk")
) -> dict[str, dict[str, float]]:
    """Each target's median rate and latencies over its rounds, and its errors in all."""
    summary: dict[str, dict[str, float]] = {}
    for target in targets:
        mine = [r for r in rounds if r.target == target]
        summary[target] = {
            "rps": statistics.median(r.rps for r in mine),
            "p50_ms": statistics.median(r.p50_ms for r in mine),
            "p99_ms": statistics.median(r.p99_ms for r in mine),
            "errors": sum(r.status_errors + r.socket_errors for r in mine),
        }
    return summary


def report(args: argparse.Namespace, rounds: list[Round]) -> None:
    summary = medians(rounds)
    ratio = summary["paydesk"]["rps"] / summary["ceiling"]["rps"]
    log("")
    log(f"{'median':10} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    for target, values in summary.items():
        log(
            f"{target:10} {values['rps']:9.0f} {values['p50_ms']:8.1f} {values['p99_ms']:8.1f}"
            f" {values['errors']:7.0f}"
        )
    log(f"ratio paydesk/ceiling: {ratio:.2f}  (target >= 0.5; paydesk p99 target < 100 ms)")
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    name = {"payout": "payout-create", "moneroo": "moneroo-initialize"}.get(
        args.scenario, f"invoice-create-{args.scenario}"
    )
    (results / f"{name}-{stamp}.json").write_text(
        json.dumps(
            {
                "args": vars(args),
                "rounds": [asdict(r) for r in rounds],
                "median": summary,
                "ratio": ratio,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
