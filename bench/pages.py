"""The hosted payment page against bare ceilings: page views, and the live-status fan-out.

    .venv/bin/python bench/pages.py [--invoices 5000] [--repeat 500] [--duration 10]
                                    [--rounds 3] [--connections 64] [--watchers 1000]

Each figure is printed beside a bare ceiling measured in the same run, and their ratio:

(a) page views: `--invoices` USDT invoices on devnet (amount, address and QR code on their
    page) created through the signed API, then GET /pay/{uuid} cycling through all of them,
    loaded with wrk in interleaved rounds (ceiling, paydesk, ...) like bench/run.py:
    `paydesk serve` (template, translations, inline SVG QR code) against `ceiling_pages.py`
    (FastAPI + asyncpg, one SELECT, an f-string page); also the page sizes. Twice: first
    views (every request a page not drawn before: its QR code is encoded) and repeat views
    (the first `--repeat` pages reloaded: their QR codes come from the cache);
(b) live status, in process: `PaymentPages.views()` of `--watchers` open invoices (what the
    live-status poller runs once per tick) against the same read done bare with asyncpg;
    and the real poller (`LiveStatus`) handing a first view to every watcher.

A throwaway PostgreSQL database `paydesk_bench_pages` (127.0.0.1:5432, user postgres) is
dropped at the end, also on failure.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from bench.chains import progress  # noqa: E402
from bench.run import (  # noqa: E402
    PAYDESK,
    PG,
    Round,
    create_merchant,
    ensure_wrk,
    free_port,
    log,
    medians,
    server,
    sql,
)
from bench.run import load as run_load  # noqa: E402
from paydesk.config import Settings  # noqa: E402
from paydesk.context import build_context  # noqa: E402
from paydesk.logs import configure_logging  # noqa: E402
from paydesk.paypage.live import LiveStatus  # noqa: E402
from paydesk.paypage.service import PageState  # noqa: E402

DATABASE = "paydesk_bench_pages"
DSN = f"postgresql://postgres@127.0.0.1:5432/{DATABASE}"
DATABASE_URL = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{DATABASE}"
BODY = '{"amount":"15","currency":"USDT","network":"devnet","order_id":"page-%d"}'
#: Invoices created at once through the API.
CREATE_CONCURRENCY = 32
#: Pages fetched once from each target for their sizes.
SIZE_SAMPLES = 21
SVG = re.compile(r"<svg\b.*?</svg>", re.DOTALL)
#: (b): every n-th watched invoice gets a transfer seen on chain and waiting for
#: confirmations, so the tick joins deposits and watcher cursors for real.
SEEN_EVERY = 10
DEVNET_HEIGHT = 1_000
FIRST_VIEW_TARGET = 0.05
REPEAT_VIEW_TARGET = 0.15
TICKS = 20
LIVE_RUNS = 5
LIVE_POLL_SECONDS = 0.05
LIVE_WAIT_SECONDS = 5.0


# --------------------------------------------------------------------------- (a) page views
def sign(body: bytes, key: str) -> str:
    return hashlib.md5(base64.b64encode(body) + key.encode(), usedforsecurity=False).hexdigest()


async def create_invoices(base: str, merchant: dict[str, str], count: int) -> list[str]:
    """`count` signed POST /v1/payment, a few at once; the invoices' uuids, in order."""
    uuids: list[str] = [""] * count
    numbers = iter(range(count))
    with progress() as bar:
        task = bar.add_task(f"creating {count:,} invoices through the API", total=count)
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:

            async def creator() -> None:
                for number in numbers:
                    body = (BODY % number).encode()
                    headers = {
                        "Content-Type": "application/json",
                        "merchant": merchant["merchant"],
                        "sign": sign(body, merchant["payment_key"]),
                    }
                    response = await client.post("/v1/payment", content=body, headers=headers)
                    result = response.json().get("result") if response.is_success else None
                    if not result or not result.get("address"):
                        sys.exit(f"invoice {number}: {response.status_code} {response.text}")
                    uuids[number] = result["uuid"]
                    bar.advance(task)

            await asyncio.gather(*(creator() for _ in range(CREATE_CONCURRENCY)))
    return uuids


