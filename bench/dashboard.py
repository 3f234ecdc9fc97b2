"""The merchant dashboard against bare ceilings: the invoice list, its search, sign-in.

    .venv/bin/python bench/dashboard.py [--invoices 10000] [--duration 10] [--rounds 3]
                                        [--connections 32] [--login-duration 10]
                                        [--login-connections 4]

Each figure is printed beside a bare ceiling (`ceiling_dashboard.py`: FastAPI + asyncpg +
Jinja) measured in the same run, and their ratio, from interleaved wrk rounds (ceiling,
paydesk, ...) like bench/run.py:

(a) the invoice list of a project with `--invoices` invoices, signed in as its owner:
    GET /dashboard/projects/{id}/invoices (the newest 25) and the same with
    `?q=<an order_id prefix>`; the ceiling checks the session cookie with one SELECT by its
    digest, reads the 25 newest invoices with the same ORDER BY (and the same search
    conditions) and renders a Jinja table. The statements Paydesk runs for both lists are
    EXPLAINed (ANALYZE) on the bench database before it is dropped;
(b) sign-in: POST /dashboard/login with a valid CSRF cookie and field and the right
    password, a few connections; argon2id dominates on purpose and the ceiling verifies the
    same hash with the same `PasswordHasher().verify` in a bare endpoint. Meanwhile a
    cheap page of the Paydesk process (GET /dashboard/login) is fetched ten times a second:
    its latency while Paydesk is idle (the ceiling's rounds) and while it signs users in
    (the hash runs on the event loop, so every other request waits for it).

The owner (argon2id password, email confirmed) and the project are made with Paydesk's own
code in a throwaway PostgreSQL database `paydesk_bench_dashboard` (127.0.0.1:5432, user
postgres); a few invoices are created through the signed API and the rest are copies of
them inserted with COPY (new uuid, order_id, dates, status). The database is dropped at
the end, also on failure; the whole run is bounded by an alarm.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import asyncpg
import httpx
from argon2 import PasswordHasher
from cryptography.fernet import Fernet
from sqlalchemy import event

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from bench.run import PAYDESK, PG, Round, ensure_wrk, free_port, log, medians, server, sql  # noqa: E402
from bench.run import load as run_load  # noqa: E402
from paydesk.accounts.service import hash_password  # noqa: E402
from paydesk.config import Settings  # noqa: E402
from paydesk.context import build_context  # noqa: E402
from paydesk.dashboard.invoices import InvoiceFilter, search_invoices  # noqa: E402
from paydesk.db import utcnow  # noqa: E402
from paydesk.logs import configure_logging  # noqa: E402
from paydesk.merchants.models import User  # noqa: E402
from paydesk.merchants.service import create_merchant  # noqa: E402

DATABASE = "paydesk_bench_dashboard"
DSN = f"postgresql://postgres@127.0.0.1:5432/{DATABASE}"
DATABASE_URL = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{DATABASE}"
EMAIL = "owner@example.com"
PASSWORD = "correct horse battery staple"
#: Invoices created through the API, half of them USDT on the devnet (an address and a
#: payer amount), half in USD (the payer has not chosen a coin); the rest copies them.
API_INVOICES = 12
API_BODIES = (
    '{"amount":"15.00","currency":"USD","order_id":"api-%d"}',
    '{"amount":"15","currency":"USDT","network":"devnet","order_id":"api-%d"}',
)
#: The copies' creation times spread over this many days, newest last; those of the last
#: hour still wait for payment, older ones are paid (7 in 10) or expired.
SPREAD_DAYS = 90
PER_PAGE = 25
#: While the sign-ins run, a cheap page of the same process is fetched this often.
PROBE_EVERY = 0.1
ORDER_ID = re.compile(r">((?:order|api)-\d+)<")
CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]+)"')
#: get.lua (setup, init, request and the RESULT line) with the dashboard's cookie, and a
#: form POST instead of the GET when BENCH_BODY is set.
LUA = """\
dofile("{get}")
wrk.headers["Cookie"] = os.getenv("BENCH_COOKIE")
local body = os.getenv("BENCH_BODY") or ""
if body ~= "" then
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
  function request()
    index = index + 1
    if index > #paths then index = 1 end
    return wrk.format("POST", paths[index], nil, body)
  end
