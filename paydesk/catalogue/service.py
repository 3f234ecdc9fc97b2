"""Loading and querying the catalogue.

Only enabled networks are visible: a network without an address allocator cannot take a
payment, so to a merchant it does not exist.
"""

from __future__ import annotations

import re
import tomllib
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

from paydesk.catalogue.models import Currency, Network, Service


class CatalogueError(ValueError):
    pass


class OutOfLimits(Exception):
    """An amount below or above what a coin's services accept."""

    def __init__(self, limit: Decimal, currency: str, *, below: bool) -> None:
        super().__init__(f"{'below' if below else 'above'} {limit} {currency}")
        self.limit = limit
        self.currency = currency
        self.below = below


class Catalogue:
    def __init__(
        self,
        currencies: dict[str, Currency],
        networks: dict[str, Network],
        services: dict[tuple[str, str], Service],
    ) -> None:
        self._currencies = currencies
        self._networks = networks
        self._services = services
        self._by_currency: dict[str, list[Service]] = {}
        for service in services.values():
            self._by_currency.setdefault(service.currency, []).append(service)

    # -- currencies
    def currency(self, code: str) -> Currency | None:
        """A fiat currency, or a crypto currency some enabled network carries."""
        currency = self._currencies.get(code.upper())
        if currency is None or (not currency.is_fiat and currency.code not in self._by_currency):
            return None
        return currency

    @property
    def codes(self) -> list[str]:
        """Every currency an invoice can be in: fiat, and crypto some enabled network carries."""
        return [code for code in self._currencies if self.currency(code) is not None]

    @property
    def all_codes(self) -> set[str]:
        """Every currency the catalogue describes, served or not (rates cover them all)."""
        return set(self._currencies)

    def is_crypto(self, code: str) -> bool:
        currency = self.currency(code)
        return currency is not None and not currency.is_fiat

    def precision(self, code: str) -> int:
        currency = self._currencies.get(code.upper())
        return currency.precision if currency else 8

    # -- networks
    def network(self, code: str) -> Network | None:
        return self._networks.get(code.lower())

    @property
    def networks(self) -> list[Network]:
        return list(self._networks.values())

    # -- services
    def service(self, currency: str, network: str) -> Service | None:
        return self._services.get((network.lower(), currency.upper()))

    def services_for(self, currency: str) -> list[Service]:
        return list(self._by_currency.get(currency.upper(), ()))

    @property
    def services(self) -> list[Service]:
        return list(self._services.values())

    def check_limits(
        self,
        amount: Decimal,
        currency: str,
        service: Service | None = None,
        error: type[OutOfLimits] = OutOfLimits,
    ) -> None:
        """Against one service, or, when the network is not chosen, against the widest
        range any network of the coin accepts; raises `error`."""
        services = [service] if service else self.services_for(currency)
        minimum = min(s.min_amount for s in services)
        maximum = max(s.max_amount for s in services)
        if amount < minimum:
            raise error(minimum, currency, below=True)
        if amount > maximum:
            raise error(maximum, currency, below=False)


def load_catalogue(enabled_networks: list[str], override_file: Path | None = None) -> Catalogue:
    data = tomllib.loads(
        resources.files("paydesk.catalogue").joinpath("catalogue.toml").read_text("utf-8"),
        parse_float=Decimal,
    )
    if override_file is not None:
        with override_file.open("rb") as handle:
            _merge(data, tomllib.load(handle, parse_float=Decimal))
    return build_catalogue(data, enabled_networks)


