"""HD keys: the master seed, the derivation path of each network, merchants' own xpubs.

Paydesk's custodial addresses come from one BIP39 mnemonic, generated at first start and
kept encrypted with the master key. Each network has its own BIP32 account
(m/purpose'/coin'/account'), so the same index never yields the same address on two EVM
networks: a payment sent on the wrong chain cannot land on another invoice's address.
Deposit addresses are the external chain's children m/…/0/index. Only the account's public
node is needed to derive them, which is what makes watch-only merchants possible.
The hot wallet that payouts are sent from is the internal chain's first key, m/…/1/0.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bip_utils import (
    Bip39MnemonicGenerator,
    Bip39SeedGenerator,
    Bip39WordsNum,
    Bip44,
    Bip44Changes,
    Bip44Coins,
    Bip49,
    Bip84,
    Bip84Coins,
)
from bip_utils.bip.bip44_base import Bip44Base
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from paydesk.chains.models import MasterSeed
from paydesk.db import dialect_insert, utcnow
from paydesk.vault import Vault

MASTER_SEED_NAME = "master"


@dataclass(frozen=True, slots=True)
class KeyPath:
    """How a network's keys derive: the BIP standard (44, 49, 84), its coin, the account."""

    standard: type[Bip44Base]
    coin: Any
    account: int = 0

    def describe(self) -> str:
        purpose = {Bip44: 44, Bip49: 49, Bip84: 84}[self.standard]
        coin_type = self.standard.FromSeed(b"\0" * 16, self.coin).CoinConf().CoinIndex()
        return f"m/{purpose}'/{coin_type}'/{self.account}'/0/<index>"


#: Networks whose addresses derive from a BIP32 key, and how. EVM networks share the coin
#: type 60 (what every EVM wallet uses) and differ by account.
KEY_PATHS: dict[str, KeyPath] = {
    "eth": KeyPath(Bip44, Bip44Coins.ETHEREUM, 0),
    "bsc": KeyPath(Bip44, Bip44Coins.ETHEREUM, 1),
    "polygon": KeyPath(Bip44, Bip44Coins.ETHEREUM, 2),
    "arbitrum": KeyPath(Bip44, Bip44Coins.ETHEREUM, 3),
    "avalanche": KeyPath(Bip44, Bip44Coins.ETHEREUM, 4),
    "btc": KeyPath(Bip84, Bip84Coins.BITCOIN),
    "ltc": KeyPath(Bip84, Bip84Coins.LITECOIN),
    "bch": KeyPath(Bip44, Bip44Coins.BITCOIN_CASH),
    "doge": KeyPath(Bip44, Bip44Coins.DOGECOIN),
    "dash": KeyPath(Bip44, Bip44Coins.DASH),
    "tron": KeyPath(Bip44, Bip44Coins.TRON),
}


class KeysError(LookupError):
    pass


class NoKeyPath(KeysError):
    """The network's addresses do not come from a BIP32 key."""


class BadXpub(KeysError):
    """Not an account-level extended public key of the network."""


#: Spells a compressed public key as an address of a network whose prefixes the catalogue
#: gives (the Bitcoin family: mainnet, testnet and regtest differ only there).
AddressEncoder = Callable[[bytes], str]


class XpubDeriver:
    """Addresses m/…/0/index below an account node (public or private): the external
    chain's node is derived once, each address is then one public child derivation.
    `encode` spells the key as the network's catalogue entry says; without it, the coin's
    mainnet spelling (bip-utils' own)."""

    def __init__(self, account: Bip44Base, encode: AddressEncoder | None = None) -> None:
        self._external = account.Change(Bip44Changes.CHAIN_EXT)
        self._encode = encode

    def derive(self, index: int) -> str:
        key = self._external.AddressIndex(index).PublicKey()
        if self._encode is not None:
            return self._encode(key.RawCompressed().ToBytes())
        return key.ToAddress()