end
"""


# --------------------------------------------------------------------------- set-up
def settings_env(work: Path, pool: int) -> dict[str, str]:
    """The servers' and the in-process context's settings: the same database and the same
    master key."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYDESK_")}
    env.update(
        PAYDESK_DATA_DIR=str(work / "data"),
        PAYDESK_DATABASE_URL=DATABASE_URL,
        PAYDESK_MASTER_KEY=Fernet.generate_key().decode(),
        PAYDESK_LOG_LEVEL="warning",
        PAYDESK_DB_POOL_SIZE=str(pool),
        PAYDESK_EMBEDDED_WORKER="false",
        PAYDESK_RATE_PROVIDERS="",
    )
    return env


async def create_owner() -> tuple[uuid.UUID, str]:
    """A user who signed up and confirmed the address, and a project of theirs: the
    project's id and payment key."""
    context = build_context(Settings())
    try:
        async with context.db.transaction() as session:
            user = User(email=EMAIL, password_hash=await hash_password(PASSWORD),
                        email_confirmed_at=utcnow())  # fmt: skip
            session.add(user)
            await session.flush()
            issued = await create_merchant(session, context.vault, name="Bench shop", user=user)
    finally:
        await context.close()
    return issued.merchant_id, issued.payment_key


def create_api_invoices(base: str, merchant_id: uuid.UUID, key: str) -> None:
    with httpx.Client(base_url=base, timeout=30) as client:
        for number in range(API_INVOICES):
            body = (API_BODIES[number % 2] % number).encode()
            sign = hashlib.md5(base64.b64encode(body) + key.encode(), usedforsecurity=False)
            response = client.post(
                "/v1/payment",
                content=body,
                headers={"Content-Type": "application/json", "merchant": str(merchant_id),
                         "sign": sign.hexdigest()},
            )  # fmt: skip
            if not response.is_success or not response.json().get("result"):
                sys.exit(f"invoice {number}: {response.status_code} {response.text}")


async def copy_invoices(merchant_id: uuid.UUID, count: int) -> None:
    """`count` invoices copied from those the API made, oldest first (so ids grow with
    creation time, as they do), then ANALYZE (autovacuum would, a minute later)."""
    connection = await asyncpg.connect(database=DATABASE, **PG)
    try:
        models = await connection.fetch(
            "SELECT * FROM invoices WHERE merchant_id = $1 ORDER BY id", merchant_id
        )
        columns = [name for name in dict(models[0]) if name != "id"]
        crypto = [dict(m) for m in models if m["payer_currency"]]
        anyone = [dict(m) for m in models]
        now = utcnow()
        step = timedelta(days=SPREAD_DAYS) / count
        records = []
        for number in range(count):
            created = now - timedelta(minutes=5) - step * (count - number)
            waiting = now - created < timedelta(hours=1)
            paid = not waiting and number % 10 < 7
            chosen = crypto if paid else anyone
            row = dict(chosen[number % len(chosen)])
            row.update(
                uuid=uuid.uuid4(),
                order_id=f"order-{number:06d}",
                created_at=created,
                updated_at=created,
                expired_at=created + timedelta(seconds=row["lifetime"]),
                status="check" if waiting else ("paid" if paid else "cancel"),
            )
            if row["address"]:
                row["address"] = f"{row['address'][:-10]}{number:010d}"
            if paid:
                row.update(
                    payment_amount=row["payer_amount"],
                    received_merchant_amount=row["merchant_amount"],
                    received_commission=row["commission"],
                    txid=secrets.token_hex(32),
                    updated_at=created + timedelta(minutes=3),
                )
            records.append(tuple(row[c] for c in columns))
        await connection.copy_records_to_table("invoices", records=records, columns=columns)
        await connection.execute("ANALYZE invoices")
    finally:
        await connection.close()


