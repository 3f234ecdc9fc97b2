"""The M-Pesa Express connector against a fake Daraja that checks requests as documented."""

from __future__ import annotations

import base64
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from paydesk.checkout.connectors import Attempt, AttemptResult, ConnectorUnavailable
from paydesk.checkout.methods import Method
from paydesk.checkout.mpesa import (
    EAT,
    OAUTH_PATH,
    PUSH_PATH,
    QUERY_PATH,
    MpesaConnector,
    account_reference,
    normalize_msisdn,
    parse_callback,
    transaction_desc,
    whole_shillings,
)
from paydesk.config import Settings
from tests.moneroo.mpesa_server import FakeDaraja

# Daraja's published sandbox short code; the other values are made up for the tests.
SHORTCODE = "174379"
PASSKEY = "test-passkey-0123456789abcdef"
CONSUMER_KEY = "test-consumer-key"
CONSUMER_SECRET = "test-consumer-secret"
MPESA_KE = Method("mpesa_ke", "M-Pesa Kenya", "KES", ("KE",), "mobile_money")
MPESA_TZ = Method("mpesa_tz", "Vodacom Tanzania", "TZS", ("TZ",), "mobile_money")


class Clock:
    """A monotonic clock the test moves by hand (the token cache reads it)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def settings(base_url: str = "https://sandbox.safaricom.co.ke", **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "mpesa_base_url": base_url,
        "mpesa_consumer_key": CONSUMER_KEY,
        "mpesa_consumer_secret": CONSUMER_SECRET,
        "mpesa_shortcode": SHORTCODE,
        "mpesa_passkey": PASSKEY,
        "mpesa_timeout_seconds": 2.0,
        "mpesa_verify_callbacks": False,
    }
    values.update(overrides)
    return Settings(**values)


def attempt(**overrides: Any) -> Attempt:
    values: dict[str, Any] = {
        "payment_id": "py_k3v9qz0a1b2c",
        "environment": "live",
        "method": MPESA_KE,
        "amount": Decimal("100.00"),
        "currency": "KES",
        "description": "Order #1042: two T-shirts",
        "phone": "254708374149",
        "callback_url": "https://pay.example.test/moneroo/callbacks/mpesa",
    }
    values.update(overrides)
    return Attempt(**values)


@pytest.fixture
def daraja() -> Iterator[FakeDaraja]:
    with FakeDaraja(CONSUMER_KEY, CONSUMER_SECRET, SHORTCODE, PASSKEY, lifetime=60) as server:
        yield server


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def connector(daraja: FakeDaraja, clock: Clock) -> MpesaConnector:
    return MpesaConnector(settings(daraja.url), clock=clock)


async def pushed(connector: MpesaConnector, daraja: FakeDaraja) -> str:
    """A push Daraja accepted: its CheckoutRequestID."""
    result = await connector.start(attempt())
    assert result.outcome == "pending" and result.gateway_transaction_id
    return result.gateway_transaction_id


# ----------------------------------------------------------------------- settings
def unconfigured() -> Settings:
    return settings(
        mpesa_consumer_key=None,
        mpesa_consumer_secret=None,
        mpesa_shortcode=None,
        mpesa_passkey=None,
    )


def test_disabled_until_key_secret_shortcode_and_passkey_are_set() -> None:
    assert not MpesaConnector(unconfigured()).enabled
    for missing in ("mpesa_consumer_key", "mpesa_consumer_secret", "mpesa_shortcode"):
        connector = MpesaConnector(settings(**{missing: None}))
        assert not connector.enabled
        assert not connector.handles(MPESA_KE, "live")
    assert not MpesaConnector(settings(mpesa_passkey="")).enabled


def test_handles_mpesa_kenya_in_the_mode_of_its_host() -> None:
    """A sandbox key's payment never reaches a Daraja that moves real money."""
    sandbox_host = MpesaConnector(settings(mpesa_base_url="https://sandbox.safaricom.co.ke"))
    assert sandbox_host.handles(MPESA_KE, "sandbox")
    assert not sandbox_host.handles(MPESA_KE, "live")
    production = MpesaConnector(settings(mpesa_base_url="https://api.safaricom.co.ke"))
    assert production.handles(MPESA_KE, "live") and not production.handles(MPESA_KE, "sandbox")
    assert not production.handles(MPESA_TZ, "live")
    chosen = MpesaConnector(settings(mpesa_environment="live"))
    assert chosen.handles(MPESA_KE, "live")


