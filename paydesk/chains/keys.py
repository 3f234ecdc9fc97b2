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

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from bip_utils import (
    Bip39MnemonicGenerator,
    Bip39SeedGenerator,
    Bip39WordsNum,
    Bip44,
    Bip44Changes,
    Bip44Coins,
    Bip84,
    Bip84Coins,
)
from bip_utils.bip.bip44_base import Bip44Base
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from paydesk.catalogue.models import Network
from paydesk.chains.models import DepositAddress, MasterSeed
from paydesk.db import dialect_insert, utcnow
from paydesk.vault import Vault

MASTER_SEED_NAME = "master"


#: The BIP standards Paydesk derives with, by purpose: BIP44 (P2PKH and account-based
#: chains) and BIP84 (native segwit P2WPKH).
_STANDARDS: dict[int, type[Bip44Base]] = {44: Bip44, 84: Bip84}
#: bip-utils' coin for each (purpose, coin type) a coin may use: its registered SLIP-44
#: type, or 1, the type every testnet shares. EVM networks all use Ethereum's.
_BIP_COINS: dict[str, dict[tuple[int, int], Any]] = {
    "ETH": {(44, 60): Bip44Coins.ETHEREUM},
    "TRX": {(44, 195): Bip44Coins.TRON},
    "BTC": {(84, 0): Bip84Coins.BITCOIN, (84, 1): Bip84Coins.BITCOIN_TESTNET,
            (44, 0): Bip44Coins.BITCOIN, (44, 1): Bip44Coins.BITCOIN_TESTNET},
    "LTC": {(84, 2): Bip84Coins.LITECOIN, (84, 1): Bip84Coins.LITECOIN_TESTNET,
            (44, 2): Bip44Coins.LITECOIN, (44, 1): Bip44Coins.LITECOIN_TESTNET},
    "DOGE": {(44, 3): Bip44Coins.DOGECOIN, (44, 1): Bip44Coins.DOGECOIN_TESTNET},
    "DASH": {(44, 5): Bip44Coins.DASH, (44, 1): Bip44Coins.DASH_TESTNET},
    "BCH": {(44, 145): Bip44Coins.BITCOIN_CASH, (44, 1): Bip44Coins.BITCOIN_CASH_TESTNET},
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class KeyPath:
    """How a network's keys derive, m/purpose'/coin_type'/account', and bip-utils' coin
    for that purpose and coin type."""

    purpose: int
    coin_type: int
    account: int
    coin: Any

    @classmethod
    def of(cls, network: Network) -> KeyPath:
        """The account path the catalogue gives `network` (`key_path`), checked against
        what bip-utils can derive for its coin."""
        if network.key_path is None:
            raise NoKeyPath(f"{network.code}: its addresses do not derive from an HD key")
        purpose, coin_type, account = network.key_path
        coins = _BIP_COINS.get("ETH" if network.family == "evm" else network.native, {})
        coin = coins.get((purpose, coin_type))
        if coin is None:
            usable = ", ".join(f"m/{p}'/{c}'/…" for p, c in coins) or "none"
            raise NoKeyPath(
                f"{network.code}: key_path m/{purpose}'/{coin_type}'/{account}' is not one "
                f"Paydesk derives for {network.native} (usable: {usable})"
            )
        return cls(purpose, coin_type, account, coin)

    @property
    def standard(self) -> type[Bip44Base]:
        """The BIP the purpose names (44 or 84)."""
        return _STANDARDS[self.purpose]

    def describe(self) -> str:
        return f"m/{self.purpose}'/{self.coin_type}'/{self.account}'/0/<index>"


def key_paths(networks: Iterable[Network]) -> dict[str, KeyPath]:
    """The key path of every network that has one. Two networks on one path would share
    addresses (a payment sent on the wrong chain would land on another invoice's
    address), so that is refused."""
    paths = {n.code: KeyPath.of(n) for n in networks if n.key_path is not None}
    seen: dict[tuple[int, int, int], str] = {}
    for code, path in paths.items():
        spot = (path.purpose, path.coin_type, path.account)
        if spot in seen:
            raise NoKeyPath(
                f"{seen[spot]} and {code} share the key path {path.describe()}: "
                "give one of them another account"
            )
        seen[spot] = code
    return paths


class KeysError(LookupError):
    pass


class NoKeyPath(KeysError):
    """The network's addresses do not come from a BIP32 key."""


class BadXpub(KeysError):
    """Not an account-level extended public key of the network."""


class KeyPathChanged(KeysError):
    """The network's key path no longer derives the addresses already handed out."""


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


def watch_only_account(path: KeyPath, network: str, xpub: str) -> Bip44Base:
    """A merchant-supplied xpub, checked to be the account level of `network`'s path."""
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
    """The master seed and the account nodes derived from it (each derived once), for
    the networks whose key paths it is given."""

    def __init__(
        self,
        vault: Vault,
        paths: Mapping[str, KeyPath],
        encoders: Mapping[str, AddressEncoder] | None = None,
    ) -> None:
        self._vault = vault
        self.paths = dict(paths)
        #: Networks whose addresses are spelled by the catalogue's prefixes.
        self.encoders = dict(encoders or {})
        self._seed: bytes | None = None
        self._accounts: dict[str, Bip44Base] = {}
        self._derivers: dict[str, XpubDeriver] = {}

    @classmethod
    def for_networks(cls, vault: Vault, networks: Iterable[Network]) -> KeyRing:
        """The key ring of catalogue networks: their key paths, and the address spelling
        of the Bitcoin family's (segwit or legacy as the path's purpose says)."""
        from paydesk.chains.utxo_addresses import address_format_of

        networks = list(networks)
        paths = key_paths(networks)
        encoders = {
            n.code: address_format_of(n).from_public_key
            for n in networks
            if n.family == "utxo" and n.code in paths and n.p2pkh_version is not None
        }
        return cls(vault, paths, encoders)

    def key_path(self, network: str) -> KeyPath:
        path = self.paths.get(network)
        if path is None:
            raise NoKeyPath(f"{network}: its addresses do not derive from an HD key")
        return path

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
        try:
            await self._check_paths(session)
        except KeyPathChanged:
            self._seed = None
            raise

    async def _check_paths(self, session: AsyncSession) -> None:
        """Each network's first address handed out must still derive from its path: a
        changed `key_path` would move the hot wallet and lose the keys of every address
        given so far, so Paydesk refuses to run with it."""
        for network in self.paths:
            first = (
                await session.execute(
                    select(DepositAddress.derivation_index, DepositAddress.address)
                    .where(
                        DepositAddress.network == network,
                        DepositAddress.key_owner == "",
                    )
                    .order_by(DepositAddress.derivation_index)
                    .limit(1)
                )
            ).first()
            if first is not None and self.deriver(network).derive(first[0]) != first[1]:
                raise KeyPathChanged(
                    f"{network}: address #{first[0]} ({first[1]}) does not derive from "
                    f"{self.paths[network].describe()}; put back the key_path (or the "
                    "address format) it was handed out under"
                )

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
            path = self.key_path(network)
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
