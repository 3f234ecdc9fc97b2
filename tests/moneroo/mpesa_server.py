"""A fake Safaricom Daraja (M-Pesa Express) on 127.0.0.1 for the connector's tests.

It holds requests to what Daraja's published documentation asks for (Basic auth on the
token endpoint, a bearer token on the others, the password recomputed from short code,
passkey and timestamp, the timestamp in Kenya time, every required field, an integer amount,
the length limits) and answers with the documented shapes. Anything it would not accept is
written to `problems` (and refused as Daraja refuses it), so a test asserts that list empty.
Outcomes are set per test; it also receives callbacks on `/callback` and can post the
documented callback body to a push's CallBackURL. It stops by itself after `lifetime`.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import secrets
import threading
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

EAT = timezone(timedelta(hours=3))
PUSH_FIELDS = (
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
)
QUERY_FIELDS = ("BusinessShortCode", "Password", "Timestamp", "CheckoutRequestID")
TRANSACTION_TYPES = ("CustomerPayBillOnline", "CustomerBuyGoodsOnline")
MSISDN = re.compile(r"254[17][0-9]{8}")
#: The ResultDesc Daraja gives with the usual result codes.
RESULT_DESCRIPTIONS = {
    "0": "The service request is processed successfully.",
    "1": "The balance is insufficient for the transaction.",
    "1032": "Request cancelled by user",
    "1037": "DS timeout user cannot be reached",
    "2001": "The initiator information is invalid.",
    "4999": "The transaction is still under processing",
}
#: Error bodies of the push outcomes that are not an acceptance.
PUSH_ERRORS: dict[str, tuple[int, str, str]] = {
    "reject": (400, "400.002.02", "Bad Request - Invalid PhoneNumber"),
    "locked": (
        500,
        "500.001.1001",
        "Unable to lock subscriber, a transaction is already in process for the current subscriber",
    ),
    "busy": (500, "500.003.02", "System is busy. Please try again in few minutes."),
}


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    #: The parsed JSON body (None for a GET or a body that is not JSON).
    body: Any


@dataclass
class Push:
    checkout_request_id: str
    merchant_request_id: str
    callback_url: str
    amount: int
    phone: str


@dataclass
class FakeDaraja:
    consumer_key: str
    consumer_secret: str
    shortcode: str
    passkey: str
    #: Who receives the money (the till of a buy-goods push); default the short code.
    party_b: str | None = None
    #: Seconds after which the server stops by itself.
    lifetime: float = 60.0
    #: How far the Timestamp may be from Kenya time now.
    clock_skew: timedelta = timedelta(minutes=2)
    #: How a push is answered, in turn (then "accept"): accept, nonzero, reject, locked,
    #: busy (Daraja error bodies), error (a bare HTTP 500), hang (no answer in time).
    push_outcomes: list[str] = field(default_factory=list)
    #: How a query about a push is answered: a result code, "processing" (the default),
    #: "busy" or "hang".
    query_answers: dict[str, str | int] = field(default_factory=dict)
    #: The token endpoint's `expires_in` (Daraja sends it as a string).
    token_seconds: str = "3599"
    #: False: every bearer token is refused as invalid, even a fresh one.
    accept_tokens: bool = True
    #: How long a "hang" holds its request (released at stop).
    hang_seconds: float = 10.0
    requests: list[Recorded] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    pushes: list[Push] = field(default_factory=list)
    callbacks: list[Any] = field(default_factory=list)
    issued_tokens: list[str] = field(default_factory=list)
    _valid_tokens: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stopping: threading.Event = field(default_factory=threading.Event)
    _server: ThreadingHTTPServer | None = None
    _timer: threading.Timer | None = None

    # ------------------------------------------------------------------ lifecycle
    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def callback_url(self) -> str:
        return f"{self.url}/callback"

    def start(self) -> FakeDaraja:
        daraja = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                daraja._handle(self, "GET")

            def do_POST(self) -> None:
                daraja._handle(self, "POST")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        self._timer = threading.Timer(self.lifetime, self.stop)
        self._timer.daemon = True
        self._timer.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._timer is not None:
            self._timer.cancel()
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()

    def __enter__(self) -> FakeDaraja:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -------------------------------------------------------------------- control
    def revoke_tokens(self) -> None:
        """Daraja forgets every token it issued (as when one is revoked early)."""
        with self._lock:
            self._valid_tokens.clear()

    def sent(self, path: str) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def callback_body(
        self, checkout_request_id: str, result_code: int = 0, receipt: str = "NLJ7RT61SV"
    ) -> dict[str, Any]:
        """The STK callback Daraja posts for a push, in its documented shape."""
        push = next(p for p in self.pushes if p.checkout_request_id == checkout_request_id)
        callback: dict[str, Any] = {
            "MerchantRequestID": push.merchant_request_id,
            "CheckoutRequestID": checkout_request_id,
            "ResultCode": result_code,
            "ResultDesc": RESULT_DESCRIPTIONS.get(str(result_code), "Failed"),
        }
        if result_code == 0:
            callback["CallbackMetadata"] = {
                "Item": [
                    {"Name": "Amount", "Value": float(push.amount)},
                    {"Name": "MpesaReceiptNumber", "Value": receipt},
                    {"Name": "Balance"},
                    {
                        "Name": "TransactionDate",
                        "Value": int(_kenya_now().strftime("%Y%m%d%H%M%S")),
                    },
                    {"Name": "PhoneNumber", "Value": int(push.phone)},
                ]
            }
        return {"Body": {"stkCallback": callback}}

    def send_callback(self, checkout_request_id: str, result_code: int = 0, **kw: Any) -> int:
        """POST the callback to the push's CallBackURL, as Daraja does; the HTTP status."""
        body = self.callback_body(checkout_request_id, result_code, **kw)
        push = next(p for p in self.pushes if p.checkout_request_id == checkout_request_id)
        request = urllib.request.Request(
            push.callback_url,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status

    # ------------------------------------------------------------------- handling
    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        url = urlsplit(handler.path)
        raw = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        body: Any = None
        if raw:
            with contextlib.suppress(ValueError):
                body = json.loads(raw)
        headers = {k.lower(): v for k, v in handler.headers.items()}
        with self._lock:
            self.requests.append(Recorded(method, url.path, parse_qs(url.query), headers, body))
        route = {
            ("GET", "/oauth/v1/generate"): self._token,
            ("POST", "/mpesa/stkpush/v1/processrequest"): self._push,
            ("POST", "/mpesa/stkpushquery/v1/query"): self._query,
            ("POST", "/callback"): self._callback,
        }.get((method, url.path))
        if route is None:
            answer: tuple[int, Any] = (404, _error("404.001.01", "Resource not found"))
        else:
            answer = route(headers, parse_qs(url.query), body)
        status, payload = answer
        if status == 0:  # hang: hold the request, then close without answering
            self._stopping.wait(self.hang_seconds)
            return
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        with contextlib.suppress(OSError):  # the client may have given up
            handler.send_response(status)
            content_type = "text/plain" if isinstance(payload, bytes) else "application/json"
            handler.send_header("Content-Type", content_type)
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)

    def _problem(self, message: str) -> tuple[int, Any]:
        with self._lock:
            self.problems.append(message)
        return 400, _error("400.002.02", f"Bad Request - {message}")

    def _token(self, headers: dict[str, str], query: dict[str, list[str]], body: Any):
        if query.get("grant_type") != ["client_credentials"]:
            return self._problem("grant_type must be client_credentials")
        scheme, _, credentials = headers.get("authorization", "").partition(" ")
        if scheme != "Basic":
            return self._problem("the token endpoint needs HTTP Basic authentication")
        expected = base64.b64encode(f"{self.consumer_key}:{self.consumer_secret}".encode())
        if credentials.encode() != expected:
            return 400, _error("400.008.01", "Invalid Authentication passed")
        token = secrets.token_urlsafe(21)
        with self._lock:
            self.issued_tokens.append(token)
            self._valid_tokens.add(token)
        return 200, {"access_token": token, "expires_in": self.token_seconds}

    def _authorized(self, headers: dict[str, str]) -> tuple[int, Any] | None:
        """None when the bearer token is a live one; else Daraja's answer."""
        scheme, _, token = headers.get("authorization", "").partition(" ")
        if scheme != "Bearer" or not token:
            return self._problem("requests need an Authorization: Bearer token")
        with self._lock:
            valid = self.accept_tokens and token in self._valid_tokens
        return None if valid else (404, _error("404.001.03", "Invalid Access Token"))

    def _credentials(self, headers: dict[str, str], body: Any, fields: tuple[str, ...]):
        """The common checks of push and query: JSON, fields, short code, password."""
        if not headers.get("content-type", "").startswith("application/json"):
            return self._problem("the body must be application/json")
        if not isinstance(body, dict):
            return self._problem("the body must be a JSON object")
        missing = [name for name in fields if name not in body]
        if missing:
            return self._problem(f"missing {', '.join(missing)}")
        if str(body["BusinessShortCode"]) != self.shortcode:
            return self._problem("Invalid BusinessShortCode")
        timestamp = body["Timestamp"]
        if not isinstance(timestamp, str) or not re.fullmatch(r"[0-9]{14}", timestamp):
            return self._problem("Invalid Timestamp (YYYYMMDDHHMMSS)")
        try:
            stamped = datetime.strptime(timestamp, "%Y%m%d%H%M%S").replace(tzinfo=EAT)
        except ValueError:
            return self._problem("Invalid Timestamp (not a date)")
        if abs(stamped - _kenya_now()) > self.clock_skew:
            return self._problem(f"Timestamp {timestamp} is not Kenya time now")
        expected = base64.b64encode(f"{self.shortcode}{self.passkey}{timestamp}".encode())
        if body["Password"] != expected.decode():
            return self._problem("Invalid Password")
        return None

    def _push(self, headers: dict[str, str], query: dict[str, list[str]], body: Any):
        refused = self._authorized(headers) or self._credentials(headers, body, PUSH_FIELDS)
        if refused is not None:
            return refused
        if body["TransactionType"] not in TRANSACTION_TYPES:
            return self._problem("Invalid TransactionType")
        amount = body["Amount"]
        if not isinstance(amount, int) or isinstance(amount, bool) or amount < 1:
            return self._problem("Invalid Amount (a whole number of shillings)")
        phone = str(body["PhoneNumber"])
        if not MSISDN.fullmatch(phone) or str(body["PartyA"]) != phone:
            return self._problem("Invalid PhoneNumber or PartyA")
        if str(body["PartyB"]) != (self.party_b or self.shortcode):
            return self._problem("Invalid PartyB")
        callback = urlsplit(str(body["CallBackURL"]))
        if callback.scheme not in ("http", "https") or not callback.netloc:
            return self._problem("Invalid CallBackURL")
        reference, description = body["AccountReference"], body["TransactionDesc"]
        if not isinstance(reference, str) or not 1 <= len(reference) <= 12:
            return self._problem("Invalid AccountReference (1 to 12 characters)")
        if not isinstance(description, str) or not 1 <= len(description) <= 13:
            return self._problem("Invalid TransactionDesc (1 to 13 characters)")
        with self._lock:
            outcome = self.push_outcomes.pop(0) if self.push_outcomes else "accept"
        if outcome == "hang":
            return 0, None
        if outcome == "error":
            return 500, b"Internal Server Error"
        if outcome in PUSH_ERRORS:
            status, code, message = PUSH_ERRORS[outcome]
            return status, _error(code, message)
        merchant_id = f"{secrets.randbelow(90000) + 10000}-{secrets.randbelow(10**8)}-1"
        checkout_id = f"ws_CO_{_kenya_now():%d%m%Y%H%M%S}{secrets.randbelow(10**9):09d}"
        if outcome == "nonzero":
            return 200, {
                "MerchantRequestID": merchant_id,
                "CheckoutRequestID": checkout_id,
                "ResponseCode": "1",
                "ResponseDescription": "Rejected: the subscriber cannot be prompted",
                "CustomerMessage": "Rejected",
            }
        with self._lock:
            self.pushes.append(
                Push(checkout_id, merchant_id, str(body["CallBackURL"]), amount, phone)
            )
        accepted = "Success. Request accepted for processing"
        return 200, {
            "MerchantRequestID": merchant_id,
            "CheckoutRequestID": checkout_id,
            "ResponseCode": "0",
            "ResponseDescription": accepted,
            "CustomerMessage": accepted,
        }

    def _query(self, headers: dict[str, str], query: dict[str, list[str]], body: Any):
        refused = self._authorized(headers) or self._credentials(headers, body, QUERY_FIELDS)
        if refused is not None:
            return refused
        checkout_id = body["CheckoutRequestID"]
        with self._lock:
            push = next((p for p in self.pushes if p.checkout_request_id == checkout_id), None)
            answer = self.query_answers.get(checkout_id, "processing")
        if push is None:
            return 400, _error("400.002.02", "Bad Request - Invalid CheckoutRequestID")
        if answer == "hang":
            return 0, None
        if answer == "processing":
            return 500, _error("500.001.1001", "The transaction is being processed")
        if answer == "busy":
            return 500, _error(*PUSH_ERRORS["busy"][1:])
        code = str(answer)
        return 200, {
            "ResponseCode": "0",
            "ResponseDescription": "The service request has been accepted successsfully",
            "MerchantRequestID": push.merchant_request_id,
            "CheckoutRequestID": checkout_id,
            "ResultCode": code,
            "ResultDesc": RESULT_DESCRIPTIONS.get(code, "Failed"),
        }

    def _callback(self, headers: dict[str, str], query: dict[str, list[str]], body: Any):
        with self._lock:
            self.callbacks.append(body)
        return 200, {"ResultCode": 0, "ResultDesc": "Accepted"}


def _error(code: str, message: str) -> dict[str, str]:
    """Daraja's error body."""
    return {"requestId": secrets.token_hex(8), "errorCode": code, "errorMessage": message}


def _kenya_now() -> datetime:
    return datetime.now(UTC).astimezone(EAT)
