"""HD keys: published derivation vectors, the master seed, watch-only merchants."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from bip_utils import Bip44Changes
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from paydesk.chains.keys import BadXpub, KeyPathChanged, KeyRing, XpubDeriver, watch_only_account
from paydesk.chains.models import DepositAddress, MasterSeed
from paydesk.context import build_context
from paydesk.db import utcnow
from paydesk.invoices.schemas import InvoiceDraft
from paydesk.merchants.service import create_merchant
from tests.conftest import make_settings
from tests.keyring import key_ring

TEST_MNEMONIC = "abandon " * 11 + "about"


@pytest.fixture
def settings_overrides():
    return {"networks": ["devnet", "eth"], "chain_nodes": {"eth": "http://127.0.0.1:9"}}


def test_published_vectors():
    keys = key_ring(TEST_MNEMONIC)
    # BIP84's own test vector, and the addresses every wallet derives from this mnemonic.
    assert keys.deriver("btc").derive(0) == "bc1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyu"
    assert keys.deriver("ltc").derive(0) == "ltc1qjmxnz78nmc8nq77wuxh25n2es7rzm5c2rkk4wh"
    assert keys.deriver("eth").derive(0) == "0x9858EfFD232B4033E47d90003D41EC34EcaEda94"
    assert keys.deriver("tron").derive(0) == "TUEZSdKsoDHQMeZwihtdoBiN46zxhGWYdH"
    # BIP44 coins without segwit: P2PKH, and CashAddr for Bitcoin Cash (m/44'/145'/…).
    assert keys.deriver("bch").derive(0) == "bitcoincash:qqyx49mu0kkn9ftfj6hje6g2wfer34yfnq5tahq3q6"
    assert keys.deriver("doge").derive(0) == "DBus3bamQjgJULBJtYXpEzDWQRwF5iwxgC"
    assert keys.deriver("dash").derive(0) == "XoJA8qE3N2Y3jMLEtZ3vcN42qseZ8LvFf5"


def test_evm_networks_never_share_an_address():
    keys = key_ring(TEST_MNEMONIC)
    evm = [n for n, p in keys.paths.items() if p.coin == keys.paths["eth"].coin]
    assert len(evm) == 5
    firsts = {keys.deriver(n).derive(i) for n in evm for i in range(20)}
    assert len(firsts) == 20 * len(evm)
    assert keys.paths["bsc"].describe() == "m/44'/60'/1'/0/<index>"


def test_the_xpub_derives_the_same_addresses_watch_only():
    keys = key_ring(TEST_MNEMONIC)
    for network in ("eth", "btc", "tron"):
        account = watch_only_account(keys.paths[network], network, keys.xpub(network))
        public = XpubDeriver(account, keys.encoders.get(network))
        assert [public.derive(i) for i in range(5)] == [
            keys.deriver(network).derive(i) for i in range(5)
        ]


def test_bad_xpubs_are_refused_with_a_reason():
    keys = key_ring(TEST_MNEMONIC)
    with pytest.raises(BadXpub, match="not an extended public key"):
        watch_only_account(keys.paths["eth"], "eth", "xpub-nonsense")
    with pytest.raises(BadXpub, match="private key"):
        watch_only_account(keys.paths["eth"], "eth", keys.account("eth").PrivateKey().ToExtended())
    change_level = keys.account("eth").Change(Bip44Changes.CHAIN_EXT).PublicKey().ToExtended()
    with pytest.raises(BadXpub, match="account-level"):
        watch_only_account(keys.paths["eth"], "eth", change_level)


async def test_master_seed_is_made_once_and_kept_encrypted(context):
    async with context.db.transaction() as session:
        await context.addresses.keys.load(session)
    xpub = context.addresses.keys.xpub("eth")
    async with context.db.reader() as session:
        [stored] = (await session.scalars(select(MasterSeed))).all()
    mnemonic = context.vault.decrypt(stored.mnemonic_encrypted)
    assert len(mnemonic.split()) == 24 and mnemonic.split()[0] not in stored.mnemonic_encrypted
    again = KeyRing(context.vault, context.addresses.keys.paths)  # another process
    async with context.db.transaction() as session:
        await again.load(session)
    assert again.xpub("eth") == xpub


async def test_invoice_addresses_come_from_the_master_seed(context, merchant):
    draft = InvoiceDraft(amount=Decimal(1), currency="ETH", order_id="e1", network="eth")
    async with context.db.transaction() as session:
        invoice = (await context.invoices.create(session, merchant.merchant_id, draft)).invoice
    # Pool addresses are indices 0, 1, …: the first invoice has index 0.
    assert invoice.address == context.addresses.keys.deriver("eth").derive(0)


async def test_an_address_cannot_be_stored_twice(context):
    row = {"network": "eth", "address": "0xabc", "derivation_index": 0, "key_owner": "",
           "created_at": utcnow()}  # fmt: skip
    async with context.db.transaction() as session:
        await session.execute(insert(DepositAddress).values(**row))
    with pytest.raises(IntegrityError):
        async with context.db.transaction() as session:
            await session.execute(
                insert(DepositAddress).values(**{**row, "derivation_index": 1, "key_owner": "m"})
            )


async def test_watch_only_merchant_gets_addresses_of_its_own_wallet(context, merchant, api):
    wallet = key_ring(TEST_MNEMONIC)  # the merchant's own wallet, elsewhere
    async with context.db.transaction() as session:
        first = await context.addresses.register_xpub(
            session, merchant.merchant_id, "eth", wallet.xpub("eth")
        )
    assert first == "0x9858EfFD232B4033E47d90003D41EC34EcaEda94"
    created = [
        await api.result(
            "/v1/payment",
            {"amount": "1", "currency": "ETH", "network": "eth", "order_id": f"w{i}"},
        )
        for i in range(3)
    ]
    assert [c["address"] for c in created] == [wallet.deriver("eth").derive(i) for i in range(3)]
    # Other merchants still get Paydesk's addresses.
    async with context.db.transaction() as session:
        other = await create_merchant(session, context.vault, name="B", email="b@b.test")
        draft = InvoiceDraft(amount=Decimal(1), currency="ETH", order_id="x", network="eth")
        invoice = (await context.invoices.create(session, other.merchant_id, draft)).invoice
    assert invoice.address == context.addresses.keys.deriver("eth").derive(0)

    async with context.db.transaction() as session:
        with pytest.raises(BadXpub, match="already uses"):
            await context.addresses.register_xpub(
                session, other.merchant_id, "eth", wallet.xpub("eth")
            )
    async with context.db.transaction() as session:
        with pytest.raises(BadXpub, match="own xpub"):
            await context.addresses.register_xpub(
                session, other.merchant_id, "eth", context.addresses.keys.xpub("eth")
            )
    async with context.db.transaction() as session:
        assert await context.addresses.register_xpub(
            session, merchant.merchant_id, "eth", None
        ) is None  # fmt: skip
    back = await api.result(
        "/v1/payment", {"amount": "1", "currency": "ETH", "network": "eth", "order_id": "w9"}
    )
    assert back["address"] == context.addresses.keys.deriver("eth").derive(1)
    assert uuid.UUID(back["uuid"])


async def test_a_changed_key_path_is_refused_once_addresses_exist(
    context, merchant, database, tmp_path
):
    """Moving eth to another account after an invoice got an address would lose the keys
    of every address handed out (and move the hot wallet): the next start refuses it."""
    draft = InvoiceDraft(amount=Decimal(1), currency="ETH", order_id="k1", network="eth")
    async with context.db.transaction() as session:
        invoice = (await context.invoices.create(session, merchant.merchant_id, draft)).invoice
    override = tmp_path / "moved.toml"
    override.write_text("[networks.eth]\nkey_path = \"m/44'/60'/7'\"\n")
    moved = build_context(
        make_settings(
            database.url,
            tmp_path,
            networks=["devnet", "eth"],
            catalogue_file=override,
            chain_nodes={"eth": "http://127.0.0.1:9"},
        )
    )
    try:
        with pytest.raises(KeyPathChanged, match=r"m/44'/60'/7'/0/<index>"):
            async with moved.db.transaction() as session:
                await moved.addresses.keys.load(session)
        assert not moved.addresses.keys.loaded
    finally:
        await moved.close()
    # Put back, it loads, and derives the same address.
    again = KeyRing(context.vault, context.addresses.keys.paths)
    async with context.db.transaction() as session:
        await again.load(session)
    assert again.deriver("eth").derive(0) == invoice.address
