"""Sessions: a reader opened inside a writing transaction must not wait for it."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select

from paydesk.merchants.models import User
from paydesk.merchants.service import get_or_create_user


async def test_reader_inside_a_writing_transaction_does_not_wait(context):
    async with context.db.transaction() as session:
        await get_or_create_user(session, "writer@shop.test")
        await session.flush()  # this transaction now holds the write lock

        async def read() -> int:
            async with context.db.reader() as reader:
                return int(await reader.scalar(select(func.count()).select_from(User)))

        # The reader sees the last commit (not the uncommitted user), at once.
        assert await asyncio.wait_for(read(), timeout=5) == 0
    async with context.db.reader() as reader:
        assert await reader.scalar(select(func.count()).select_from(User)) == 1