def sign_in(base: str) -> tuple[str, str, str]:
    """Sign in through the pages: (session token, anonymous CSRF cookie, form body)."""
    with httpx.Client(base_url=base, timeout=30) as client:
        page = client.get("/dashboard/login")
        csrf = page.cookies.get("paydesk_csrf")
        field = CSRF_INPUT.search(page.text)
        if page.status_code != 200 or not csrf or not field or field.group(1) != csrf:
            sys.exit(f"GET /dashboard/login: {page.status_code}, no CSRF cookie and field")
        body = urlencode({"csrf_token": csrf, "email": EMAIL, "password": PASSWORD})
        signed = client.post(
            "/dashboard/login",
            content=body,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        token = signed.cookies.get("paydesk_session")
        if signed.status_code != 303 or not token:
            sys.exit(f"POST /dashboard/login: {signed.status_code} {signed.text[:300]}")
    return token, csrf, body


def order_ids(base: str, path: str, token: str) -> list[str]:
    response = httpx.get(base + path, cookies={"paydesk_session": token}, timeout=30)
    if response.status_code != 200:
        sys.exit(f"{base}{path}: {response.status_code} {response.text[:300]}")
    return ORDER_ID.findall(response.text)


def search_prefix(count: int) -> str:
    """An order_id prefix ten invoices have (order-00333x of 10,000), two thirds of the way
    back from the newest: the search reads past most of the project's invoices."""
    return f"order-{count // 3:06d}"[:-1]


# --------------------------------------------------------------------------- rounds
def rate(per_second: float) -> str:
    """Requests per second as printed: a tenth for the slow sign-ins."""
    return f"{per_second:.1f}" if per_second < 100 else f"{per_second:.0f}"


def measure(
    title: str,
    wrk: str,
    targets: dict[str, str],
    args: argparse.Namespace,
    env: dict[str, str],
    duration: int,
    script: Path,
) -> dict[str, Any]:
    """A warm-up of each target, then interleaved rounds; the medians and the ratio."""
    for name, base in targets.items():
        run_load(wrk, name, base, args, env, 3, script=str(script))
    rounds: list[Round] = []
    windows: list[tuple[str, float, float]] = []
    for number in range(1, args.rounds + 1):
        for name, base in targets.items():
            began = time.monotonic()
            result = run_load(wrk, name, base, args, env, duration, script=str(script))
            windows.append((name, began, time.monotonic()))
            rounds.append(result)
            log(
                f"  round {number} {name:8} {rate(result.rps):>8} req/s"
                f"  p50 {result.p50_ms:7.1f} ms  p99 {result.p99_ms:7.1f} ms"
                f"  non-2xx/3xx {result.status_errors}  socket errors {result.socket_errors}"
            )
    summary: dict[str, Any] = medians(rounds, tuple(targets))
    ratio = summary["paydesk"]["rps"] / summary["ceiling"]["rps"]
    log("")
    log(f"{title}: {args.connections} connections, median of {args.rounds} rounds x {duration} s")
    log(f"  {'median':8} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    for target, values in summary.items():
        log(
            f"  {target:8} {rate(values['rps']):>9} {values['p50_ms']:8.1f}"
            f" {values['p99_ms']:8.1f} {values['errors']:7.0f}"
        )
    log(f"  ratio paydesk/ceiling: {ratio:.2f}\n")
    return {
        "rounds": [asdict(r) for r in rounds],
        "median": summary,
        "ratio": ratio,
        "windows": windows,
    }


class Probe:
    """GET `url` every PROBE_EVERY seconds in a thread: (start, seconds) of each answer.
    A sign-in hashes on the server's event loop, so this shows what everything else the
    process serves waits meanwhile."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Probe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def _run(self) -> None:
        with httpx.Client(timeout=30) as client:
            while not self._stop.wait(PROBE_EVERY):
                began = time.monotonic()
                if client.get(self.url).status_code == 200:
                    self.samples.append((began, time.monotonic() - began))

    def during(self, windows: list[tuple[str, float, float]], target: str) -> dict[str, float]:
        """p50, p99 and max in ms of the probes started during `target`'s rounds."""
        took = sorted(
            seconds * 1000
            for began, seconds in self.samples
            if any(name == target and start <= began < end for name, start, end in windows)
        )
        if not took:
            return {"probes": 0, "p50_ms": 0.0, "p99_ms": 0.0, "max_ms": 0.0}
        return {
            "probes": len(took),
            "p50_ms": statistics.median(took),
            "p99_ms": took[min(len(took) - 1, int(len(took) * 0.99))],
            "max_ms": took[-1],
        }


# --------------------------------------------------------------------------- EXPLAIN
async def explain(merchant_id: uuid.UUID, prefix: str) -> dict[str, Any]:
    """The statements Paydesk's list runs (captured from its own engine), under
    EXPLAIN (ANALYZE, BUFFERS) on the bench database: the third run's plan."""
    context = build_context(Settings())
    captured: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, *rest: Any) -> None:
        if "FROM invoices" in statement and "ORDER BY" in statement:
            captured.append((statement, parameters))

    event.listen(context.db.engine.sync_engine, "before_cursor_execute", capture)
    try:
        for filters in (InvoiceFilter(), InvoiceFilter(query=prefix)):
            async with context.db.transaction() as session:
                await search_invoices(session, merchant_id, filters)
    finally:
        await context.close()
    connection = await asyncpg.connect(database=DATABASE, **PG)
    plans: dict[str, Any] = {}
    try:
        for name, (statement, parameters) in zip(("list", "search"), captured, strict=True):
            for _ in range(3):
                rows = await connection.fetch(
                    "EXPLAIN (ANALYZE, BUFFERS) " + statement, *parameters
                )
            plan = [row[0] for row in rows]
            took = next(line for line in plan if line.startswith("Execution Time"))
            plans[name] = {"statement": statement, "plan": plan,
                           "execution_ms": float(took.split()[2])}  # fmt: skip
    finally:
        await connection.close()
    return plans


def show_plans(plans: dict[str, Any], prefix: str) -> None:
    for name, found in plans.items():
        what = "newest 25" if name == "list" else f"q={prefix}"
        log(f"EXPLAIN ANALYZE, Paydesk's {what} query: {found['execution_ms']:.2f} ms")
        for line in found["plan"]:
            if not line.startswith(("Planning", "Execution")):
                log(f"    {line}")
    log("")


# --------------------------------------------------------------------------- main
def budget(args: argparse.Namespace) -> int:
    """Seconds the whole run may take before the alarm stops it."""
    rounds = 2 * (3 + 5 + args.rounds * 2 * (args.duration + 5))
    rounds += 3 + 5 + args.rounds * 2 * (args.login_duration + 5)
    return 240 + args.invoices // 200 + rounds


def timed_out(signum: int, frame: Any) -> None:
    raise TimeoutError("the benchmark ran past its time budget")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--invoices", type=int, default=10_000, help="invoices of the project")
    parser.add_argument("--duration", type=int, default=10, help="seconds per list round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per target (>= 3)")
    parser.add_argument("--connections", type=int, default=32, help="for the lists")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument(
        "--pool", type=int, default=32, help="database connections per server, both targets"
    )
    parser.add_argument("--login-duration", type=int, default=10, help="seconds per round")
    parser.add_argument("--login-connections", type=int, default=4)
    args = parser.parse_args()
    if args.invoices < 100:
        parser.error("--invoices: at least 100")
    wrk = ensure_wrk()
    configure_logging("warning")
    signal.signal(signal.SIGALRM, timed_out)
    signal.alarm(budget(args))

    drop = f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)'
    sql(drop, f'CREATE DATABASE "{DATABASE}"', database="postgres")
    work = Path(tempfile.mkdtemp(prefix="paydesk-bench-dashboard-"))
    env = settings_env(work, args.pool)
    os.environ.update({k: v for k, v in env.items() if k.startswith("PAYDESK_")})
    started = time.perf_counter()
    results: dict[str, Any] = {"args": vars(args)}
    try:
        subprocess.run([PAYDESK, "migrate"], env=env, check=True, capture_output=True)
        merchant_id, key = asyncio.run(create_owner())
        results.update(run(args, wrk, env, work, merchant_id, key))
    finally:
        signal.alarm(0)
        shutil.rmtree(work, ignore_errors=True)
        sql(drop, database="postgres")
    log(f"total {time.perf_counter() - started:.0f} s")
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (out / f"dashboard-{stamp}.json").write_text(json.dumps(results, indent=2, default=str))


