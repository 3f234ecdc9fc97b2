"""The built-in `devnet`: a chain Paydesk runs itself, for demos and test mode.

Its addresses are bech32 strings with the human-readable part `pdev`, so they can never be
mistaken for (or paid on) a real chain.
"""

from __future__ import annotations

import hashlib

import bech32

DEVNET_HRP = "pdev"
#: Devnet coins carry no value, so its addresses need no secret: only the index makes them
#: unique, and the index is unique per installation.
DEVNET_SEED = b"paydesk devnet v1"


class DevnetAddresses:
    def __init__(self, seed: bytes) -> None:
        self._seed = seed

    def derive(self, index: int) -> str:
        digest = hashlib.blake2b(
            index.to_bytes(8, "big"), key=self._seed[:64], digest_size=20
        ).digest()
        words = bech32.convertbits(digest, 8, 5)
        assert words is not None
        return bech32.bech32_encode(DEVNET_HRP, [0, *words])

    @staticmethod
    def is_valid(address: str) -> bool:
        hrp, data = bech32.bech32_decode(address)
        return hrp == DEVNET_HRP and data is not None and len(data) == 33
