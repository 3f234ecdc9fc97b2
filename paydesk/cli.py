"""The `paydesk` command."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from decimal import Decimal
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import select

from paydesk import __version__, migrations
from paydesk.app import SchemaOutOfDate, prepare_schema
from paydesk.chains.devnet import DEVNET, DevnetError
from paydesk.chains.keys import BadXpub, NoKeyPath
from paydesk.chains.uri import parse_devnet_uri
from paydesk.config import Settings
from paydesk.context import Context, build_context
from paydesk.db import ensure_sqlite_dir
from paydesk.invoices.models import Invoice
from paydesk.logs import configure_logging
from paydesk.merchants import service as merchants
from paydesk.merchants.service import KeyKind, MerchantError

T = TypeVar("T")

app = typer.Typer(
    help="Paydesk: a self-hosted crypto payment gateway.",
    no_args_is_help=True,
    add_completion=False,
    # A traceback with local variables could print a decrypted key.
    pretty_exceptions_show_locals=False,
)
merchant_app = typer.Typer(
    help="Merchants (projects) and their API keys.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.add_typer(merchant_app, name="merchant")
rates_app = typer.Typer(
    help="Exchange rates: what Paydesk knows and would use.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.add_typer(rates_app, name="rates")
ledger_app = typer.Typer(
    help="The double-entry ledger behind every balance.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.add_typer(ledger_app, name="ledger")
webhooks_app = typer.Typer(
    help="Webhook deliveries: what was sent, what failed, sending again.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.add_typer(webhooks_app, name="webhooks")
keys_app = typer.Typer(
    help="HD keys: what deposit addresses derive from.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.add_typer(keys_app, name="keys")
devnet_app = typer.Typer(
    help="The built-in devnet test chain: pay, mine, reorganise.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.add_typer(devnet_app, name="devnet")
payouts_app = typer.Typer(
    help="Payouts: approval, the hot wallets they are sent from, address allowlists.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.add_typer(payouts_app, name="payouts")
sweeps_app = typer.Typer(
    help="Sweeps: deposits moved from their addresses to the hot wallets.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.add_typer(sweeps_app, name="sweeps")

console = Console()
errors = Console(stderr=True)


def _settings() -> Settings:
    settings = Settings()
    configure_logging(settings.log_level, settings.log_json)
    return settings


def _with_context(work: Callable[[Context], Awaitable[T]]) -> T:
    """Run `work` against a ready database (embedded SQLite migrates itself)."""
    settings = _settings()

    async def main() -> T:
        context = build_context(settings)
        try:
            await prepare_schema(context)
            return await work(context)
        finally:
            await context.close()

    try:
        return asyncio.run(main())
    except SchemaOutOfDate as exc:
        errors.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None


@app.command()
def version() -> None:
    """Print the Paydesk version."""
    console.print(__version__)


@app.command()
def migrate() -> None:
    """Bring the database schema up to date (Alembic)."""
    settings = _settings()
    url = settings.resolved_database_url
    if settings.is_sqlite:
        ensure_sqlite_dir(url)  # a fresh data directory
    with console.status("Applying migrations…"):
        before = migrations.current_revision_sync(url)
        migrations.upgrade(url)
        after = migrations.current_revision_sync(url)
    if before == after:
        console.print(f"Schema already at revision {after}.")
    else:
        console.print(f"Schema migrated from {before or 'empty'} to {after}.")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
    workers: Annotated[int, typer.Option(help="API processes.")] = 1,
) -> None:
    """Run the API (and, on embedded SQLite, the background loops)."""
    import uvicorn

    if host is not None:
        os.environ["PAYDESK_HOST"] = host
    if port is not None:
        os.environ["PAYDESK_PORT"] = str(port)
    settings = _settings()

    async def check(context: Context) -> None:
        return None

    _with_context(check)  # migrates SQLite, or stops on an out-of-date PostgreSQL schema
    console.print(
        f"Paydesk {__version__} on http://{settings.host}:{settings.port} "
        f"(database: {'SQLite' if settings.is_sqlite else 'PostgreSQL'}, "
        f"networks: {', '.join(settings.networks)})"
    )
    uvicorn.run(
        "paydesk.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=workers,
        log_level=settings.log_level,
        access_log=False,
        server_header=False,
        # Open payment-page event streams must not hold a restart: browsers reconnect.
        timeout_graceful_shutdown=5,
    )


@app.command()
def worker() -> None:
    """Run the background loops until interrupted: webhook delivery, invoice expiry,
    address pools, chain watchers, payouts, rates, key purging."""
    # Stopped while still starting (before the loops handle signals): a clean exit.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    from paydesk.worker import run_workers

    async def work(context: Context) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await run_workers(context, stop)

    _with_context(work)


@merchant_app.command("create")
def merchant_create(
    name: Annotated[str, typer.Option(help="Project name shown to payers.")],
    email: Annotated[str, typer.Option(help="Owner's e-mail; the user is created if new.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Create a merchant and print its uuid and both API keys (shown only this once)."""

    async def work(context: Context) -> merchants.IssuedMerchant:
        async with context.db.transaction() as session:
            return await merchants.create_merchant(session, context.vault, name=name, email=email)

    try:
        issued = _with_context(work)
    except MerchantError as exc:
        errors.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "merchant": str(issued.merchant_id),
                    "payment_key": issued.payment_key,
                    "payout_key": issued.payout_key,
                }
            )
        )
        return
    console.print(f"merchant     {issued.merchant_id}")
    console.print(f"payment key  {issued.payment_key}")
    console.print(f"payout key   {issued.payout_key}")
    console.print("[dim]The keys are shown once; Paydesk stores them encrypted.[/dim]")


