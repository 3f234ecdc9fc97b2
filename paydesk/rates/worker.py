"""Keeps the stored rates fresh: every provider is asked each `rate_refresh_seconds`."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

import structlog

from paydesk.background import sleep_or_stop
from paydesk.context import Context
from paydesk.rates.providers import ProviderError, RateProvider, build_providers

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Outcome:
    provider: str
    pairs: int
    error: str | None = None


async def refresh_once(context: Context, providers: Sequence[RateProvider]) -> list[Outcome]:
    """Ask every provider at once and store what each answered; one that fails keeps its
    previous rates, which stop being used when they pass the staleness bound."""
    answers = await asyncio.gather(*(p.fetch() for p in providers), return_exceptions=True)
    outcomes = []
    fetched = []
    for provider, answer in zip(providers, answers, strict=True):
        if isinstance(answer, ProviderError):
            outcomes.append(Outcome(provider.name, 0, str(answer)))
        elif isinstance(answer, BaseException):
            log.error("rates.provider_crashed", provider=provider.name, exc_info=answer)
            outcomes.append(Outcome(provider.name, 0, f"{type(answer).__name__}: {answer}"))
        else:
            fetched.extend(answer)
            outcomes.append(Outcome(provider.name, len(answer)))
    await context.rates.store(fetched)
    return outcomes


async def rates_loop(context: Context, stop: asyncio.Event) -> None:
    wanted = context.catalogue.all_codes
    providers = build_providers(context.settings, wanted)
    if not providers:
        return
    failing: dict[str, bool] = {}
    try:
        while not stop.is_set():
            try:
                for outcome in await refresh_once(context, providers):
                    # Logged when a provider starts or stops failing, not every minute.
                    was_failing = failing.get(outcome.provider, False)
                    if outcome.error and not was_failing:
                        log.warning("rates.provider_failing", provider=outcome.provider,
                                    error=outcome.error)  # fmt: skip
                    elif not outcome.error and was_failing:
                        log.info("rates.provider_recovered", provider=outcome.provider)
                    failing[outcome.provider] = outcome.error is not None
            except Exception:
                log.exception("rates.refresh_failed")
            await sleep_or_stop(stop, context.settings.rate_refresh_seconds)
    finally:
        for provider in providers:
            await provider.close()
