"""A key ring over the built-in catalogue's networks, for tests that derive keys without
a database (the seed is given, nothing is stored)."""

from __future__ import annotations

from paydesk.catalogue.service import load_catalogue
from paydesk.chains.keys import KeyRing
from paydesk.vault import Vault

#: Every network of the built-in catalogue.
ALL_NETWORKS = [
    "devnet", "btc", "ltc", "bch", "doge", "dash", "eth", "bsc", "polygon", "arbitrum",
    "avalanche", "tron", "sol", "ton", "xmr",
]  # fmt: skip


def key_ring(mnemonic: str, vault: Vault | None = None) -> KeyRing:
    """The key ring of every built-in network (mainnet spellings) over `mnemonic`."""
    ring = KeyRing.for_networks(vault, load_catalogue(ALL_NETWORKS).networks)  # type: ignore[arg-type]
    ring.use_mnemonic(mnemonic)
    return ring