@merchant_app.command("list")
def merchant_list(
    requested: Annotated[
        bool,
        typer.Option(
            "--requested",
            help="Only projects waiting for API access, with what they told about themselves.",
        ),
    ] = False,
) -> None:
    """List merchants (never their keys) and their API access."""
    from paydesk.merchants.models import Merchant, User

    async def work(context: Context) -> list[tuple[Merchant, User]]:
        async with context.db.transaction() as session:
            rows = await merchants.list_merchants(session)
        return [
            (m, u) for m, u in rows
            if not requested or m.api_access == merchants.ApiAccess.REQUESTED
        ]  # fmt: skip

    rows = _with_context(work)
    if requested:
        for merchant, user in rows:
            console.print(f"[bold]{merchant.name}[/bold]  {merchant.id}  {user.email}")
            console.print(f"  website      {merchant.website}")
            console.print(f"  description  {merchant.description}")
            console.print(f"  asked        {merchant.api_requested_at:%Y-%m-%d %H:%M} UTC")
        if not rows:
            console.print("No project is waiting for API access.")
        return
    table = Table("name", "owner", "api access")
    table.add_column("merchant", no_wrap=True)
    for merchant, user in rows:
        table.add_row(merchant.name, user.email, merchant.api_access, str(merchant.id))
    console.print(table)


@merchant_app.command("approve")
def merchant_approve(merchant: Annotated[str, typer.Argument(help="Merchant uuid.")]) -> None:
    """Grant a dashboard project's API access request: its payment key is shown in the
    dashboard and its keys work (the Moneroo live key too)."""
    merchant_id = _merchant_id(merchant)

    async def work(context: Context) -> str:
        async with context.db.transaction() as session:
            approved = await merchants.approve_api_access(session, merchant_id)
            return approved.name

    try:
        name = _with_context(work)
    except MerchantError as exc:
        errors.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    console.print(f"API access granted to {name} ({merchant_id})")