def page_sizes(base: str, uuids: list[str], marker: str) -> dict[str, float]:
    """Median bytes of one GET of a few pages, with and without their inline <svg>."""
    step = max(1, len(uuids) // SIZE_SAMPLES)
    whole, bare = [], []
    with httpx.Client(base_url=base, timeout=30) as client:
        for invoice_uuid in uuids[::step][:SIZE_SAMPLES]:
            response = client.get(f"/pay/{invoice_uuid}")
            if response.status_code != 200 or marker not in response.text:
                sys.exit(f"{base}/pay/{invoice_uuid}: {response.status_code} {response.text[:300]}")
            whole.append(len(response.content))
            bare.append(len(SVG.sub("", response.text).encode()))
    return {"bytes": statistics.median(whole), "bytes_without_svg": statistics.median(bare)}


def load(
    wrk: str, target: str, base: str, args: argparse.Namespace, env: dict[str, str], duration: int
) -> Round:
    """A wrk round of GETs of the page paths (get.lua) instead of signed POSTs."""
    return run_load(wrk, target, base, args, env, duration, script="get.lua")


def bench_pages(
    args: argparse.Namespace, wrk: str, env: dict[str, str], work: Path
) -> tuple[list[str], dict[str, Any]]:
    merchant = create_merchant(env)
    paths = work / "paths.txt"
    ceiling_port, paydesk_port = free_port(), free_port()
    ceiling_env = dict(env, BENCH_CEILING_DSN=DSN, BENCH_POOL=str(args.pool))
    wrk_env = dict(os.environ, BENCH_PATHS=str(paths), BENCH_THREADS=str(args.threads))
    ceiling_cmd = [sys.executable, "-m", "uvicorn", "bench.ceiling_pages:app"]
    ceiling_cmd += ["--host", "127.0.0.1", "--port", str(ceiling_port)]
    ceiling_cmd += ["--log-level", "warning", "--no-access-log"]
    paydesk_cmd = [PAYDESK, "serve", "--host", "127.0.0.1", "--port", str(paydesk_port)]
    results: dict[str, Any] = {}
    with (
        server(paydesk_cmd, env, paydesk_port) as paydesk,
        server(ceiling_cmd, ceiling_env, ceiling_port) as ceiling,
    ):
        started = time.perf_counter()
        uuids = asyncio.run(create_invoices(paydesk, merchant, args.invoices))
        log(f"  created {len(uuids):,} invoices in {time.perf_counter() - started:.1f} s")
        sizes = {"ceiling": page_sizes(ceiling, uuids, "<code>"), "paydesk": {}}
        sizes["paydesk"] = page_sizes(paydesk, uuids, "<svg")
        targets = {"ceiling": ceiling, "paydesk": paydesk}
        # First views: every request a page no process has drawn yet (the QR code is
        # encoded for it); repeat views: a few pages reloaded (their QR codes are cached).
        scenarios = {"first views": uuids, "repeat views": uuids[: args.repeat]}
        for scenario, chosen in scenarios.items():
            log(f"  {scenario}: {len(chosen):,} pages")
            paths.write_text("".join(f"/pay/{u}\n" for u in chosen))
            if scenario == "repeat views":
                with httpx.Client(base_url=paydesk, timeout=30) as client:
                    for invoice_uuid in chosen:
                        client.get(f"/pay/{invoice_uuid}")
            for name, base in targets.items():  # warm-up
                load(wrk, name, base, args, wrk_env, 3)
            rounds: list[Round] = []
            for number in range(1, args.rounds + 1):
                for name, base in targets.items():
                    result = load(wrk, name, base, args, wrk_env, args.duration)
                    rounds.append(result)
                    log(
                        f"  round {number} {name:8} {result.rps:8.0f} req/s"
                        f"  p50 {result.p50_ms:6.1f} ms  p99 {result.p99_ms:6.1f} ms"
                        f"  non-2xx {result.status_errors}"
                        f"  socket errors {result.socket_errors}"
                    )
            results[scenario] = summarize(args, scenario, len(chosen), rounds, sizes)
    return uuids, results


def summarize(
    args: argparse.Namespace,
    scenario: str,
    pages: int,
    rounds: list[Round],
    sizes: dict[str, dict[str, float]],
) -> dict[str, Any]:
    summary: dict[str, Any] = {
        target: {**values, **sizes[target]} for target, values in medians(rounds).items()
    }
    ratio = summary["paydesk"]["rps"] / summary["ceiling"]["rps"]
    target_ratio = FIRST_VIEW_TARGET if scenario == "first views" else REPEAT_VIEW_TARGET
    log("")
    log(
        f"(a) page views, {scenario}: GET /pay/{{uuid}} over {pages:,} invoices, "
        f"{args.connections} connections, median of {args.rounds} rounds x {args.duration} s"
    )
    log(
        f"  {'median':8} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}"
        f" {'page bytes':>11} {'without svg':>12}"
    )
    for target, values in summary.items():
        log(
            f"  {target:8} {values['rps']:9.0f} {values['p50_ms']:8.1f} {values['p99_ms']:8.1f}"
            f" {values['errors']:7.0f} {values['bytes']:11,.0f}"
            f" {values['bytes_without_svg']:12,.0f}"
        )
    log(f"  ratio paydesk/ceiling: {ratio:.2f}  (target >= {target_ratio})\n")
    return {"rounds": [asdict(r) for r in rounds], "median": summary, "ratio": ratio}


# --------------------------------------------------------------------------- (b) live status
#: The poller's read, bare: the invoices with their merchant's name, the transfers waiting
#: for confirmations, and the height their network's watcher has read.
VIEW = (
    "SELECT i.*, m.name AS merchant_name, d.txid, d.amount AS seen_amount, d.block_height,"
    " c.height AS tip FROM invoices i JOIN merchants m ON m.id = i.merchant_id"
    " LEFT JOIN deposits d ON d.invoice_id = i.id AND d.status = 'seen'"
    " LEFT JOIN chain_cursors c ON c.network = d.network"
    " WHERE i.uuid = ANY($1::uuid[])"
)


async def bare_tick(pool: asyncpg.Pool, uuids: list[uuid.UUID]) -> tuple[int, int]:
    """The same read as one asyncpg query; (invoices, seen deposits)."""
    async with pool.acquire() as connection:
        rows = await connection.fetch(VIEW, uuids)
    invoices: set[int] = set()
    by_invoice: dict[int, list[int]] = {}
    for row in rows:
        invoices.add(row["id"])
        if row["txid"] is None:
            continue
        tip = row["tip"]
        confirmations = max(tip - row["block_height"] + 1, 0) if tip is not None else 0
        by_invoice.setdefault(row["id"], []).append(confirmations)
    return len(invoices), sum(len(v) for v in by_invoice.values())


async def seed_sightings(uuids: list[uuid.UUID]) -> int:
    """A seen, unconfirmed transfer to every SEEN_EVERY-th watched invoice's address, and
    the devnet watcher's cursor a few blocks past them."""
    connection = await asyncpg.connect(database=DATABASE, **PG)
    try:
        rows = await connection.fetch(
            "SELECT id, merchant_id, address, network FROM invoices WHERE uuid = ANY($1)",
            uuids[::SEEN_EVERY],
        )
        await connection.executemany(
            "INSERT INTO deposits (uuid, network, txid, output_index, address, currency, amount,"
            " block_height, merchant_id, invoice_id, status, created_at)"
            " VALUES ($1, $2, $3, 0, $4, 'USDT', 15, $5, $6, $7, 'seen', now())",
            [
                (
                    uuid.uuid4(),
                    r["network"],
                    os.urandom(32).hex(),
                    r["address"],
                    DEVNET_HEIGHT - 2,
                    r["merchant_id"],
                    r["id"],
                )
                for r in rows
            ],
        )
        await connection.execute(
            "INSERT INTO chain_cursors (network, height, hash, updated_at)"
            " VALUES ('devnet', $1, $2, now())",
            DEVNET_HEIGHT,
            os.urandom(32).hex(),
        )
    finally:
        await connection.close()
    return len(rows)


async def live_status(args: argparse.Namespace, settings: Settings, watched: list[str]) -> dict:
    uuids = [uuid.UUID(u) for u in watched]
    seen = await seed_sightings(uuids)
    context = build_context(settings)
    pool = await asyncpg.create_pool(DSN, min_size=2, max_size=2)
    paydesk: list[float] = []
    bare: list[float] = []
    first_views: list[float] = []
    try:
        with progress() as bar:
            task = bar.add_task("ticks (paydesk, bare)", total=TICKS + 1)
            for tick in range(TICKS + 1):  # the first warms up
                started = time.perf_counter()
                views = await context.payment_pages.views(uuids)
                paydesk_seconds = time.perf_counter() - started
                started = time.perf_counter()
                found, sightings = await bare_tick(pool, uuids)
                bare_seconds = time.perf_counter() - started
                confirming = sum(v.state == PageState.CONFIRMING for v in views.values())
                agree = len(views) == found == len(uuids) and confirming == seen == sightings
                if not agree:
                    sys.exit(
                        f"the reads disagree: {len(views)} views ({confirming} confirming), "
                        f"{found} bare rows ({sightings} seen), {len(uuids)} watched"
                    )
                if tick:
                    paydesk.append(paydesk_seconds)
                    bare.append(bare_seconds)
                bar.advance(task)
            task = bar.add_task(
                f"LiveStatus: first view for {len(uuids):,} watchers", total=LIVE_RUNS
            )
            for _ in range(LIVE_RUNS):
                live = LiveStatus(context.payment_pages, poll_seconds=LIVE_POLL_SECONDS)
                try:
                    started = time.perf_counter()
                    got = await asyncio.gather(
                        *(live.next_view(u, None, LIVE_WAIT_SECONDS) for u in uuids)
                    )
                    first_views.append(time.perf_counter() - started)
                finally:
                    await live.close()
                if any(view is None for view in got):
                    sys.exit(f"{sum(v is None for v in got)} watchers got no view")
                bar.advance(task)
    finally:
        await pool.close()
        await context.close()
    result = {
        "watchers": len(uuids),
        "confirming": seen,
        "paydesk_ms": statistics.median(paydesk) * 1000,
        "ceiling_ms": statistics.median(bare) * 1000,
        "paydesk_range_ms": [min(paydesk) * 1000, max(paydesk) * 1000],
        "ceiling_range_ms": [min(bare) * 1000, max(bare) * 1000],
        "first_view_all_ms": statistics.median(first_views) * 1000,
        "first_view_all_runs_ms": [s * 1000 for s in first_views],
    }
    result["ratio"] = result["paydesk_ms"] / result["ceiling_ms"]
    log("")
    log(
        f"(b) live status: one tick for {len(uuids):,} open pages ({seen} with a transfer "
        f"waiting for confirmations), median of {TICKS} ticks"
    )
    log(
        f"  paydesk PaymentPages.views()      {result['paydesk_ms']:8.1f} ms per tick"
        f"  (range {min(paydesk) * 1000:.1f}-{max(paydesk) * 1000:.1f})"
    )
    log(
        f"  ceiling: the same read, asyncpg  {result['ceiling_ms']:8.1f} ms per tick"
        f"  (range {min(bare) * 1000:.1f}-{max(bare) * 1000:.1f})"
    )
    log(
        f"  ratio paydesk/ceiling (time): {result['ratio']:.2f}"
        f"  (target: paydesk < 100 ms per tick for 1,000 pages)"
    )
    log(
        f"  context: LiveStatus(poll {LIVE_POLL_SECONDS} s), {len(uuids):,} concurrent "
        f"next_view(): all had their first view after {result['first_view_all_ms']:.1f} ms "
        f"(median of {LIVE_RUNS}; " + ", ".join(f"{s * 1000:.0f}" for s in first_views) + " ms)"
    )
    return result


# --------------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--invoices", type=int, default=5000, help="invoices whose pages load")
    parser.add_argument("--duration", type=int, default=10, help="seconds per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per target (>= 3)")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument(
        "--pool", type=int, default=32, help="database connections per server, both targets"
    )
    parser.add_argument(
        "--repeat", type=int, default=500, help="pages reloaded in the repeat-views rounds"
    )
    parser.add_argument("--watchers", type=int, default=1000, help="open pages for (b)")
    args = parser.parse_args()
    if args.watchers > args.invoices:
        parser.error("--watchers: at most --invoices")
    wrk = ensure_wrk()
    configure_logging("warning")

    drop = f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)'
    sql(drop, f'CREATE DATABASE "{DATABASE}"', database="postgres")
    work = Path(tempfile.mkdtemp(prefix="paydesk-bench-pages-"))
    # The CLI, both servers and the in-process context read the same settings (and the
    # master key the first command generates in the data directory).
    for name in [k for k in os.environ if k.startswith("PAYDESK_")]:
        del os.environ[name]
    os.environ.update(
        PAYDESK_DATA_DIR=str(work / "data"),
        PAYDESK_DATABASE_URL=DATABASE_URL,
        PAYDESK_LOG_LEVEL="warning",
        PAYDESK_DB_POOL_SIZE=str(args.pool),
        PAYDESK_EMBEDDED_WORKER="false",
        PAYDESK_RATE_PROVIDERS="",
    )
    env = dict(os.environ)
    started = time.perf_counter()
    try:
        subprocess.run([PAYDESK, "migrate"], env=env, check=True, capture_output=True)
        log(f"running (a) page views on PostgreSQL ({args.invoices:,} invoices)")
        uuids, pages = bench_pages(args, wrk, env, work)
        log(f"\nrunning (b) live status ({args.watchers:,} watchers)")
        live = asyncio.run(live_status(args, Settings(), uuids[: args.watchers]))
    finally:
        shutil.rmtree(work, ignore_errors=True)
        sql(drop, database="postgres")
    log(f"\ntotal {time.perf_counter() - started:.0f} s")
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (results / f"pages-{stamp}.json").write_text(
        json.dumps({"args": vars(args), "page_views": pages, "live_status": live}, indent=2)
    )


if __name__ == "__main__":
    main()