async def test_a_disabled_connector_sends_nothing() -> None:
    connector = MpesaConnector(unconfigured())
    with pytest.raises(ConnectorUnavailable):
        await connector.start(attempt())
    assert await connector.refresh("ws_CO_1", "live") is None


def test_settings_refuse_an_unknown_transaction_type() -> None:
    with pytest.raises(ValueError):
        settings(mpesa_transaction_type="CustomerPayBill")


# -------------------------------------------------------------------------- token
async def test_token_is_fetched_with_basic_auth_and_cached(
    connector: MpesaConnector, daraja: FakeDaraja, clock: Clock
) -> None:
    await connector.start(attempt())
    await connector.start(attempt())
    tokens = daraja.sent(OAUTH_PATH)
    assert len(tokens) == 1
    expected = base64.b64encode(f"{CONSUMER_KEY}:{CONSUMER_SECRET}".encode()).decode()
    assert tokens[0].headers["authorization"] == f"Basic {expected}"
    assert tokens[0].query == {"grant_type": ["client_credentials"]}
    pushes = daraja.sent(PUSH_PATH)
    assert {p.headers["authorization"] for p in pushes} == {f"Bearer {daraja.issued_tokens[0]}"}

    clock.now += 3599 - 61  # still valid, outside the renewal margin
    await connector.start(attempt())
    assert len(daraja.sent(OAUTH_PATH)) == 1
    clock.now += 2  # within a minute of expiry: renewed before Daraja drops it
    await connector.start(attempt())
    assert len(daraja.sent(OAUTH_PATH)) == 2
    assert daraja.sent(PUSH_PATH)[-1].headers["authorization"] == (
        f"Bearer {daraja.issued_tokens[1]}"
    )
    assert daraja.problems == []


async def test_a_revoked_token_is_renewed_once(
    connector: MpesaConnector, daraja: FakeDaraja
) -> None:
    await pushed(connector, daraja)
    daraja.revoke_tokens()
    await pushed(connector, daraja)
    assert len(daraja.issued_tokens) == 2
    assert len(daraja.sent(PUSH_PATH)) == 3  # refused once, then sent again


async def test_refused_credentials_are_unavailable_without_leaking_them(
    daraja: FakeDaraja, capsys: pytest.CaptureFixture[str]
) -> None:
    connector = MpesaConnector(settings(daraja.url, mpesa_consumer_secret="wrong-secret"))
    with pytest.raises(ConnectorUnavailable) as raised:
        await connector.start(attempt())
    assert "400.008.01" in str(raised.value)
    assert daraja.sent(PUSH_PATH) == []
    printed = capsys.readouterr()
    for secret in ("wrong-secret", PASSKEY, CONSUMER_KEY):
        assert secret not in str(raised.value)
        assert secret not in printed.out + printed.err


# ---------------------------------------------------------------------- STK push
async def test_push_is_sent_as_documented_and_is_pending(
    connector: MpesaConnector, daraja: FakeDaraja
) -> None:
    result = await connector.start(attempt(amount=Decimal("1500.00"), phone="0708374149"))

    assert daraja.problems == []
    (push,) = daraja.pushes
    assert result == AttemptResult("pending", push.checkout_request_id, "stk_sent")
    (request,) = daraja.sent(PUSH_PATH)
    body = request.body
    assert request.headers["content-type"] == "application/json"
    assert set(body) == {
        "BusinessShortCode",
        "Password",
        "Timestamp",
        "TransactionType",
        "Amount",
        "PartyA",
        "PartyB",
        "PhoneNumber",
        "CallBackURL",
        "AccountReference",
        "TransactionDesc",
    }
    stamped = datetime.strptime(body["Timestamp"], "%Y%m%d%H%M%S").replace(tzinfo=EAT)
    assert abs(stamped - datetime.now(UTC)) < timedelta(minutes=1)  # Kenya time, not UTC
    password = base64.b64decode(body["Password"]).decode()
    assert password == SHORTCODE + PASSKEY + body["Timestamp"]
    assert body["BusinessShortCode"] == SHORTCODE
    assert body["TransactionType"] == "CustomerPayBillOnline"
    assert body["Amount"] == 1500 and isinstance(body["Amount"], int)
    assert body["PartyA"] == body["PhoneNumber"] == "254708374149"
    assert body["PartyB"] == SHORTCODE
    assert body["CallBackURL"] == "https://pay.example.test/moneroo/callbacks/mpesa"
    assert body["AccountReference"] == "k3v9qz0a1b2c"
    assert body["TransactionDesc"] == "Order 1042 tw"


