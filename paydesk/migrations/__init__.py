"""Alembic migrations, shipped inside the package so `paydesk migrate` works wherever
Paydesk is installed."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import create_async_engine

from paydesk.db import ensure_sqlite_dir

SCRIPT_LOCATION = str(Path(__file__).parent)


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    config.attributes["url"] = url
    return config


def head_revision() -> str | None:
    return ScriptDirectory(SCRIPT_LOCATION).get_current_head()


def upgrade(url: str, revision: str = "head") -> None:
    """Apply migrations (blocking; Alembic drives its own event loop for async URLs)."""
    if url.startswith("sqlite"):
        ensure_sqlite_dir(url)
    command.upgrade(alembic_config(url), revision)


async def current_revision(url: str) -> str | None:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(
                lambda sync: MigrationContext.configure(sync).get_current_revision()
            )
    finally:
        await engine.dispose()


def current_revision_sync(url: str) -> str | None:
    return asyncio.run(current_revision(url))