def key_path(network: str) -> KeyPath:
    path = KEY_PATHS.get(network)
    if path is None:
        raise NoKeyPath(network)
    return path


def watch_only_account(network: str, xpub: str) -> Bip44Base:
    """A merchant-supplied xpub, checked to be the account level of `network`'s path."""
    path = key_path(network)
    try:
        account = path.standard.FromExtendedKey(xpub.strip(), path.coin)
    except Exception as exc:  # bip-utils raises several unrelated types for bad input
        raise BadXpub(f"not an extended public key for {network}: {exc}") from None
    if not account.IsPublicOnly():
        raise BadXpub("that is a private key: give the extended *public* key (xpub)")
    if account.Level().value != 3:
        raise BadXpub(
            f"give the account-level key ({path.describe().rsplit('/0/', 1)[0]}), "
            f"not one at depth {account.Bip32Object().Depth().ToInt()}"
        )
    return account


class KeyRing:
    """The master seed and the account nodes derived from it (each derived once)."""

    def __init__(self, vault: Vault, encoders: dict[str, AddressEncoder] | None = None) -> None:
        self._vault = vault
        #: Networks whose addresses are spelled by the catalogue's prefixes.
        self.encoders = dict(encoders or {})
        self._seed: bytes | None = None
        self._accounts: dict[str, Bip44Base] = {}
        self._derivers: dict[str, XpubDeriver] = {}

    @property
    def loaded(self) -> bool:
        return self._seed is not None

    async def load(self, session: AsyncSession) -> None:
        """Read the master seed, generating it on first start. Two processes starting at
        once both insert; the primary key keeps the first and both read it back."""
        if self._seed is not None:
            return
        stored = await _stored_mnemonic(session)
        if stored is None:
            mnemonic = str(Bip39MnemonicGenerator().FromWordsNumber(Bip39WordsNum.WORDS_NUM_24))
            await session.execute(
                dialect_insert(session, MasterSeed)
                .values(
                    name=MASTER_SEED_NAME,
                    mnemonic_encrypted=self._vault.encrypt(mnemonic),
                    created_at=utcnow(),
                )
                .on_conflict_do_nothing(index_elements=["name"])
            )
            stored = await _stored_mnemonic(session)
            assert stored is not None
        self.use_mnemonic(self._vault.decrypt(stored))

    def use_mnemonic(self, mnemonic: str) -> None:
        self._seed = Bip39SeedGenerator(mnemonic).Generate()
        self._accounts.clear()
        self._derivers.clear()

    def account(self, network: str) -> Bip44Base:
        """The network's account node, with its private key."""
        if self._seed is None:
            raise RuntimeError("the master seed is not loaded")
        node = self._accounts.get(network)
        if node is None:
            path = key_path(network)
            node = path.standard.FromSeed(self._seed, path.coin).Purpose().Coin()
            node = node.Account(path.account)
            self._accounts[network] = node
        return node

    def xpub(self, network: str) -> str:
        """The account-level extended public key: every deposit address of the network
        derives from it, so it is what a watch-only wallet imports."""
        return self.account(network).PublicKey().ToExtended()

    def hot_wallet(self, network: str) -> Bip44Base:
        """The key payouts are signed with: m/…/1/0, the first address of the account's
        internal chain. Deposit addresses use the external chain only, so no invoice can
        ever be given the hot wallet's address."""
        return self.account(network).Change(Bip44Changes.CHAIN_INT).AddressIndex(0)

    def deriver(self, network: str) -> XpubDeriver:
        deriver = self._derivers.get(network)
        if deriver is None:
            deriver = self._derivers[network] = XpubDeriver(
                self.account(network), self.encoders.get(network)
            )
        return deriver


async def _stored_mnemonic(session: AsyncSession) -> str | None:
    return await session.scalar(
        select(MasterSeed.mnemonic_encrypted).where(MasterSeed.name == MASTER_SEED_NAME)
    )
