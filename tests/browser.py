"""A real headless Chromium (Debian's) driven by Playwright, for tests of the pages as a
payer sees them; screenshots are kept under `test-artifacts/`."""

from __future__ import annotations

import email
import io
import os
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = Path(os.environ.get("PAYDESK_TEST_ARTIFACTS", ROOT / "test-artifacts"))
AXE = ROOT / "tools" / "node_modules" / "axe-core" / "axe.min.js"
#: The flags a sandboxed, offline machine needs (no GPU, no calls home).
CHROMIUM_FLAGS = [
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
]
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}


def chromium_path() -> str:
    """Debian's Chromium; its absence fails the run under CI and skips elsewhere."""
    found = os.environ.get("PAYDESK_CHROMIUM") or shutil.which("chromium")
    if found:
        return found
    if os.environ.get("CI") == "true":
        pytest.fail("chromium is not installed (scripts/test installs it)")
    pytest.skip("chromium is not installed (scripts/test installs it)")


@contextmanager
def chromium() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium_path(),
            headless=True,
            chromium_sandbox=False,
            args=CHROMIUM_FLAGS,
        )
        try:
            yield browser
        finally:
            browser.close()


def screenshot(page: Any, name: str) -> Path:
    path = ARTIFACTS / "screenshots" / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=True)
    return path


def decode_qr(png: bytes) -> list[str]:
    """Every QR code a real decoder (ZXing) finds in an image."""
    import zxingcpp
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    return [found.text for found in zxingcpp.read_barcodes(image)]


def accessibility_violations(page: Any) -> list[dict[str, Any]]:
    """What axe-core (the engine behind Lighthouse's accessibility audit) finds on the
    page as it is now: WCAG 2.1 A and AA rules, colour contrast included."""
    if not AXE.exists():
        if os.environ.get("CI") == "true":
            pytest.fail("axe-core is not installed (npm ci --prefix tools)")
        pytest.skip("axe-core is not installed (npm ci --prefix tools)")
    # Evaluated by the test's own channel: the page's policy refuses inline scripts.
    page.evaluate(AXE.read_text() + "\n;0")
    result = page.evaluate(
        """async () => {
            const r = await axe.run(document, {
                runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]},
            });
            return r.violations.map(v => ({
                id: v.id, impact: v.impact,
                nodes: v.nodes.map(n => n.target.join(" ") + " " + n.failureSummary),
            }));
        }"""
    )
    return list(result)


class _Shop(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.server.visits.append(self.path)  # type: ignore[attr-defined]
        body = f"<!doctype html><title>Shop</title><h1>Shop page {self.path}</h1>".encode()
        self.send_response(200)
        self.send_header("content-type", "text/html; charset=utf-8")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        with suppress(BrokenPipeError, ConnectionResetError):
            # The browser may move on (the test's next navigation) before the body.
            self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def shop_site() -> Iterator[tuple[str, list[str]]]:
    """The merchant's site on 127.0.0.1: where `url_success` and `url_return` lead; the
    list records the paths visited."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Shop)
    server.visits = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", server.visits  # type: ignore[attr-defined]
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Inbox:
    """What a real SMTP server on 127.0.0.1 received (the pages' emails)."""

    messages: list[Message] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"


@contextmanager
def smtp_inbox() -> Iterator[tuple[Inbox, int]]:
    """An aiosmtpd server on a free loopback port, and what it received."""
    from aiosmtpd.controller import Controller

    from tests.conftest import free_port

    handler = Inbox()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield handler, controller.port
    finally:
        controller.stop()
