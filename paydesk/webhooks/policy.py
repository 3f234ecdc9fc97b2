"""How each dialect's receivers are called: what answer counts as delivered, how long one
attempt may take, and when (and how often) a failed delivery is tried again.

A Cryptomus receiver is told "delivered" by any 2xx and is retried for about three days;
a Moneroo receiver only by HTTP 200 within 3 seconds, and is retried three times, 10
minutes apart. The outbox asks `policy_for(topic)` and holds no dialect rules itself.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta

from paydesk.webhooks.sender import Outcome

#: Topics of the Moneroo dialect (checkout payments, later checkout payouts).
CHECKOUT_PREFIX = "checkout."

#: Wait before each retry (attempt n+1 waits SCHEDULE[n-1]), ±10 % jitter: 18 attempts
#: over about 3 days 16 hours (never less than 3 days 7 hours), then the delivery is dead
#: (kept, and retryable by hand).
SCHEDULE = (
    timedelta(seconds=30),
    timedelta(minutes=1),
    timedelta(minutes=2),
    timedelta(minutes=4),
    timedelta(minutes=8),
    timedelta(minutes=16),
    timedelta(minutes=32),
    timedelta(hours=1),
    timedelta(hours=2),
    timedelta(hours=4),
    timedelta(hours=8),
    timedelta(hours=12),
    timedelta(hours=12),
    timedelta(hours=12),
    timedelta(hours=12),
    timedelta(hours=12),
    timedelta(hours=12),
)
JITTER = 0.1


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    """One dialect's delivery contract."""

    name: str
    #: Wait before each retry: attempt n+1 waits `schedule[n-1]`; after the last, dead.
    schedule: tuple[timedelta, ...]
    #: Relative spread of each wait (0 keeps a documented interval exact).
    jitter: float
    #: Status codes that mean "delivered"; anything else (or no answer) is a failure.
    accepted: range
    #: Seconds one attempt may take; None keeps the sender's configured timeout.
    timeout: float | None

    @property
    def max_attempts(self) -> int:
        return len(self.schedule) + 1

    def delivered(self, outcome: Outcome) -> bool:
        return outcome.status_code is not None and outcome.status_code in self.accepted

    def retry_wait(self, attempts: int) -> timedelta | None:
        """The wait after `attempts` failed attempts, or None when the delivery is dead."""
        if attempts >= self.max_attempts:
            return None
        wait = self.schedule[attempts - 1]
        if self.jitter:
            wait *= random.uniform(1 - self.jitter, 1 + self.jitter)
        return wait


CRYPTOMUS = DeliveryPolicy(
    name="cryptomus", schedule=SCHEDULE, jitter=JITTER, accepted=range(200, 300), timeout=None
)
#: Spec moneroo-api 8.2: only 200 counts, 3 s timeout, 3 further attempts 10 minutes apart.
MONEROO = DeliveryPolicy(
    name="moneroo",
    schedule=(timedelta(minutes=10),) * 3,
    jitter=0.0,
    accepted=range(200, 201),
    timeout=3.0,
)


def policy_for(topic: str) -> DeliveryPolicy:
    """The policy of the dialect a topic is rendered in."""
    return MONEROO if topic.startswith(CHECKOUT_PREFIX) else CRYPTOMUS