async def test_buy_goods_pushes_to_the_till(daraja: FakeDaraja) -> None:
    daraja.party_b = "600100"
    connector = MpesaConnector(
        settings(
            daraja.url, mpesa_transaction_type="CustomerBuyGoodsOnline", mpesa_party_b="600100"
        )
    )
    assert (await connector.start(attempt())).outcome == "pending"
    (request,) = daraja.sent(PUSH_PATH)
    assert request.body["TransactionType"] == "CustomerBuyGoodsOnline"
    assert request.body["PartyB"] == "600100"
    assert daraja.problems == []


@pytest.mark.parametrize(
    ("written", "msisdn"),
    [
        ("0712345678", "254712345678"),
        ("712345678", "254712345678"),
        ("+254712345678", "254712345678"),
        ("254712345678", "254712345678"),
        ("00254712345678", "254712345678"),
        ("+254 712 345 678", "254712345678"),
        ("0712-345-678", "254712345678"),
        ("0110123456", "254110123456"),
        ("110123456", "254110123456"),
        ("254110123456", "254110123456"),
        ("", None),
        ("071234567", None),  # a digit short
        ("07123456789", None),  # a digit long
        ("0812345678", None),  # not a mobile prefix
        ("255712345678", None),  # Tanzania
        ("+0712345678", None),
        ("0712345abc", None),
        ("٠٧١٢٣٤٥٦٧٨", None),  # digits, but not ASCII ones
        (None, None),
    ],
)
def test_phone_normalisation(written: str | None, msisdn: str | None) -> None:
    assert normalize_msisdn(written) == msisdn


async def test_invalid_phone_fails_without_a_request(
    connector: MpesaConnector, daraja: FakeDaraja
) -> None:
    result = await connector.start(attempt(phone="0812345678"))
    assert result.outcome == "failed"
    assert result.failure_error_code == "invalid_phone"
    assert "Kenyan mobile number" in (result.failure_message or "")
    assert daraja.requests == []


@pytest.mark.parametrize(
    ("amount", "code"),
    [(Decimal("100.50"), "amount_not_whole"), (Decimal("0.00"), "amount_too_small")],
)
async def test_amounts_daraja_cannot_take_fail_without_a_request(
    connector: MpesaConnector, daraja: FakeDaraja, amount: Decimal, code: str
) -> None:
    result = await connector.start(attempt(amount=amount))
    assert result.outcome == "failed" and result.failure_error_code == code
    assert daraja.requests == []


async def test_another_currency_fails_without_a_request(
    connector: MpesaConnector, daraja: FakeDaraja
) -> None:
    result = await connector.start(attempt(currency="TZS"))
    assert result.outcome == "failed" and result.failure_error_code == "currency"
    assert daraja.requests == []


def test_field_helpers() -> None:
    assert whole_shillings(Decimal("100.00")) == 100
    assert whole_shillings(Decimal("100.01")) is None
    assert whole_shillings(Decimal("NaN")) is None
    assert account_reference("py_k3v9qz0a1b2c") == "k3v9qz0a1b2c"
    assert account_reference("___") == "Paydesk"
    assert transaction_desc("Café «crème» x2") == "Caf cr me x2"
    assert transaction_desc("—") == "Payment"


@pytest.mark.parametrize(
    ("outcome", "code", "status"),
    [
        ("reject", "400.002.02", "rejected"),
        ("locked", "500.001.1001", "rejected"),
        ("nonzero", "1", "rejected"),
    ],
)
async def test_a_refused_push_fails_with_darajas_message(
    connector: MpesaConnector,
    daraja: FakeDaraja,
    capsys: pytest.CaptureFixture[str],
    outcome: str,
    code: str,
    status: str,
) -> None:
    daraja.push_outcomes = [outcome]
    result = await connector.start(attempt())
    assert result.outcome == "failed"
    assert result.gateway_status == status
    assert result.failure_error_code == code
    assert result.failure_message and result.failure_message != code
    assert daraja.problems == []
    printed = capsys.readouterr()
    for secret in (PASSKEY, CONSUMER_KEY, CONSUMER_SECRET, *daraja.issued_tokens):
        assert secret not in printed.out + printed.err


