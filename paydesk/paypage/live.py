"""Live status for open payment pages.

One poller per process reads every invoice that has a page waiting on it, in one batch
per tick, and wakes the pages waiting on them; those whose view changed are answered.
The database stays the only source of truth (the watcher that credits a payment may run
in another process), and the cost is one query per tick however many payers watch.
"""

from __future__ import annotations

import asyncio
import uuid
from contextlib import suppress
from dataclasses import dataclass, field

import structlog

from paydesk.paypage.service import PaymentPages, PaymentView

log = structlog.get_logger(__name__)


@dataclass(slots=True)
class _Watch:
    listeners: int = 0
    view: PaymentView | None = None
    #: When the read that gave `view` started (the event loop's clock).
    read_at: float = float("-inf")
    #: Set after every read of this invoice, then replaced.
    read: asyncio.Event = field(default_factory=asyncio.Event)


class LiveStatus:
    def __init__(self, pages: PaymentPages, poll_seconds: float) -> None:
        self.pages = pages
        self.poll_seconds = poll_seconds
        self._watches: dict[uuid.UUID, _Watch] = {}
        self._poller: asyncio.Task[None] | None = None

    async def next_view(
        self, invoice_uuid: uuid.UUID, known_version: str | None, wait_seconds: float
    ) -> PaymentView | None:
        """The invoice's view as soon as it differs from `known_version`; None if it did
        not change within `wait_seconds`.

        Only a read that started after this call counts: a page rendered a moment ago
        knows a newer state than a view the poller read before it, and must not be sent
        back to the older one."""
        loop = asyncio.get_running_loop()
        asked_at = loop.time()
        watch = self._watches.setdefault(invoice_uuid, _Watch())
        watch.listeners += 1
        self._ensure_poller()
        try:
            async with asyncio.timeout(wait_seconds):
                while True:
                    view = watch.view
                    fresh = watch.read_at >= asked_at
                    if view is not None and fresh and view.version != known_version:
                        return view
                    await watch.read.wait()
        except TimeoutError:
            return None
        finally:
            watch.listeners -= 1

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with suppress(asyncio.CancelledError):
                await self._poller
            self._poller = None

    def _ensure_poller(self) -> None:
        if self._poller is None or self._poller.done():
            self._poller = asyncio.create_task(self._poll(), name="paypage-live-status")

    async def _poll(self) -> None:
        while True:
            for key in [k for k, w in self._watches.items() if w.listeners == 0]:
                del self._watches[key]
            if not self._watches:
                return
            started = asyncio.get_running_loop().time()
            try:
                views = await self.pages.views(list(self._watches))
            except Exception:  # the database is away: keep the pages waiting, retry
                log.warning("paypage.poll_failed", exc_info=True)
                views = {}
            for key, view in views.items():
                watch = self._watches.get(key)
                if watch is None:
                    continue
                watch.view = view
                watch.read_at = started
                watch.read.set()
                watch.read = asyncio.Event()
            await asyncio.sleep(self.poll_seconds)
