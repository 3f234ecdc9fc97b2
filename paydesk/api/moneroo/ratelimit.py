"""Moneroo's documented rate limit: so many requests per minute per key, then 429 with
`Retry-After: 60`.

Counted per API process in fixed one-minute windows (the key's digest, never the key
itself, is what is remembered): behind several processes a client may get up to that many
times the limit, which keeps the promise clients rely on (they are never refused below it).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from cachetools import TTLCache

WINDOW_SECONDS = 60


class RateLimiter:
    def __init__(
        self, per_minute: int, clock: Callable[[], float] = time.monotonic, size: int = 100_000
    ) -> None:
        self.per_minute = per_minute
        self._clock = clock
        # key digest → (window number, requests in it); entries of idle keys expire.
        self._windows: TTLCache[str, tuple[int, int]] = TTLCache(
            maxsize=size, ttl=2 * WINDOW_SECONDS, timer=clock
        )

    def allow(self, key_digest: str) -> bool:
        """Count one request of the key; False once it went over the limit this minute."""
        if self.per_minute <= 0:
            return True
        window = int(self._clock() // WINDOW_SECONDS)
        current, count = self._windows.get(key_digest, (window, 0))
        if current != window:
            count = 0
        count += 1
        self._windows[key_digest] = (window, count)
        return count <= self.per_minute