async def test_a_token_refused_even_when_fresh_is_unavailable(
    connector: MpesaConnector, daraja: FakeDaraja
) -> None:
    daraja.accept_tokens = False
    with pytest.raises(ConnectorUnavailable):
        await connector.start(attempt())
    assert len(daraja.issued_tokens) == 2


@pytest.mark.parametrize("outcome", ["error", "busy", "hang"])
async def test_an_unavailable_daraja_raises(daraja: FakeDaraja, outcome: str) -> None:
    connector = MpesaConnector(settings(daraja.url, mpesa_timeout_seconds=0.5))
    daraja.push_outcomes = [outcome]
    with pytest.raises(ConnectorUnavailable):
        await connector.start(attempt())


async def test_an_unreachable_daraja_raises() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    connector = MpesaConnector(settings(f"http://127.0.0.1:{port}"))
    with pytest.raises(ConnectorUnavailable):
        await connector.start(attempt())


# ---------------------------------------------------------------------- callbacks
async def test_success_callback_keeps_the_receipt(
    connector: MpesaConnector, daraja: FakeDaraja
) -> None:
    checkout_id = await pushed(connector, daraja)
    news = await connector.callback(daraja.callback_body(checkout_id, 0, receipt="NLJ7RT61SV"))
    assert news is not None
    assert news.gateway_transaction_id == checkout_id
    assert news.result == AttemptResult("success", checkout_id, "completed:NLJ7RT61SV")


@pytest.mark.parametrize(
    ("code", "status", "message"),
    [
        (1032, "cancelled", "Request cancelled by user"),
        (1037, "unreachable", "DS timeout user cannot be reached"),
        (2001, "wrong_pin", "The initiator information is invalid."),
        (1, "insufficient_balance", "The balance is insufficient for the transaction."),
    ],
)
async def test_failure_callbacks(
    connector: MpesaConnector, daraja: FakeDaraja, code: int, status: str, message: str
) -> None:
    checkout_id = await pushed(connector, daraja)
    news = await connector.callback(daraja.callback_body(checkout_id, code))
    assert news is not None
    assert news.result == AttemptResult(
        "failed",
        checkout_id,
        status,
        failure_message=message,
        failure_error_code=str(code),
        failure_error_type="mpesa",
    )


def _success(**stk: Any) -> dict[str, Any]:
    callback = {
        "MerchantRequestID": "29115-34620561-1",
        "CheckoutRequestID": "ws_CO_191220191020363925",
        "ResultCode": 0,
        "ResultDesc": "The service request is processed successfully.",
        "CallbackMetadata": {"Item": [{"Name": "MpesaReceiptNumber", "Value": "NLJ7RT61SV"}]},
    }
    callback.update(stk)
    return {"Body": {"stkCallback": callback}}


@pytest.mark.parametrize(
    "body",
    [
        None,
        [],
        "Body",
        {},
        {"Body": {}},
        {"Body": {"stkCallback": []}},
        _success(CheckoutRequestID=None),
        _success(CheckoutRequestID=""),
        _success(ResultCode=None),
        _success(ResultCode=True),
        _success(ResultCode="zero"),
        _success(CallbackMetadata=None),
        _success(CallbackMetadata={"Item": "NLJ7RT61SV"}),
        _success(CallbackMetadata={"Item": [{"Name": "Amount", "Value": 1}]}),
        _success(CallbackMetadata={"Item": [{"Name": "MpesaReceiptNumber", "Value": 42}]}),
        _success(CallbackMetadata={"Item": [{"Name": "MpesaReceiptNumber", "Value": "x y"}]}),
    ],
)
async def test_malformed_callbacks_are_ignored(connector: MpesaConnector, body: Any) -> None:
    assert parse_callback(body) is None
    assert await connector.callback(body) is None


def test_a_string_result_code_is_read_too() -> None:
    news = parse_callback(_success(ResultCode="0"))
    assert news is not None and news.result.outcome == "success"