@merchant_app.command("keys")
def merchant_keys(
    merchant: Annotated[str, typer.Argument(help="Merchant uuid.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Every key of a merchant, in both dialects: the Cryptomus payment and payout keys,
    the Moneroo sandbox and live secret keys, the Moneroo webhook secret."""
    from paydesk.merchants.models import Merchant
    from paydesk.merchants.moneroo_keys import ensure_keys

    merchant_id = _merchant_id(merchant)

    async def work(context: Context) -> dict[str, str]:
        async with context.db.transaction() as session:
            row = await session.get(Merchant, merchant_id, with_for_update=True)
            if row is None:
                raise MerchantError(f"no merchant {merchant_id}")
            moneroo = await ensure_keys(session, context.vault, row)
            return {
                "merchant": str(merchant_id),
                "payment_key": context.vault.decrypt(row.payment_key_encrypted),
                "payout_key": context.vault.decrypt(row.payout_key_encrypted),
                "moneroo_test_secret_key": moneroo.sandbox_secret_key,
                "moneroo_live_secret_key": moneroo.live_secret_key,
                "moneroo_webhook_secret": moneroo.webhook_secret,
            }

    try:
        keys = _with_context(work)
    except MerchantError as exc:
        errors.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps(keys))
        return
    table = Table("key", "value")
    for name, value in keys.items():
        table.add_row(name, value)
    console.print(table)


@merchant_app.command("rotate-key")
def merchant_rotate_key(
    merchant: Annotated[str, typer.Argument(help="Merchant uuid.")],
    kind: Annotated[KeyKind, typer.Option(help="Which key to replace.")] = KeyKind.PAYMENT,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Replace a merchant's payment or payout key; the old key stops working. A new payout
    key holds payouts for PAYDESK_PAYOUT_KEY_HOLD_HOURS."""
    merchant_id = _merchant_id(merchant)

    async def work(context: Context) -> str:
        hold = timedelta(hours=context.settings.payout_key_hold_hours)
        async with context.db.transaction() as session:
            return await merchants.rotate_key(
                session, context.vault, merchant_id, kind, payout_hold=hold
            )

    try:
        key = _with_context(work)
    except MerchantError as exc:
        errors.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps({"merchant": merchant, f"{kind.value}_key": key}))
    else:
        console.print(f"new {kind.value} key  {key}")


@rates_app.command("refresh")
def rates_refresh() -> None:
    """Ask every configured provider now and store what they answer."""
    from paydesk.rates.providers import build_providers
    from paydesk.rates.worker import refresh_once

    async def work(context: Context) -> list[tuple[str, int, str | None]]:
        providers = build_providers(context.settings, context.catalogue.all_codes)
        try:
            with console.status(f"Asking {len(providers)} rate providers…"):
                outcomes = await refresh_once(context, providers)
        finally:
            for provider in providers:
                await provider.close()
        return [(o.provider, o.pairs, o.error) for o in outcomes]

    outcomes = _with_context(work)
    if not outcomes:
        console.print("No rate providers are configured (PAYDESK_RATE_PROVIDERS).")
        return
    table = Table("provider", "pairs", "status")
    for name, pairs, error in outcomes:
        table.add_row(name, str(pairs), f"[red]{error}[/red]" if error else "[green]ok[/green]")
    console.print(table)
    if all(error for _, _, error in outcomes):
        raise typer.Exit(1)


@rates_app.command("show")
def rates_show(
    pair: Annotated[
        str | None, typer.Argument(help="BASE/QUOTE, e.g. BTC/USD: the rate each source gives.")
    ] = None,
) -> None:
    """Show stored rates, or how a pair converts under each `course_source`."""
    from paydesk.rates.service import AGGREGATE, STATIC, RateBook

    async def work(context: Context) -> RateBook:
        return await context.rates.book()

    if pair is not None:
        base, _, quote = pair.upper().partition("/")
        if not base or not quote:
            errors.print(f"[red]error:[/red] expected BASE/QUOTE, got {pair}")
            raise typer.Exit(1)

    settings = _settings()
    book = _with_context(work)
    if pair is None:
        table = Table("source", "pair", "rate", "as of (UTC)", "age")
        names = [*settings.rate_providers, AGGREGATE, STATIC]
        for name in names:
            for rate in book.rates(name):
                age = book.now - rate.as_of
                table.add_row(
                    name,
                    f"{rate.base}/{rate.quote}",
                    f"{rate.value:f}",
                    rate.as_of.strftime("%Y-%m-%d %H:%M:%S"),
                    _age(age.total_seconds()),
                )
        console.print(table)
        console.print(
            "[dim]Only fresh rates are listed; a provider missing here has none "
            "(run `paydesk rates refresh`).[/dim]"
        )
        return

    table = Table("course_source", "rate", "from")
    from paydesk.rates.service import RateUnavailable

    async def each(context: Context) -> list[tuple[str, str, str]]:
        rows = []
        for label in ("(none)", "Binance", "BinanceP2P", "Exmo", "Kucoin"):
            source = None if label == "(none)" else label
            try:
                rate = await context.rates.get_rate(base, quote, source)
            except RateUnavailable:
                rows.append((label, "[red]unavailable[/red]", ""))
                continue
            rows.append((label, f"{rate.value:f}", rate.source or "same currency"))
        return rows

    for row in _with_context(each):
        table.add_row(*row)
    console.print(table)


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


@ledger_app.command("check")
def ledger_check() -> None:
    """Verify every ledger invariant; exit 1 on any violation (fit for cron)."""
    from rich.progress import Progress

    from paydesk.ledger.check import Report, check_ledger, count_postings

    async def work(context: Context) -> Report:
        async with context.db.reader() as session:
            total = await count_postings(session)
            with Progress(console=errors, transient=True) as progress:
                task = progress.add_task("Checking postings", total=total)
                return await check_ledger(session, lambda n: progress.advance(task, n))

    report = _with_context(work)
    table = Table("checked", "count")
    for name in ("accounts", "transactions", "postings", "deposits"):
        table.add_row(name, str(getattr(report, name)))
    console.print(table)
    if report.ok:
        console.print("[green]ledger ok[/green]: every transaction balances, every running "
                      "total matches its postings, no wallet is below zero.")  # fmt: skip
        return
    for violation in report.violations:
        console.print(f"[red]{violation.rule}[/red]: {violation.detail}")
    if report.more:
        console.print(f"… and {report.more} more violations")
    raise typer.Exit(1)


def _set_blocked(merchant: str, payments: bool | None, payouts: bool | None) -> None:
    if payments is None and payouts is None:
        errors.print("[red]error:[/red] say which: --payments and/or --payouts")
        raise typer.Exit(1)
    merchant_id = _merchant_id(merchant)

    async def work(context: Context) -> tuple[bool, bool]:
        async with context.db.transaction() as session:
            changed = await merchants.set_blocked(
                session, merchant_id, payments=payments, payouts=payouts
            )
            return changed.payments_blocked, changed.payouts_blocked

    try:
        payments_blocked, payouts_blocked = _with_context(work)
    except MerchantError as exc:
        errors.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    state = {True: "[red]blocked[/red]", False: "[green]allowed[/green]"}
    console.print(f"payments {state[payments_blocked]}, payouts {state[payouts_blocked]}")


@merchant_app.command("block")
def merchant_block(
    merchant: Annotated[str, typer.Argument(help="Merchant uuid.")],
    payments: Annotated[bool, typer.Option("--payments", help="New invoices.")] = False,
    payouts: Annotated[bool, typer.Option("--payouts", help="Transfers and payouts.")] = False,
) -> None:
    """Block a merchant's new invoices and/or its money leaving ("You are forbidden")."""
    _set_blocked(merchant, True if payments else None, True if payouts else None)


@merchant_app.command("unblock")
def merchant_unblock(
    merchant: Annotated[str, typer.Argument(help="Merchant uuid.")],
    payments: Annotated[bool, typer.Option("--payments", help="New invoices.")] = False,
    payouts: Annotated[bool, typer.Option("--payouts", help="Transfers and payouts.")] = False,
) -> None:
    """Allow again what `merchant block` stopped."""
    _set_blocked(merchant, False if payments else None, False if payouts else None)


@merchant_app.command("webhook-secret")
def merchant_webhook_secret(
    merchant: Annotated[str, typer.Argument(help="Merchant uuid.")],
    rotate: Annotated[
        bool, typer.Option("--rotate", help="Add a new secret; the previous one stays valid.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Show (or rotate) the secrets of the Standard Webhooks signature (newest first)."""
    merchant_id = _merchant_id(merchant)

    async def work(context: Context) -> tuple[str, ...]:
        async with context.db.transaction() as session:
            return await merchants.webhook_secrets(
                session, context.vault, merchant_id, rotate=rotate
            )

    try:
        secrets_ = _with_context(work)
    except MerchantError as exc:
        errors.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps({"merchant": merchant, "webhook_secrets": list(secrets_)}))
        return
    for number, secret in enumerate(secrets_):
        console.print(f"{'current ' if number == 0 else 'previous'}  {secret}")


@merchant_app.command("emails")
def merchant_emails(
    merchant: Annotated[str, typer.Argument(help="Merchant uuid.")],
    receipts: Annotated[
        bool | None,
        typer.Option(
            "--receipts/--no-receipts",
            help="Email the customer a receipt when a hosted-checkout payment succeeds.",
        ),
    ] = None,
    notices: Annotated[
        bool | None,
        typer.Option(
            "--notices/--no-notices",
            help="Email the merchant's owner when a hosted-checkout payment succeeds.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Show (or turn on or off) the hosted checkout's emails of a successful payment."""
    from paydesk.notifications.checkout import EmailChoices, choose_emails

    merchant_id = _merchant_id(merchant)

    async def work(context: Context) -> EmailChoices:
        async with context.db.transaction() as session:
            return await choose_emails(session, merchant_id, receipts=receipts, notices=notices)

    try:
        choices = _with_context(work)
    except LookupError as exc:
        errors.print(f"[red]error:[/red] {exc.args[0]}")
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps({"merchant": merchant, "receipts": choices.receipts,
                               "notices": choices.notices}))  # fmt: skip
        return
    state = {True: "[green]on[/green]", False: "[red]off[/red]"}
    console.print(f"customer receipts {state[choices.receipts]}, "
                  f"merchant notices {state[choices.notices]}")  # fmt: skip


@webhooks_app.command("list")
def webhooks_list(
    failed: Annotated[
        bool, typer.Option("--failed", help="Only dead deliveries and those being retried.")
    ] = False,
    limit: Annotated[int, typer.Option(help="Newest first, at most this many.")] = 50,
) -> None:
    """List webhook deliveries with their attempts and last error."""
    from sqlalchemy import select

    from paydesk.webhooks.models import WebhookDelivery, WebhookEvent

    async def work(context: Context) -> list[tuple[WebhookDelivery, WebhookEvent]]:
        query = (
            select(WebhookDelivery, WebhookEvent)
            .join(WebhookEvent, WebhookEvent.id == WebhookDelivery.event_id)
            .order_by(WebhookDelivery.id.desc())
            .limit(limit)
        )
        if failed:
            query = query.where(
                (WebhookDelivery.status == "dead")
                | ((WebhookDelivery.status == "pending") & (WebhookDelivery.attempts > 0))
            )
        async with context.db.reader() as session:
            return [(d, e) for d, e in (await session.execute(query)).all()]

    table = Table("id", "status", "tries", "event", "subject", "url", "last error / delivered")
    for delivery, event in _with_context(work):
        status = {"delivered": "green", "dead": "red"}.get(delivery.status, "yellow")
        detail = (
            delivery.delivered_at.strftime("%Y-%m-%d %H:%M:%S")
            if delivery.delivered_at
            else (delivery.last_error or "")
        )
        table.add_row(
            str(delivery.id),
            f"[{status}]{delivery.status}[/{status}]",
            str(delivery.attempts),
            f"{event.topic} {event.payload.get('status', '')}",
            str(event.subject_uuid),
            delivery.url,
            detail,
        )
    console.print(table)


@webhooks_app.command("retry")
def webhooks_retry(
    delivery: Annotated[int, typer.Argument(help="Delivery id (from `webhooks list`).")],
) -> None:
    """Send a delivery's event again (a new delivery, attempted at once by the worker)."""
    from paydesk.db import utcnow
    from paydesk.webhooks.service import retry_dead

    async def work(context: Context) -> int:
        async with context.db.transaction() as session:
            return (await retry_dead(session, delivery, utcnow())).id

    try:
        new_id = _with_context(work)
    except LookupError as exc:
        errors.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    console.print(f"queued as delivery {new_id}")


def _endpoint_id(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        errors.print(f"[red]error:[/red] not a webhook endpoint id: {text}")
        raise typer.Exit(1) from None


def _moneroo_endpoint_work(work: Callable[[Context], Awaitable[T]]) -> T:
    """Run `work`, turning the endpoint service's refusals into a one-line error."""
    from rich.markup import escape

    from paydesk.checkout.webhook_endpoints import EndpointError

    try:
        return _with_context(work)
    except (EndpointError, LookupError) as exc:
        errors.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(1) from None


@webhooks_app.command("moneroo-add")
def webhooks_moneroo_add(
    merchant: Annotated[str, typer.Argument(help="Merchant uuid.")],
    url: Annotated[str, typer.Argument(help="Where events are POSTed (http or https).")],
    environment: Annotated[
        str, typer.Option(help="sandbox or live: which payments' events it receives.")
    ] = "sandbox",
    secret: Annotated[
        str | None,
        typer.Option(help="Signing secret; default: the merchant's Moneroo webhook secret."),
    ] = None,
    disabled: Annotated[bool, typer.Option("--disabled", help="Add it disabled.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Register a Moneroo webhook (at most 15 per merchant and environment)."""
    from paydesk.checkout import webhook_endpoints

    merchant_id = _merchant_id(merchant)

    async def work(context: Context) -> webhook_endpoints.Endpoint:
        async with context.db.transaction() as session:
            return await webhook_endpoints.add(
                session,
                context.vault,
                merchant_id,
                url,
                environment=environment,
                secret=secret,
                enabled=not disabled,
            )

    endpoint = _moneroo_endpoint_work(work)
    if as_json:
        typer.echo(json.dumps(endpoint.as_json(with_secret=True)))
        return
    # Plain output: a URL or a secret may hold what rich would take for markup.
    typer.echo(f"webhook {endpoint.id} ({endpoint.environment}) -> {endpoint.url}")
    typer.echo(f"X-Moneroo-Signature secret: {endpoint.secret}")


@webhooks_app.command("moneroo-list")
def webhooks_moneroo_list(
    merchant: Annotated[str, typer.Argument(help="Merchant uuid.")],
    environment: Annotated[str | None, typer.Option(help="Only sandbox or only live.")] = None,
    secrets_: Annotated[
        bool, typer.Option("--secrets", help="Show each endpoint's signing secret.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
) -> None:
    """List a merchant's Moneroo webhooks."""
    from rich.markup import escape

    from paydesk.checkout import webhook_endpoints

    merchant_id = _merchant_id(merchant)

    async def work(context: Context) -> list[webhook_endpoints.Endpoint]:
        async with context.db.reader() as session:
            return await webhook_endpoints.list_endpoints(
                session, context.vault, merchant_id, environment
            )

    endpoints = _moneroo_endpoint_work(work)
    if as_json:
        for endpoint in endpoints:
            typer.echo(json.dumps(endpoint.as_json(with_secret=secrets_)))
        return
    table = Table("id", "environment", "enabled", "url", "created")
    if secrets_:
        table.add_column("secret")
    for endpoint in endpoints:
        state = "[green]yes[/green]" if endpoint.enabled else "[red]no[/red]"
        row = [str(endpoint.id), endpoint.environment, state, escape(endpoint.url),
               endpoint.created_at.strftime("%Y-%m-%d %H:%M:%S")]  # fmt: skip
        table.add_row(*row, *([escape(endpoint.secret)] if secrets_ else []))
    console.print(table)


def _set_moneroo_endpoint(endpoint: str, enabled: bool) -> None:
    from paydesk.checkout import webhook_endpoints

    endpoint_id = _endpoint_id(endpoint)

    async def work(context: Context) -> webhook_endpoints.Endpoint:
        async with context.db.transaction() as session:
            return await webhook_endpoints.set_enabled(session, context.vault, endpoint_id, enabled)

    changed = _moneroo_endpoint_work(work)
    state = "[green]enabled[/green]" if changed.enabled else "[red]disabled[/red]"
    console.print(f"webhook {changed.id} {state}")


@webhooks_app.command("moneroo-enable")
def webhooks_moneroo_enable(
    endpoint: Annotated[str, typer.Argument(help="Endpoint id (from `moneroo-list`).")],
) -> None:
    """Enable a Moneroo webhook: it receives new events again."""
    _set_moneroo_endpoint(endpoint, True)


@webhooks_app.command("moneroo-disable")
def webhooks_moneroo_disable(
    endpoint: Annotated[str, typer.Argument(help="Endpoint id (from `moneroo-list`).")],
) -> None:
    """Disable a Moneroo webhook: no new events, and queued ones wait (failing) for it."""
    _set_moneroo_endpoint(endpoint, False)


@webhooks_app.command("moneroo-remove")
def webhooks_moneroo_remove(
    endpoint: Annotated[str, typer.Argument(help="Endpoint id (from `moneroo-list`).")],
) -> None:
    """Delete a Moneroo webhook; its deliveries still pending are marked dead."""
    from paydesk.checkout import webhook_endpoints

    endpoint_id = _endpoint_id(endpoint)

    async def work(context: Context) -> int:
        async with context.db.transaction() as session:
            return await webhook_endpoints.delete(session, endpoint_id)

    abandoned = _moneroo_endpoint_work(work)
    console.print(f"webhook {endpoint_id} removed ({abandoned} pending deliveries abandoned)")


# --------------------------------------------------------------------------- payouts
@payouts_app.command("list")
def payouts_list(
    waiting: Annotated[
        bool, typer.Option("--waiting", help="Only payouts waiting for approval.")
    ] = False,
    limit: Annotated[int, typer.Option(help="Newest first, at most this many.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
) -> None:
    """List payouts with their status, stage and transaction."""
    from sqlalchemy import select

    from paydesk.payouts.models import Payout
    from paydesk.payouts.service import APPROVAL

    async def work(context: Context) -> list[Payout]:
        query = select(Payout).order_by(Payout.id.desc()).limit(limit)
        if waiting:
            query = query.where(Payout.stage == APPROVAL)
        async with context.db.reader() as session:
            return list(await session.scalars(query))

    payouts = _with_context(work)
    if as_json:
        for payout in payouts:
            typer.echo(
                json.dumps(
                    {
                        "uuid": str(payout.uuid),
                        "merchant": str(payout.merchant_id),
                        "status": payout.status,
                        "stage": payout.stage,
                        "amount": f"{payout.payer_amount:f}",
                        "currency": payout.payer_currency,
                        "network": payout.network,
                        "address": payout.address,
                        "txid": payout.txid,
                        "last_error": payout.last_error,
                    }
                )
            )
        return
    table = Table("uuid", "status", "stage", "amount", "network", "address", "txid / error")
    for payout in payouts:
        table.add_row(
            str(payout.uuid),
            payout.status,
            payout.stage,
            f"{payout.payer_amount:f} {payout.payer_currency}",
            payout.network,
            payout.address,
            payout.last_error or payout.txid or "",
        )
    console.print(table)


def _decide_payout(payout: str, approve: bool) -> None:
    from paydesk.payouts.service import NotPending, PayoutNotFound

    try:
        payout_uuid = uuid.UUID(payout)
    except ValueError:
        errors.print(f"[red]error:[/red] not a payout uuid: {payout}")
        raise typer.Exit(1) from None
    operator = os.environ.get("USER") or "operator"

    async def work(context: Context) -> str:
        async with context.db.transaction() as session:
            if approve:
                decided = await context.payouts.approve(session, payout_uuid, operator)
            else:
                decided = await context.payouts.reject(session, payout_uuid, operator)
            return decided.status

    try:
        status = _with_context(work)
    except (NotPending, PayoutNotFound) as exc:
        errors.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    console.print(f"payout {payout_uuid}: {status}")


@payouts_app.command("approve")
def payouts_approve(
    payout: Annotated[str, typer.Argument(help="Payout uuid (from `payouts list --waiting`).")],
) -> None:
    """Let a payout waiting for approval be sent."""
    _decide_payout(payout, approve=True)


@payouts_app.command("reject")
def payouts_reject(
    payout: Annotated[str, typer.Argument(help="Payout uuid (from `payouts list --waiting`).")],
) -> None:
    """Cancel a payout waiting for approval; its money goes back to the balance."""
    _decide_payout(payout, approve=False)


@payouts_app.command("hot-wallet")
def payouts_hot_wallet() -> None:
    """Each network's hot wallet (where payouts are sent from) and its balances on chain,
    so the operator knows where to send funds."""
    from paydesk.chains.adapter import ChainUnavailable
    from paydesk.payouts.worker import hot_wallets

    async def work(context: Context) -> list[tuple[str, str, str, str]]:
        rows = []
        for network, sender in await hot_wallets(context):
            try:
                for service in context.catalogue.services:
                    if service.network != network.code:
                        continue
                    try:
                        held = await sender.balance(service.currency)
                        shown = "test coins, no limit" if held is None else f"{held:f}"
                    except ChainUnavailable as exc:
                        shown = f"node unavailable: {exc}"
                    rows.append((network.code, sender.hot_address, service.currency, shown))
            finally:
                await sender.close()
        return rows

    table = Table("network", "hot wallet address", "coin", "balance")
    for row in _with_context(work):
        table.add_row(*row)
    console.print(table)


@payouts_app.command("allow")
def payouts_allow(
    merchant: Annotated[str, typer.Argument(help="Merchant uuid.")],
    network: Annotated[str, typer.Argument(help="Network code, e.g. eth.")],
    address: Annotated[str, typer.Argument(help="Destination address.")],
    label: Annotated[str | None, typer.Option(help="A name for the address.")] = None,
) -> None:
    """Add an address to a merchant's payout allowlist (and switch the allowlist on)."""
    from paydesk.chains.registry import normalize_address
    from paydesk.merchants.models import Merchant

    merchant_id = _merchant_id(merchant)

    async def work(context: Context) -> str | None:
        found = context.catalogue.network(network.lower())
        canonical = normalize_address(found, address) if found else None
        if canonical is None:
            return None
        async with context.db.transaction() as session:
            row = await session.get(Merchant, merchant_id, with_for_update=True)
            if row is None:
                raise MerchantError(f"no merchant {merchant_id}")
            await context.payouts.allow(session, merchant_id, found.code, canonical, label)
            row.payout_allowlist = True
        return canonical

    try:
        canonical = _with_context(work)
    except MerchantError as exc:
        errors.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    if canonical is None:
        errors.print(f"[red]error:[/red] not an address of an enabled network {network}")
        raise typer.Exit(1)
    console.print(f"payouts of {merchant_id} on {network.lower()} may go to {canonical}")


@payouts_app.command("allowlist")
def payouts_allowlist(
    merchant: Annotated[str, typer.Argument(help="Merchant uuid.")],
    enabled: Annotated[
        bool | None,
        typer.Option("--on/--off", help="Require listed addresses, or allow any address."),
    ] = None,
) -> None:
    """Show a merchant's payout allowlist, or switch it on or off."""
    from sqlalchemy import select

    from paydesk.merchants.models import Merchant
    from paydesk.payouts.models import PayoutAddress

    merchant_id = _merchant_id(merchant)

    async def work(context: Context) -> tuple[bool, list[PayoutAddress]]:
        async with context.db.transaction() as session:
            row = await session.get(Merchant, merchant_id, with_for_update=True)
            if row is None:
                raise MerchantError(f"no merchant {merchant_id}")
            if enabled is not None:
                row.payout_allowlist = enabled
            listed = await session.scalars(
                select(PayoutAddress)
                .where(PayoutAddress.merchant_id == merchant_id)
                .order_by(PayoutAddress.id)
            )
            return row.payout_allowlist, list(listed)

    try:
        on, listed = _with_context(work)
    except MerchantError as exc:
        errors.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    console.print(f"allowlist {'on' if on else 'off'}")
    table = Table("network", "address", "label")
    for entry in listed:
        table.add_row(entry.network, entry.address, entry.label or "")
    console.print(table)


def _merchant_id(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        errors.print(f"[red]error:[/red] not a merchant uuid: {text}")
        raise typer.Exit(1) from None


# --------------------------------------------------------------------------- sweeps
@sweeps_app.command("list")
def sweeps_list(
    at_work: Annotated[
        bool, typer.Option("--open", help="Only sweeps not over yet (queued or in flight).")
    ] = False,
    network: Annotated[str | None, typer.Option(help="Only this network.")] = None,
    limit: Annotated[int, typer.Option(help="Newest first, at most this many.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
) -> None:
    """List sweeps with their stage, what they moved and what they cost."""
    from sqlalchemy import select

    from paydesk.sweeps.models import OPEN_STAGES, Sweep

    async def work(context: Context) -> list[Sweep]:
        query = select(Sweep).order_by(Sweep.id.desc()).limit(limit)
        if at_work:
            query = query.where(Sweep.stage.in_(OPEN_STAGES))
        if network:
            query = query.where(Sweep.network == network.lower())
        async with context.db.reader() as session:
            return list(await session.scalars(query))

    def text(amount: Decimal | None) -> str:
        return "" if amount is None else f"{amount:f}"

    sweeps = _with_context(work)
    if as_json:
        for sweep in sweeps:
            typer.echo(
                json.dumps(
                    {
                        "uuid": str(sweep.uuid),
                        "network": sweep.network,
                        "address": sweep.address,
                        "currency": sweep.currency,
                        "stage": sweep.stage,
                        "amount": text(sweep.amount),
                        "fees": text(sweep.funding_fee + sweep.transfer_fee),
                        "native": sweep.native,
                        "txid": sweep.txid,
                        "last_error": sweep.last_error,
                    }
                )
            )
        return
    table = Table("uuid", "network", "address", "stage", "amount", "fees", "txid / error")
    for sweep in sweeps:
        table.add_row(
            str(sweep.uuid),
            sweep.network,
            sweep.address,
            sweep.stage,
            f"{text(sweep.amount)} {sweep.currency}".strip(),
            f"{text(sweep.funding_fee + sweep.transfer_fee)} {sweep.native}",
            sweep.last_error or sweep.txid or "",
        )
    console.print(table)


# --------------------------------------------------------------------------- keys
@keys_app.command("xpub")
def keys_xpub(
    network: Annotated[str, typer.Argument(help="Network code, e.g. eth, btc, tron.")],
) -> None:
    """Print the account-level extended public key of a network: a watch-only wallet that
    imports it sees every deposit address Paydesk hands out there."""
    code = network.lower()

    async def work(context: Context) -> tuple[str, str]:
        keys = context.addresses.keys
        try:
            path = keys.key_path(code)
        except NoKeyPath:
            errors.print(
                f"[red]error:[/red] {code} is not an enabled network whose addresses "
                "derive from an HD key"
            )
            raise typer.Exit(1) from None
        async with context.db.transaction() as session:
            await keys.load(session)
        return path.describe(), keys.xpub(code)

    described, xpub = _with_context(work)
    errors.print(f"path {described}")
    typer.echo(xpub)


@merchant_app.command("xpub")
def merchant_xpub(
    merchant: Annotated[str, typer.Argument(help="Merchant uuid.")],
    network: Annotated[str, typer.Argument(help="Network code, e.g. eth.")],
    xpub: Annotated[
        str | None,
        typer.Argument(help="Account-level xpub of the merchant's own wallet."),
    ] = None,
    remove: Annotated[
        bool, typer.Option("--remove", help="Go back to Paydesk's own addresses.")
    ] = False,
) -> None:
    """Watch-only mode: the merchant's invoices on NETWORK get addresses of its own wallet
    (derived from its xpub), so payments go straight to it and Paydesk holds no key."""
    merchant_id = _merchant_id(merchant)
    if (xpub is None) != remove:
        errors.print("[red]error:[/red] give an XPUB, or --remove")
        raise typer.Exit(1)

    async def work(context: Context) -> str | None:
        async with context.db.transaction() as session:
            return await context.addresses.register_xpub(
                session, merchant_id, network.lower(), xpub
            )

    try:
        first = _with_context(work)
    except BadXpub as exc:
        errors.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    if first is None:
        console.print(f"{network}: back to Paydesk's own addresses.")
    else:
        console.print(f"{network}: new invoices get addresses of this wallet; first: {first}")


# --------------------------------------------------------------------------- devnet
@devnet_app.command("pay")
def devnet_pay(
    address: Annotated[
        str,
        typer.Argument(
            help="A devnet address (an invoice's `address`), or the `devnet:` payment URI "
            "of its QR code (`/v1/payment/qr`), which also gives amount and coin.",
        ),
    ],
    amount: Annotated[
        str | None,
        typer.Argument(
            help="Amount in whole coins, e.g. 20 or 0.5; default: the URI's amount.",
            show_default=False,
        ),
    ] = None,
    currency: Annotated[
        str | None,
        typer.Option(
            help="Devnet coin; default: the URI's coin, else the coin of the invoice at ADDRESS."
        ),
    ] = None,
    mine: Annotated[bool, typer.Option(help="Mine a block at once instead of waiting.")] = False,
) -> None:
    """Send test coins on devnet, as a payer's wallet would (a wallet that scanned the
    invoice's QR code: `paydesk devnet pay 'devnet:pdev1…?amount=20&currency=USDT'`)."""
    try:
        address, uri_amount, uri_currency = parse_devnet_uri(address)
    except ValueError as exc:
        errors.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    currency = currency or uri_currency
    if amount is not None:
        try:
            value = Decimal(amount)
        except ArithmeticError:
            errors.print(f"[red]error:[/red] not an amount: {amount}")
            raise typer.Exit(1) from None
    elif uri_amount is not None:
        value = uri_amount
    else:
        errors.print("[red]error:[/red] give an AMOUNT (or a devnet: URI with one)")
        raise typer.Exit(1)

    async def work(context: Context) -> tuple[str, str, int | None]:
        _need_devnet(context)
        async with context.db.transaction() as session:
            code = currency or await session.scalar(
                select(Invoice.payer_currency).where(
                    Invoice.network == DEVNET, Invoice.address == address
                )
            )
            if code is None:
                raise DevnetError("no invoice has this address: say which coin with --currency")
            sent = await context.devnet.send(session, address, value, code)
            height = (await context.devnet.mine(session))[0].height if mine else None
        return sent.txid, sent.currency, height

    txid, code, height = _with_devnet(work)
    where = f"mined in block {height}" if height is not None else "in the mempool"
    console.print(f"sent {value} {code} to {address}: {txid} ({where})")


@devnet_app.command("mine")
def devnet_mine(
    blocks: Annotated[int, typer.Argument(min=1, max=10_000, help="How many blocks.")] = 1,
) -> None:
    """Produce blocks now (the worker also produces one every PAYDESK_DEVNET_BLOCK_SECONDS)."""

    async def work(context: Context) -> int:
        _need_devnet(context)
        async with context.db.transaction() as session:
            return (await context.devnet.mine(session, blocks))[-1].height

    console.print(f"devnet tip: block {_with_devnet(work)}")


@devnet_app.command("reorg")
def devnet_reorg(
    blocks: Annotated[int, typer.Argument(min=1, help="How many of the last blocks.")],
    drop: Annotated[
        bool, typer.Option("--drop", help="Their transfers vanish (a double spend).")
    ] = False,
) -> None:
    """Replace the last BLOCKS blocks by a longer branch; payments in them are reversed,
    and credited again if their transfers return in the new branch."""

    async def work(context: Context) -> int:
        _need_devnet(context)
        async with context.db.transaction() as session:
            return (await context.devnet.reorganize(session, blocks, drop=drop))[-1].height

    tip = _with_devnet(work)
    console.print(f"reorganised the last {blocks} block(s); devnet tip: block {tip}")


def _with_devnet(work: Callable[[Context], Awaitable[T]]) -> T:
    """`_with_context` for devnet commands: a devnet refusal is a message, not a trace."""
    try:
        return _with_context(work)
    except DevnetError as exc:
        errors.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None


def _need_devnet(context: Context) -> None:
    if not context.addresses.serves(DEVNET):
        raise DevnetError("the devnet is switched off (PAYDESK_NETWORKS does not include it)")
