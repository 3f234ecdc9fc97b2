"""Which adapter reads which network: the catalogue says what a network is (family, chain
id, coins and token contracts, confirmations), the settings say where its node is."""

from __future__ import annotations

from typing import Any

from paydesk.catalogue.models import Network
from paydesk.catalogue.service import Catalogue
from paydesk.chains.adapter import ChainAdapter, PayoutSender
from paydesk.chains.devnet import DevnetAdapter, DevnetPayoutSender
from paydesk.chains.keys import KeyRing
from paydesk.config import Settings
from paydesk.db import Database

#: Network families Paydesk has an adapter for.
WATCHED_FAMILIES = frozenset({"devnet", "evm", "utxo", "tron"})


class NetworkNotConfigured(ValueError):
    pass


def check_watchable(settings: Settings, catalogue: Catalogue) -> None:
    """Refuse to enable a network nobody could watch: its invoices would never be paid."""
    for code in settings.networks:
        network = catalogue.network(code)
        if network is None:
            continue
        if network.family not in WATCHED_FAMILIES:
            raise NetworkNotConfigured(
                f"network {code} ({network.family}) has no adapter in this Paydesk yet"
            )
        if network.family == "utxo" and network.p2pkh_version is None:
            raise NetworkNotConfigured(
                f"network {code}: its address format is not in the catalogue"
            )
        if network.family != "devnet" and code not in settings.chain_nodes:
            raise NetworkNotConfigured(
                f"network {code} is enabled but has no node: set PAYDESK_CHAIN_NODES, "
                f'e.g. {{"{code}": "http://127.0.0.1:8545"}}'
            )


def build_adapter(
    network: Network, catalogue: Catalogue, settings: Settings, db: Database
) -> ChainAdapter:
    if network.family == "devnet":
        return DevnetAdapter(db)
    if network.family == "evm":
        from paydesk.chains.evm import EvmAdapter

        services = [s for s in catalogue.services if s.network == network.code]
        return EvmAdapter.from_catalogue(network, services, settings.chain_nodes[network.code])
    if network.family == "utxo":
        from paydesk.chains.electrum_client import is_electrum_url
        from paydesk.chains.utxo import UtxoAdapter

        services = [s for s in catalogue.services if s.network == network.code]
        url = settings.chain_nodes[network.code]
        if is_electrum_url(url):  # tcp:// or ssl://: an Electrum server, not the node
            from paydesk.chains.electrum import ElectrumUtxoAdapter, database_watch_list

            watch_list = database_watch_list(db, network.code)
            return ElectrumUtxoAdapter.from_catalogue(network, services, url, watch_list)
        return UtxoAdapter.from_catalogue(network, services, url)
    if network.family == "tron":
        from paydesk.chains.tron import TronAdapter

        services = [s for s in catalogue.services if s.network == network.code]
        return TronAdapter.from_catalogue(
            network,
            services,
            settings.chain_nodes[network.code],
            **_tron_options(network, settings),
        )
    raise NetworkNotConfigured(f"no adapter for {network.code} ({network.family})")


def build_sender(
    network: Network, catalogue: Catalogue, settings: Settings, db: Database, keys: KeyRing
) -> PayoutSender:
    """The network's hot wallet (the key ring must be loaded)."""
    if network.family == "devnet":
        return DevnetPayoutSender(db, catalogue)
    if network.family == "evm":
        from paydesk.chains.evm_sender import EvmPayoutSender

        services = [s for s in catalogue.services if s.network == network.code]
        key = keys.hot_wallet(network.code).PrivateKey().Raw().ToBytes()
        return EvmPayoutSender.from_catalogue(
            network, services, settings.chain_nodes[network.code], key
        )
    if network.family == "utxo":
        from paydesk.chains.electrum_client import is_electrum_url
        from paydesk.chains.utxo_sender import UtxoPayoutSender

        if is_electrum_url(settings.chain_nodes.get(network.code, "")):
            raise NetworkNotConfigured(
                f"no payouts on {network.code}: they need the node's JSON-RPC, and its "
                "PAYDESK_CHAIN_NODES entry is an Electrum server"
            )
        services = [s for s in catalogue.services if s.network == network.code]
        return UtxoPayoutSender.from_catalogue(
            network, services, settings.chain_nodes[network.code], keys.account(network.code)
        )
    if network.family == "tron":
        from paydesk.chains.tron_sender import TronPayoutSender

        services = [s for s in catalogue.services if s.network == network.code]
        key = keys.hot_wallet(network.code).PrivateKey().Raw().ToBytes()
        return TronPayoutSender.from_catalogue(
            network, services, settings.chain_nodes[network.code], key,
            **_tron_options(network, settings),
        )  # fmt: skip
    raise NetworkNotConfigured(f"no payouts on {network.code} ({network.family})")


def _tron_options(network: Network, settings: Settings) -> dict[str, Any]:
    key = settings.chain_api_keys.get(network.code)
    return {
        "genesis_id": network.genesis_id,
        "api_key": key.get_secret_value() if key is not None else None,
        "solidity_url": settings.chain_solidity_nodes.get(network.code),
    }


def normalize_address(network: Network, address: str) -> str | None:
    """The canonical spelling of a valid address of `network`, or None; no node needed."""
    if network.family == "devnet":
        from paydesk.chains.devnet import DevnetAddresses

        return address if DevnetAddresses.is_valid(address) else None
    if network.family == "evm":
        from paydesk.chains.evm import normalize_evm_address

        return normalize_evm_address(address)
    if network.family == "utxo" and network.p2pkh_version is not None:
        from paydesk.chains.utxo_addresses import address_format_of

        return address_format_of(network).normalize(address)
    if network.family == "tron":
        from paydesk.chains.tron import normalize_tron_address

        return normalize_tron_address(address)
    return None
