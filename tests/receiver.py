"""A webhook receiver on 127.0.0.1 that records what it gets and answers as told."""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    port: int = 0
    #: Status codes to answer with, in turn; 200 once they run out.
    answers: list[int] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    #: Seconds each answer takes (to catch a worker mid-batch).
    delay: float = 0.0
    #: webhook-id values being answered right now, and any id seen twice at once.
    in_flight: set[str] = field(default_factory=set)
    overlaps: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/ipn"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                message = self.headers.get("webhook-id", "")
                with receiver._lock:
                    if message in receiver.in_flight:
                        receiver.overlaps.append(message)
                    receiver.in_flight.add(message)
                if receiver.delay:
                    time.sleep(receiver.delay)
                with receiver._lock:
                    receiver.in_flight.discard(message)
                    receiver.received.append(
                        Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                    )
                status = receiver.answers.pop(0) if receiver.answers else 200
                answer = b"OK" if status < 300 else b"receiver says no"
                with contextlib.suppress(OSError):  # the sender may be gone (killed)
                    self.send_response(status)
                    if 300 <= status < 400:
                        self.send_header("Location", f"http://127.0.0.1:{receiver.port}/moved")
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
