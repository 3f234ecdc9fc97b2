"""A local stand-in for the rate providers' public APIs, serving bodies in each provider's
real format (tests/rates/fixtures) on 127.0.0.1, with switchable faults."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

FIXTURES = Path(__file__).parent / "fixtures"

ROUTES = {
    ("GET", "/binance/api/v3/exchangeInfo"): "binance_exchange_info.json",
    ("GET", "/binance/api/v3/ticker/24hr"): "binance_ticker_24hr.json",
    ("GET", "/kucoin/api/v2/symbols"): "kucoin_symbols.json",
    ("GET", "/kucoin/api/v1/market/allTickers"): "kucoin_all_tickers.json",
    ("POST", "/binancep2p/bapi/c2c/v2/friendly/c2c/adv/search"): "binance_p2p_usdt_rub.json",
    ("GET", "/ecb/stats/eurofxref/eurofxref-daily.xml"): "ecb_eurofxref_daily.xml",
    ("GET", "/openerapi/v6/latest/USD"): "openerapi_latest_usd.json",
}
PROVIDERS = ("binance", "kucoin", "binancep2p", "ecb", "openerapi")
SLOW_SECONDS = 2.5


@dataclass
class RateServer:
    base_url: str = ""
    #: provider → "down" (HTTP 503), "slow" (answers after the client gave up),
    #: "malformed" (a body that is not the provider's format), or a replacement body.
    faults: dict[str, Any] = field(default_factory=dict)
    #: (method, path with query, body) of every request, in order.
    requests: list[tuple[str, str, bytes]] = field(default_factory=list)

    def endpoints(self, *names: str) -> dict[str, str]:
        return {name: f"{self.base_url}/{name}" for name in names or PROVIDERS}

    def settings(self, *names: str, **extra: Any) -> dict[str, Any]:
        """Settings overrides that point `names` (default: all) at this server."""
        chosen = list(names or PROVIDERS)
        return {
            "rate_providers": chosen,
            "rate_endpoints": self.endpoints(*chosen),
            # Long enough for a loaded machine, short enough that "slow" tests stay quick.
            "rate_timeout_seconds": 2.0,
            "rate_p2p_fiats": ["RUB"],
            **extra,
        }


def _live(body: bytes, name: str) -> bytes:
    """Recent times where the real endpoints would show them (tickers: now)."""
    now_ms = int(time.time() * 1000)
    if name == "binance_ticker_24hr.json":
        tickers = json.loads(body)
        for ticker in tickers:
            ticker["closeTime"] = now_ms
        return json.dumps(tickers).encode()
    if name == "openerapi_latest_usd.json":  # published daily, an hour ago
        payload = json.loads(body)
        payload["time_last_update_unix"] = int(time.time()) - 3600
        return json.dumps(payload).encode()
    if name == "kucoin_all_tickers.json":
        payload = json.loads(body)
        payload["data"]["time"] = now_ms
        return json.dumps(payload).encode()
    return body


def _handler(server: RateServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _answer(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            path = self.path.split("?", 1)[0]
            server.requests.append((method, self.path, body))
            provider = path.strip("/").split("/", 1)[0]
            fault = server.faults.get(provider)
            name = ROUTES.get((method, path))
            if name is None:
                return self._send(404, b'{"msg":"not found"}')
            if fault == "down":
                return self._send(503, b"<html>503 Service Temporarily Unavailable</html>")
            if fault == "slow":
                time.sleep(SLOW_SECONDS)
            if fault == "malformed":
                return self._send(200, b"<html>maintenance</html>")
            if isinstance(fault, (dict, list)):
                return self._send(200, json.dumps(fault).encode())
            if isinstance(fault, bytes):
                return self._send(200, fault)
            if provider == "binancep2p" and json.loads(body or b"{}").get("fiat") != "RUB":
                return self._send(200, b'{"code":"000000","data":[],"total":0,"success":true}')
            self._send(200, _live((FIXTURES / name).read_bytes(), name))

        def _send(self, status: int, body: bytes) -> None:
            self.send_response(status)
            kind = "text/xml" if body.startswith(b"<?xml") else "application/json"
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(body)  # fails when the client timed out first

        def do_GET(self) -> None:
            self._answer("GET")

        def do_POST(self) -> None:
            self._answer("POST")

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def rate_server() -> Iterator[RateServer]:
    state = RateServer()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    httpd.daemon_threads = True
    state.base_url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