def run(
    args: argparse.Namespace,
    wrk: str,
    env: dict[str, str],
    work: Path,
    merchant_id: uuid.UUID,
    key: str,
) -> dict[str, Any]:
    script = work / "dashboard.lua"
    script.write_text(LUA.format(get=HERE / "get.lua"))
    paths = work / "paths.txt"
    ceiling_port, paydesk_port = free_port(), free_port()
    ceiling_env = dict(env, BENCH_CEILING_DSN=DSN, BENCH_POOL=str(args.pool))
    ceiling_cmd = [sys.executable, "-m", "uvicorn", "bench.ceiling_dashboard:app"]
    ceiling_cmd += ["--host", "127.0.0.1", "--port", str(ceiling_port)]
    ceiling_cmd += ["--log-level", "warning", "--no-access-log"]
    paydesk_cmd = [PAYDESK, "serve", "--host", "127.0.0.1", "--port", str(paydesk_port)]
    project = f"/dashboard/projects/{merchant_id}/invoices"
    prefix = search_prefix(args.invoices)
    results: dict[str, Any] = {}
    with (
        server(paydesk_cmd, env, paydesk_port) as paydesk,
        server(ceiling_cmd, ceiling_env, ceiling_port) as ceiling,
    ):
        targets = {"ceiling": ceiling, "paydesk": paydesk}
        began = time.perf_counter()
        create_api_invoices(paydesk, merchant_id, key)
        asyncio.run(copy_invoices(merchant_id, args.invoices - API_INVOICES))
        log(
            f"{args.invoices:,} invoices ({API_INVOICES} through the API, the rest copied) "
            f"in {time.perf_counter() - began:.1f} s"
        )
        token, csrf, body = sign_in(paydesk)
        log("signed in through POST /dashboard/login")

        # (a) the invoice list and its search; both targets must show the same invoices.
        for title, path in (
            ("(a) invoice list, newest 25", project),
            (f"(a) invoice search ?q={prefix}", f"{project}?{urlencode({'q': prefix})}"),
        ):
            shown = {name: order_ids(base, path, token) for name, base in targets.items()}
            if shown["paydesk"] != shown["ceiling"] or not shown["paydesk"]:
                sys.exit(f"{path}: the pages differ: {shown}")
            log(f"running {title}: GET {path} ({len(shown['paydesk'])} invoices shown)")
            paths.write_text(f"{path}\n" * 64)
            wrk_env = dict(os.environ, BENCH_PATHS=str(paths), BENCH_THREADS=str(args.threads),
                           BENCH_COOKIE=f"paydesk_session={token}")  # fmt: skip
            key_name = "list" if "?" not in path else "search"
            results[key_name] = measure(
                f"{title} ({args.invoices:,} invoices)", wrk, targets, args, wrk_env,
                args.duration, script,
            )  # fmt: skip
            results[key_name]["shown"] = len(shown["paydesk"])

        # (b) sign-in: the right password, a valid CSRF pair, few connections.
        for name, base in targets.items():
            answer = httpx.post(
                base + "/dashboard/login", content=body, cookies={"paydesk_csrf": csrf},
                headers={"Content-Type": "application/x-www-form-urlencoded"}, timeout=30,
            )  # fmt: skip
            if answer.status_code != 303 or not answer.cookies.get("paydesk_session"):
                sys.exit(f"{name} POST /dashboard/login: {answer.status_code} {answer.text}")
        sessions_before = asyncio.run(count("user_sessions"))
        paths.write_text("/dashboard/login\n" * 64)
        login_args = argparse.Namespace(**vars(args))
        login_args.connections = args.login_connections
        wrk_env = dict(os.environ, BENCH_PATHS=str(paths), BENCH_THREADS=str(args.threads),
                       BENCH_COOKIE=f"paydesk_csrf={csrf}", BENCH_BODY=body)  # fmt: skip
        log(f"running (b) sign-in: POST /dashboard/login, {args.login_connections} connections")
        with Probe(paydesk + "/dashboard/login") as probe:
            results["login"] = measure(
                "(b) sign-in, POST /dashboard/login (argon2id)", wrk, targets, login_args,
                wrk_env, args.login_duration, script,
            )  # fmt: skip
        windows = results["login"]["windows"]
        idle, busy = probe.during(windows, "ceiling"), probe.during(windows, "paydesk")
        results["login"]["probe"] = {"paydesk idle": idle, "paydesk signing in": busy}
        log(f"  GET /dashboard/login on the Paydesk process every {PROBE_EVERY} s (no database):")
        for label, values in results["login"]["probe"].items():
            log(
                f"    {label:20} p50 {values['p50_ms']:7.1f} ms  p99 {values['p99_ms']:7.1f} ms"
                f"  max {values['max_ms']:7.1f} ms  ({values['probes']:.0f} probes)"
            )
        sessions = asyncio.run(count("user_sessions")) - sessions_before
        failures = asyncio.run(count("login_failures"))
        log(f"  sessions opened by Paydesk during (b): {sessions:,}; failed sign-ins: {failures}")
        results["login"].update(sessions_opened=sessions, login_failures=failures)
        results["hash_ms"] = time_hash()
        log(
            f"  one PasswordHasher().verify alone in this process: "
            f"{results['hash_ms']:.1f} ms (median of 20)\n"
        )

    plans = asyncio.run(explain(merchant_id, prefix))
    show_plans(plans, prefix)
    results["explain"] = plans
    return results


async def count(table: str) -> int:
    connection = await asyncpg.connect(database=DATABASE, **PG)
    try:
        return int(await connection.fetchval(f"SELECT count(*) FROM {table}"))
    finally:
        await connection.close()


def time_hash() -> float:
    """The hash's own cost, for scale: one verify of the owner's password, no server."""
    hasher = PasswordHasher()
    stored = hasher.hash(PASSWORD)
    took = []
    for _ in range(21):
        began = time.perf_counter()
        hasher.verify(stored, PASSWORD)
        took.append(time.perf_counter() - began)
    return statistics.median(took[1:]) * 1000


if __name__ == "__main__":
    main()
