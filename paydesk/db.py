"""Database wiring: declarative base, exact column types, engine and transactions.

Services take an `AsyncSession` and never commit; whoever opens the transaction (a request
handler, a worker loop, a CLI command) owns it through `Database.transaction()`.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import BigInteger, DateTime, Integer, MetaData, Numeric, String, event
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator
from sqlalchemy.util import greenlet_spawn

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


#: Execution option marking a read-only session (see `Database.reader`).
READ_ONLY = "paydesk_read_only"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


#: Auto-incrementing 64-bit key; SQLite only auto-increments a column declared INTEGER.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Amount(TypeDecorator[Decimal]):
    """An exact decimal amount on every engine.

    PostgreSQL stores it as unconstrained NUMERIC. SQLite has no exact decimal type, so the
    amount is kept as its fixed-point text; do arithmetic and comparisons in Python.
    """

    impl = Numeric
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(100))
        return dialect.type_descriptor(Numeric(asdecimal=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if not isinstance(value, Decimal):
            if isinstance(value, int) and not isinstance(value, bool):
                value = Decimal(value)
            else:
                raise TypeError(f"amounts must be Decimal, got {type(value).__name__}")
        if not value.is_finite():
            raise ValueError("amounts must be finite")
        return f"{value:f}" if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        return value if isinstance(value, Decimal) else Decimal(value)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on both engines (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime; use paydesk.db.utcnow()")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_uuid() -> uuid.UUID:
    return uuid.uuid4()


class Database:
    """The engine and session factory of one process."""

    def __init__(self, url: str, *, pool_size: int = 20, echo: bool = False) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        kwargs: dict[str, Any] = {"echo": echo}
        if self.is_sqlite:
            ensure_sqlite_dir(url)
            kwargs["connect_args"] = {"timeout": 30}
        else:
            # A fixed pool: overflow connections are opened and closed per burst, which
            # costs more than waiting for a pooled one. No pre-ping (a round trip per
            # checkout); recycling bounds a connection's age.
            kwargs.update(pool_size=pool_size, max_overflow=0, pool_timeout=30, pool_recycle=1800)
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        if self.is_sqlite:
            _configure_sqlite(self.engine)
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)
        self._readers = (
            async_sessionmaker(
                self.engine.execution_options(**{READ_ONLY: True}), expire_on_commit=False
            )
            if self.is_sqlite
            else self.sessionmaker
        )

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """One unit of work: committed on success, rolled back on any exception."""
        async with self.sessionmaker() as session, session.begin():
            yield session

    async def run_alone(self, statement: StandaloneStatement, values: dict[str, Any]) -> Any:
        """Run one statement as its own transaction and return its first row (or None).

        For units of work that are exactly one statement: PostgreSQL makes a single
        statement atomic by itself, so the session, BEGIN and COMMIT (three round trips and
        most of the per-request cost) add nothing. The statement goes to the driver on a
        pooled connection.
        """
        assert statement.dialect == self.engine.dialect.name
        pooled = await self.engine.raw_connection()
        try:
            return await pooled.driver_connection.fetchrow(statement.sql, *statement.args(values))
        except asyncpg.PostgresError as error:
            # The server refused the statement; the connection is fine unless it says so.
            if isinstance(error, asyncpg.PostgresConnectionError):
                await greenlet_spawn(pooled.invalidate)
            raise
        except BaseException:
            # Broken, cancelled mid-statement or confused: the pool cannot tell, so the
            # connection must not go back to it.
            await greenlet_spawn(pooled.invalidate)
            raise
        finally:
            # No transaction was opened, so returning it costs no round trip.
            pooled.close()

    @property
    def runs_alone(self) -> bool:
        """Whether `run_alone` is available (PostgreSQL; SQLite serialises writers anyway)."""
        return not self.is_sqlite

    @asynccontextmanager
    async def reader(self) -> AsyncIterator[AsyncSession]:
        """A session that only reads, safe to open while this task holds a transaction.

        On SQLite every writing transaction starts with `BEGIN IMMEDIATE`; a read taken
        with that inside another transaction of the same task would wait for a lock its
        own task holds. Readers start a deferred transaction instead, which WAL lets run
        beside the writer (they see the last commit).
        """
        async with self._readers() as session:
            yield session

    async def dispose(self) -> None:
        await self.engine.dispose()


class StandaloneStatement:
    """A Core statement compiled once to the driver's SQL, for `Database.run_alone`.

    Values go through each bind's own type processing (exact amounts, UTC timestamps,
    JSON), so a row written this way reads back exactly as one written by a session.
    """

    dialect = "postgresql"

    def __init__(self, statement: Any, column_keys: list[str] | None = None) -> None:
        from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect

        driver_dialect = asyncpg_dialect()
        compiled = statement.compile(dialect=driver_dialect, column_keys=column_keys)
        self.sql = str(compiled)
        binds = compiled.binds
        #: Literals the statement carries (a LIMIT, a value set to NULL).
        self._literals = {name: bind.value for name, bind in binds.items() if not bind.required}
        self._plan = [
            (name, binds[name].type.dialect_impl(driver_dialect).bind_processor(driver_dialect))
            for name in compiled.positiontup or []
        ]

    def args(self, values: dict[str, Any]) -> list[Any]:
        args = []
        for name, processor in self._plan:
            value = values[name] if name in values else self._literals[name]
            args.append(processor(value) if processor is not None else value)
        return args


def ensure_sqlite_dir(url: str) -> None:
    """Create the directory of a SQLite database file (a fresh data dir)."""
    path = url.split(":///", 1)[-1]
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)


def _configure_sqlite(engine: AsyncEngine) -> None:
    """WAL, foreign keys, and write-intent transactions.

    A deferred SQLite transaction that reads and then writes fails at once with "database is
    locked" when another writer got there first; `BEGIN IMMEDIATE` queues behind the
    busy timeout instead, so concurrent requests wait rather than fail.
    """
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        read_only = connection.get_execution_options().get(READ_ONLY, False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def dialect_insert(session: AsyncSession, table: Any) -> Any:
    """An INSERT that knows ON CONFLICT on the session's engine (PostgreSQL or SQLite)."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table)
