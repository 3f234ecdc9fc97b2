from __future__ import annotations

import pytest
from sqlalchemy import select

from paydesk.merchants.models import Merchant, User
from paydesk.merchants.service import (
    CredentialsCache,
    KeyKind,
    MerchantError,
    create_merchant,
    list_merchants,
    load_credentials,
    rotate_key,
)


async def test_keys_are_stored_encrypted(context):
    async with context.db.transaction() as session:
        issued = await create_merchant(session, context.vault, name=" Shop ", email="A@B.test")
    assert issued.payment_key != issued.payout_key and len(issued.payment_key) >= 48
    async with context.db.sessionmaker() as session:
        merchant = await session.get(Merchant, issued.merchant_id)
        user = await session.scalar(select(User))
    assert merchant.name == "Shop" and user.email == "a@b.test"
    assert issued.payment_key not in merchant.payment_key_encrypted
    assert context.vault.decrypt(merchant.payment_key_encrypted) == issued.payment_key
    assert context.vault.decrypt(merchant.payout_key_encrypted) == issued.payout_key


async def test_one_user_owns_several_merchants(context):
    async with context.db.transaction() as session:
        await create_merchant(session, context.vault, name="A", email="o@x.test")
        await create_merchant(session, context.vault, name="B", email="O@X.test")
        rows = await list_merchants(session)
    assert [m.name for m, _ in rows] == ["A", "B"]
    assert len({u.id for _, u in rows}) == 1


@pytest.mark.parametrize(("name", "email"), [("", "a@b.test"), ("x" * 101, "a@b.test"),
                                             ("ok", "no-at"), ("ok", "a@nodot")])  # fmt: skip
async def test_bad_merchant_input(context, name, email):
    with pytest.raises(MerchantError):
        async with context.db.transaction() as session:
            await create_merchant(session, context.vault, name=name, email=email)


async def test_rotation_replaces_one_key(context):
    async with context.db.transaction() as session:
        issued = await create_merchant(session, context.vault, name="A", email="o@x.test")
        new = await rotate_key(session, context.vault, issued.merchant_id, KeyKind.PAYOUT)
        creds = await load_credentials(session, context.vault, issued.merchant_id)
    assert creds.payout_key == new != issued.payout_key
    assert creds.payment_key == issued.payment_key


async def test_credentials_cache_holds_keys_for_its_lifetime(context):
    async with context.db.transaction() as session:
        issued = await create_merchant(session, context.vault, name="A", email="o@x.test")
    cache = CredentialsCache(context.db, context.vault, ttl_seconds=3600)
    assert (await cache.get(issued.merchant_id)).payment_key == issued.payment_key
    async with context.db.transaction() as session:
        new = await rotate_key(session, context.vault, issued.merchant_id, KeyKind.PAYMENT)
    assert (await cache.get(issued.merchant_id)).payment_key == issued.payment_key
    cache.invalidate(issued.merchant_id)
    assert (await cache.get(issued.merchant_id)).payment_key == new


async def test_rotated_key_stops_working_on_the_api(api, context):
    async with context.db.transaction() as session:
        new = await rotate_key(session, context.vault, api.merchant.merchant_id, KeyKind.PAYMENT)
    context.credentials.invalidate(api.merchant.merchant_id)
    old = await api.post("/v1/payment/services", {}, key=api.merchant.payment_key)
    assert old.status_code == 401
    await api.result("/v1/payment/services", {}, key=new)
