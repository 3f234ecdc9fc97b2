"""Structured logs (structlog). Secrets never reach a log call: keys are decrypted only
inside the credential cache and signatures are compared, not printed."""

from __future__ import annotations

import logging
import sys

import structlog


def configure_logging(level: str = "info", json_output: bool = False) -> None:
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    logging.basicConfig(stream=sys.stderr, level=numeric, format="%(message)s")
    # Alembic narrates every step at INFO; the CLI reports the outcome itself.
    logging.getLogger("alembic").setLevel(max(numeric, logging.WARNING))
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if json_output
        else structlog.dev.ConsoleRenderer(
            # Never print local variables: they can hold decrypted keys.
            exception_formatter=structlog.dev.plain_traceback
        )
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            *([structlog.processors.format_exc_info] if json_output else []),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        # stdout belongs to command output (`--json` must stay parseable).
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
