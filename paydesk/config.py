"""Settings, read from `PAYDESK_*` environment variables.

The default is the embedded mode: SQLite and key material in a data directory, the
built-in `devnet` network, nothing else to run.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

#: Pegs a stablecoin is designed to hold; the only rates Paydesk ships without an operator
#: or a market source telling it more.
DEFAULT_STATIC_RATES: dict[str, Decimal] = {
    "USDT/USD": Decimal(1),
    "USDC/USD": Decimal(1),
}


def _comma_list(value: Any, case: Callable[[str], str]) -> Any:
    """ "a, B,c" → ["a", "b", "c"] (in the given case); lists pass through."""
    if isinstance(value, str):
        return [case(part.strip()) for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PAYDESK_", extra="ignore")

    data_dir: Path = Path("paydesk-data")
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; default is SQLite in the data directory. "
        "postgresql+asyncpg://user@host/db switches to PostgreSQL.",
    )
    host: str = "127.0.0.1"
    port: int = 8000
    public_url: str | None = Field(
        default=None, description="Base of the URLs Paydesk hands out (payment pages)."
    )
    master_key: SecretStr | None = Field(
        default=None,
        description="Comma-separated Fernet keys; the first encrypts, all decrypt (rotation). "
        "Default: generated once into <data_dir>/master.key.",
    )
    networks: Annotated[list[str], NoDecode] = Field(
        default=["devnet"], description="Enabled network codes, comma-separated."
    )
    chain_nodes: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict,
        description='JSON object of network → node URL, e.g. {"eth": "http://127.0.0.1:8545"}.',
    )
    chain_solidity_nodes: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict,
        description="JSON object of network → the node's solidity API (TRON: a java-tron "
        'full node serves /walletsolidity on its own port, e.g. {"tron": '
        '"http://127.0.0.1:8091"}); absent: the main URL serves it, as TronGrid does.',
    )
    chain_api_keys: Annotated[dict[str, SecretStr], NoDecode] = Field(
        default_factory=dict,
        description="JSON object of network → API key of a hosted node (TRON: sent as "
        'TRON-PRO-API-KEY, e.g. {"tron": "…"} for TronGrid).',
    )
    devnet_block_seconds: float = Field(
        default=2.0, gt=0, description="How often the built-in devnet produces a block."
    )
    watcher_batch_blocks: int = Field(
        default=100, ge=1, description="Blocks a chain watcher reads per step when behind."
    )
    watcher_poll_seconds: float = Field(
        default=2.0, gt=0, description="How often a chain watcher asks its node for new blocks."
    )
    watcher_lease_seconds: float = Field(
        default=30.0,
        gt=0,
        description="How long a worker holds a network's watcher; after a crash another "
        "worker takes over once this has passed.",
    )
    page_poll_seconds: float = Field(
        default=1.0,
        gt=0,
        description="How often an API process re-reads the invoices whose payment pages "
        "are open, to push their status live.",
    )
    payer_can_renew: bool = Field(
        default=False,
        description="Offer a payer whose invoice expired with nothing paid a new address, "
        "rate and lifetime on the payment page (the shop has been sent `cancel` by then, "
        "and a later `paid`).",
    )
    devnet_test_wallet: bool | None = Field(
        default=None,
        description="Show a test wallet on the payment page of devnet invoices, so that a "
        "payer can pay them from the browser (default: on when devnet is the only enabled "
        "network, a demo server; a server that takes real money should not offer it).",
    )
    catalogue_file: Path | None = Field(
        default=None, description="TOML file whose entries override the built-in catalogue."
    )
    static_rates: Annotated[dict[str, Decimal], NoDecode] = Field(
        default_factory=lambda: dict(DEFAULT_STATIC_RATES),
        description='JSON object of "BASE/QUOTE": "rate", merged over the stablecoin pegs.',
    )
    rate_providers: Annotated[list[str], NoDecode] = Field(
        default=["binance", "kucoin", "binancep2p", "ecb", "openerapi"],
        description="Rate providers `paydesk worker` refreshes, comma-separated: binance, "
        "kucoin, binancep2p, ecb, openerapi (empty: only static rates).",
    )
    rate_aggregate: Annotated[list[str], NoDecode] = Field(
        default=["binance", "kucoin"],
        description="Market providers whose median is the rate when an invoice names no "
        "`course_source`.",
    )
    rate_min_sources: int = Field(
        default=1, ge=1, description="Providers that must agree on a pair for the median."
    )
    rate_refresh_seconds: float = Field(default=60.0, gt=0)
    rate_cache_seconds: float = Field(
        default=5.0, ge=0, description="How long an API process reuses its copy of the rates."
    )
    rate_max_age_seconds: float = Field(
        default=600.0, gt=0, description="A market rate older than this is not used."
    )
    rate_reference_max_age_hours: float = Field(
        default=120.0,
        gt=0,
        description="A daily reference rate (ECB, open.er-api) older than this is not used "
        "(covers a long weekend without publication).",
    )
    rate_timeout_seconds: float = Field(default=10.0, gt=0)
    rate_endpoints: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict,
        description="JSON object of provider → base URL replacing the public one "
        '(a mirror or proxy), e.g. {"binance": "https://binance-proxy.internal"}.',
    )
    rate_p2p_fiats: Annotated[list[str], NoDecode] = Field(
        default=["RUB", "UAH", "KZT", "TRY", "NGN", "EUR", "USD"],
        description="Fiat currencies whose Binance P2P price of USDT is fetched.",
    )
    exmo_rate_source: str = Field(
        default="aggregate",
        description="What `course_source: Exmo` uses now that Exmo is closed: `aggregate` "
        "(the median of working markets) or a provider name.",
    )
    callback_allowlist: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="CIDRs webhook URLs may resolve to besides public addresses, "
        "comma-separated (e.g. 10.0.0.0/8 for receivers on a private network).",
    )
    webhook_timeout_seconds: float = Field(default=10.0, gt=0)
    webhook_max_response_bytes: int = Field(
        default=65536, gt=0, description="Read at most this much of a receiver's answer."
    )
    webhook_lease_seconds: float = Field(
        default=60.0,
        gt=0,
        description="How long a worker holds a delivery it is sending; after a crash the "
        "delivery is attempted again once this has passed.",
    )
    webhook_concurrency: int = Field(
        default=64, ge=1, description="Deliveries one worker process sends at once."
    )
    max_body_bytes: int = 64 * 1024
    auth_cache_seconds: float = Field(
        default=30.0, description="How long an API process trusts a cached merchant key."
    )
    cryptomus_lenient_keys: bool = Field(
        default=True,
        description="Read-only endpoints also accept the merchant's other key, as some "
        "clients sign them with it.",
    )
    payout_approval_usd: Decimal | None = Field(
        default=None,
        description="Payouts worth more than this many US dollars wait in `check` for an "
        "operator's `paydesk payouts approve` (none: no approval needed). A payout that "
        "cannot be valued in dollars waits too.",
    )
    payout_key_hold_hours: float = Field(
        default=24.0,
        ge=0,
        description="Payouts are refused this long after a merchant's payout key is "
        "replaced (a stolen session cannot rotate the key and withdraw at once).",
    )
    moneroo_rate_limit_per_minute: int = Field(
        default=120,
        ge=0,
        description="Moneroo-dialect requests a key may make per minute (per API process); "
        "more get HTTP 429 with Retry-After: 60. 0: no limit.",
    )
    checkout_abandon_minutes: float = Field(
        default=10.0,
        gt=0,
        description="A hosted-checkout payment nobody started paying within this time is "
        "cancelled.",
    )
    payout_poll_seconds: float = Field(
        default=2.0, gt=0, description="How often the payout worker looks for work."
    )
    sweep_min_usd: Decimal = Field(
        default=Decimal(10),
        ge=0,
        description="A token or coin balance on a deposit address is swept to the hot "
        "wallet once it is worth this many US dollars (less would cost more in fees than it "
        "is worth).",
    )
    mpesa_base_url: str = Field(
        default="https://sandbox.safaricom.co.ke",
        description="Safaricom Daraja host for M-Pesa Express (STK push): the sandbox, or "
        "https://api.safaricom.co.ke to collect real money.",
    )
    mpesa_environment: str | None = Field(
        default=None,
        pattern="^(sandbox|live)$",
        description="Which payments mpesa_ke collects: sandbox-key or live-key ones. "
        "Default: sandbox on Safaricom's sandbox host, live otherwise, so a test payment "
        "never moves real money.",
    )
    mpesa_consumer_key: SecretStr | None = Field(
        default=None, description="Consumer key of the Daraja app (M-Pesa is off without it)."
    )
    mpesa_consumer_secret: SecretStr | None = Field(
        default=None, description="Consumer secret of the Daraja app."
    )
    mpesa_shortcode: str | None = Field(
        default=None,
        description="Business Short Code the STK push collects for (the paybill, or the store "
        "number of a till).",
    )
    mpesa_passkey: SecretStr | None = Field(
        default=None, description="Lipa Na M-Pesa Online passkey of the short code."
    )
    mpesa_transaction_type: str = Field(
        default="CustomerPayBillOnline",
        pattern="^(CustomerPayBillOnline|CustomerBuyGoodsOnline)$",
        description="CustomerPayBillOnline (paybill) or CustomerBuyGoodsOnline (till).",
    )
    mpesa_party_b: str | None = Field(
        default=None,
        description="Who receives the money: the till number for CustomerBuyGoodsOnline "
        "(default: the short code).",
    )
    mpesa_timeout_seconds: float = Field(default=20.0, gt=0)
    mpesa_verify_callbacks: bool = Field(
        default=True,
        description="Confirm every M-Pesa callback with an STK Push Query before believing "
        "it: Daraja does not sign its callbacks.",
    )
    smtp_host: str | None = Field(
        default=None,
        description="SMTP server for the hosted checkout's emails (receipts, merchant "
        "notices); none: they are written to the log instead.",
    )
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_username: str | None = Field(
        default=None, description="SMTP login (none: send without authenticating)."
    )
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = Field(
        default=True,
        description="Require STARTTLS after connecting (port 587); ignored with smtp_tls.",
    )
    smtp_tls: bool = Field(
        default=False, description="Connect over TLS from the first byte (port 465)."
    )
    mail_from: str = Field(
        default="Paydesk <noreply@localhost>", description="The From of every email."
    )
    smtp_timeout_seconds: float = Field(default=30.0, gt=0)
    api_access_auto_approve: bool | None = Field(
        default=None,
        description="Grant a dashboard project's API access request at once (default: on "
        "for the embedded SQLite server; otherwise the operator runs `paydesk merchant "
        "approve`).",
    )
    embedded_worker: bool | None = Field(
        default=None,
        description="Run the background loops inside `paydesk serve` "
        "(default: yes on embedded SQLite, no on PostgreSQL, where `paydesk worker` runs them).",
    )
    expiry_interval_seconds: float = 5.0
    idempotency_ttl_hours: int = 24
    log_level: str = "info"
    log_json: bool = False
    db_pool_size: int = 20

    @field_validator("networks", "rate_providers", "rate_aggregate", mode="before")
    @classmethod
    def _split_lower(cls, value: Any) -> Any:
        return _comma_list(value, str.lower)

    @field_validator("callback_allowlist", mode="before")
    @classmethod
    def _split_cidrs(cls, value: Any) -> Any:
        return _comma_list(value, str.strip)

    @field_validator("rate_p2p_fiats", mode="before")
    @classmethod
    def _split_upper(cls, value: Any) -> Any:
        return _comma_list(value, str.upper)

    @field_validator("chain_api_keys", mode="before")
    @classmethod
    def _parse_keys(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = json.loads(value) if value.strip() else {}
        if isinstance(value, dict):
            return {str(k).lower(): v for k, v in value.items()}
        return value

    @field_validator("rate_endpoints", "chain_nodes", "chain_solidity_nodes", mode="before")
    @classmethod
    def _parse_endpoints(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = json.loads(value) if value.strip() else {}
        if isinstance(value, dict):
            return {str(k).lower(): str(v).rstrip("/") for k, v in value.items()}
        return value

    @field_validator("static_rates", mode="before")
    @classmethod
    def _merge_rates(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = json.loads(value, parse_float=Decimal, parse_int=Decimal)
        if isinstance(value, dict):
            merged: dict[str, Any] = dict(DEFAULT_STATIC_RATES)
            merged.update({str(k).upper(): Decimal(str(v)) for k, v in value.items()})
            return merged
        return value

    @cached_property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'paydesk.db').resolve()}"

    @property
    def runs_embedded_worker(self) -> bool:
        return self.is_sqlite if self.embedded_worker is None else self.embedded_worker

    @property
    def approves_api_access(self) -> bool:
        if self.api_access_auto_approve is not None:
            return self.api_access_auto_approve
        return self.is_sqlite

    @property
    def shows_devnet_test_wallet(self) -> bool:
        if self.devnet_test_wallet is not None:
            return self.devnet_test_wallet and "devnet" in self.networks
        return self.networks == ["devnet"]

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")