async def test_callback_posted_to_the_callback_url(daraja: FakeDaraja) -> None:
    connector = MpesaConnector(settings(daraja.url))
    result = await connector.start(attempt(callback_url=daraja.callback_url))
    assert result.gateway_transaction_id is not None
    assert daraja.send_callback(result.gateway_transaction_id, 0, receipt="QAB1CD2EF3") == 200
    (posted,) = daraja.callbacks
    news = await connector.callback(posted)
    assert news is not None
    assert news.result.gateway_status == "completed:QAB1CD2EF3"


# ----------------------------------------------------- callbacks confirmed by query
@pytest.fixture
def verifying(daraja: FakeDaraja) -> MpesaConnector:
    return MpesaConnector(settings(daraja.url, mpesa_verify_callbacks=True))


async def test_a_confirmed_callback_is_believed(
    verifying: MpesaConnector, daraja: FakeDaraja
) -> None:
    checkout_id = await pushed(verifying, daraja)
    daraja.query_answers[checkout_id] = 0
    news = await verifying.callback(daraja.callback_body(checkout_id, 0))
    assert news is not None
    assert news.result == AttemptResult("success", checkout_id, "completed:NLJ7RT61SV")
    assert len(daraja.sent(QUERY_PATH)) == 1
    assert daraja.problems == []


async def test_a_forged_success_follows_the_query(
    verifying: MpesaConnector, daraja: FakeDaraja
) -> None:
    checkout_id = await pushed(verifying, daraja)
    daraja.query_answers[checkout_id] = 1032
    news = await verifying.callback(daraja.callback_body(checkout_id, 0))
    assert news is not None
    assert news.result.outcome == "failed" and news.result.failure_error_code == "1032"


@pytest.mark.parametrize("answer", ["processing", "busy"])
async def test_an_unconfirmed_callback_is_no_news(
    verifying: MpesaConnector, daraja: FakeDaraja, answer: str
) -> None:
    checkout_id = await pushed(verifying, daraja)
    daraja.query_answers[checkout_id] = answer
    assert await verifying.callback(daraja.callback_body(checkout_id, 0)) is None


# -------------------------------------------------------------------------- query
async def test_query_is_sent_as_documented(connector: MpesaConnector, daraja: FakeDaraja) -> None:
    checkout_id = await pushed(connector, daraja)
    daraja.query_answers[checkout_id] = 0
    assert await connector.refresh(checkout_id, "live") == AttemptResult(
        "success", checkout_id, "completed"
    )
    (request,) = daraja.sent(QUERY_PATH)
    assert set(request.body) == {"BusinessShortCode", "Password", "Timestamp", "CheckoutRequestID"}
    assert request.body["CheckoutRequestID"] == checkout_id
    password = base64.b64decode(request.body["Password"]).decode()
    assert password == SHORTCODE + PASSKEY + request.body["Timestamp"]
    assert request.headers["authorization"].startswith("Bearer ")
    assert daraja.problems == []


async def test_query_failed(connector: MpesaConnector, daraja: FakeDaraja) -> None:
    checkout_id = await pushed(connector, daraja)
    daraja.query_answers[checkout_id] = 1037
    result = await connector.refresh(checkout_id, "live")
    assert result is not None and result.outcome == "failed"
    assert result.failure_error_code == "1037"
    assert result.failure_message == "DS timeout user cannot be reached"
    assert result.gateway_transaction_id == checkout_id


@pytest.mark.parametrize("answer", ["processing", 4999])
async def test_query_still_processing_is_no_news(
    connector: MpesaConnector, daraja: FakeDaraja, answer: str | int
) -> None:
    checkout_id = await pushed(connector, daraja)
    daraja.query_answers[checkout_id] = answer
    assert await connector.refresh(checkout_id, "live") is None


async def test_query_refused_is_no_news(connector: MpesaConnector, daraja: FakeDaraja) -> None:
    await pushed(connector, daraja)
    assert await connector.refresh("ws_CO_unknown", "live") is None


@pytest.mark.parametrize("answer", ["busy", "hang"])
async def test_query_unavailable_raises(daraja: FakeDaraja, answer: str) -> None:
    connector = MpesaConnector(settings(daraja.url, mpesa_timeout_seconds=0.5))
    checkout_id = await pushed(connector, daraja)
    daraja.query_answers[checkout_id] = answer
    with pytest.raises(ConnectorUnavailable):
        await connector.refresh(checkout_id, "live")