def build_catalogue(data: dict[str, Any], enabled_networks: list[str]) -> Catalogue:
    currencies: dict[str, Currency] = {}
    for section, is_fiat in (("fiat", True), ("crypto", False)):
        for code, entry in data.get(section, {}).items():
            currencies[code.upper()] = Currency(
                code=code.upper(),
                name=entry["name"],
                precision=int(entry["precision"]),
                is_fiat=is_fiat,
            )
    all_networks = {
        code.lower(): Network(
            code=code.lower(),
            name=entry["name"],
            native=entry["native"].upper(),
            family=entry["family"],
            confirmations=int(entry["confirmations"]),
            chain_id=int(entry["chain_id"]) if "chain_id" in entry else None,
            explorer_tx=_explorer(code, entry, "explorer_tx", "{txid}"),
            explorer_address=_explorer(code, entry, "explorer_address", "{address}"),
            node_chain=entry.get("node_chain"),
            bech32_hrp=entry.get("bech32_hrp"),
            p2pkh_version=_byte(code, entry, "p2pkh_version"),
            p2sh_version=_byte(code, entry, "p2sh_version"),
            genesis_id=entry.get("genesis_id"),
            key_path=_key_path(code, entry),
            cashaddr_prefix=_cashaddr_prefix(code, entry),
        )
        for code, entry in data.get("networks", {}).items()
    }
    unknown = [code for code in enabled_networks if code not in all_networks]
    if unknown:
        raise CatalogueError(f"enabled networks not in the catalogue: {', '.join(unknown)}")
    networks = {code: all_networks[code] for code in enabled_networks}
    services: dict[tuple[str, str], Service] = {}
    for entry in data.get("services", []):
        network, currency = entry["network"].lower(), entry["currency"].upper()
        if network not in all_networks:
            raise CatalogueError(f"service {currency}/{network}: unknown network")
        if currency not in currencies or currencies[currency].is_fiat:
            raise CatalogueError(f"service {currency}/{network}: unknown crypto currency")
        if network not in networks:
            continue
        service = Service(
            network=network,
            currency=currency,
            decimals=int(entry["decimals"]),
            min_amount=Decimal(str(entry["min_amount"])),
            max_amount=Decimal(str(entry["max_amount"])),
            percent=Decimal(str(entry.get("percent", "0"))),
            fee_amount=Decimal(str(entry.get("fee_amount", "0"))),
            contract=entry.get("contract"),
            available=bool(entry.get("available", True)),
            payout_min_amount=Decimal(str(entry.get("payout_min_amount", entry["min_amount"]))),
            payout_max_amount=Decimal(str(entry.get("payout_max_amount", entry["max_amount"]))),
            payout_percent=Decimal(str(entry.get("payout_percent", "0"))),
            payout_fee_amount=Decimal(str(entry.get("payout_fee_amount", "0"))),
        )
        if service.min_amount > service.max_amount or service.min_amount < 0:
            raise CatalogueError(f"service {currency}/{network}: bad limits")
        if not 0 <= service.payout_min_amount <= service.payout_max_amount:
            raise CatalogueError(f"service {currency}/{network}: bad payout limits")
        if service.payout_fee_amount < 0 or not 0 <= service.payout_percent < 100:
            raise CatalogueError(f"service {currency}/{network}: bad payout fee")
        services[service.key] = service
    return Catalogue(currencies, networks, services)


def _explorer(code: str, entry: dict[str, Any], key: str, placeholder: str) -> str | None:
    """An explorer URL template, checked: it becomes a link on the merchant's pages, so
    it must be a web address and must name the value it links to. An empty string (an
    operator override) turns the link off."""
    template = entry.get(key)
    if not template:
        return None
    if not isinstance(template, str) or not template.startswith(("https://", "http://")):
        raise CatalogueError(f"network {code}: {key} must be an http(s) URL")
    if placeholder not in template:
        raise CatalogueError(f"network {code}: {key} has no {placeholder}")
    return template


_KEY_PATH = re.compile(r"m/(\d{1,10})'/(\d{1,10})'/(\d{1,10})'")
#: Purposes each family derives with: BIP44, and BIP84 (native segwit) for the Bitcoin family.
_KEY_PURPOSES = {"utxo": (44, 84), "evm": (44,), "tron": (44,)}


def _key_path(code: str, entry: dict[str, Any]) -> tuple[int, int, int] | None:
    """An account path, m/purpose'/coin'/account' (hardened levels only: anyone holding
    one child private key and the xpub could otherwise compute the account's key)."""
    text = entry.get("key_path")
    if text is None:
        return None
    match = _KEY_PATH.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise CatalogueError(f"network {code}: key_path must read m/purpose'/coin'/account'")
    purpose, coin_type, account = (int(group) for group in match.groups())
    if max(purpose, coin_type, account) >= 2**31:
        raise CatalogueError(f"network {code}: key_path levels are below 2^31")
    family = entry["family"]
    if purpose not in _KEY_PURPOSES.get(family, ()):
        allowed = " or ".join(str(p) for p in _KEY_PURPOSES.get(family, ())) or "none"
        raise CatalogueError(f"network {code}: key_path purpose {purpose}' (use {allowed})")
    if purpose == 84 and not entry.get("bech32_hrp"):
        raise CatalogueError(f"network {code}: purpose 84' (segwit) needs a bech32_hrp")
    return purpose, coin_type, account


def _cashaddr_prefix(code: str, entry: dict[str, Any]) -> str | None:
    prefix = entry.get("cashaddr_prefix")
    if prefix is None:
        return None
    if not isinstance(prefix, str) or not re.fullmatch(r"[a-z]{1,20}", prefix):
        raise CatalogueError(f"network {code}: cashaddr_prefix is lower-case letters")
    if entry.get("bech32_hrp") or entry.get("p2pkh_version") is None:
        raise CatalogueError(f"network {code}: CashAddr has no segwit and needs p2pkh_version")
    return prefix


def _byte(code: str, entry: dict[str, Any], key: str) -> int | None:
    value = entry.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or not 0 <= value <= 255:
        raise CatalogueError(f"network {code}: {key} is a version byte (0 to 255)")
    return value


def _merge(base: dict[str, Any], override: dict[str, Any]) -> None:
    """Override entries by key; services match on (network, currency)."""
    for section in ("fiat", "crypto", "networks"):
        for code, entry in override.get(section, {}).items():
            merged = dict(base.setdefault(section, {}).get(code, {}))
            merged.update(entry)
            base[section][code] = merged
    index = {
        (s["network"].lower(), s["currency"].upper()): s for s in base.setdefault("services", [])
    }
    for entry in override.get("services", []):
        key = (entry["network"].lower(), entry["currency"].upper())
        if key in index:
            index[key].update(entry)
        else:
            base["services"].append(dict(entry))
