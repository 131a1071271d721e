"""Sets of addresses in little memory: 8 bytes each, for lists of millions of subscribers.

A Python `set` of ints costs about 78 bytes an address; this open-addressing table of 64-bit
BLAKE2b digests costs 8 to 16. Two different addresses sharing a digest is a 1 in 2^64 event
per pair (about 1 in 36 billion for a million subscribers).
"""

from __future__ import annotations

import functools
import hashlib
from array import array


@functools.lru_cache(maxsize=64)  # the list pass and the send's filter ask for each address in turn
def digest(email: str) -> int:
    """The 64-bit digest of an address; addresses compare case-insensitively."""
    value = int.from_bytes(hashlib.blake2b(email.lower().encode(), digest_size=8).digest())
    return value or 1  # 0 marks an empty slot


class DigestSet:
    def __init__(self) -> None:
        self._table = array("Q", bytes(8 * 1024))
        self._mask = 1023
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def __contains__(self, value: int) -> bool:
        return self._table[self._slot(value)] == value

    def add(self, value: int) -> bool:
        """Add `value`; False if it was already there."""
        i = self._slot(value)
        if self._table[i] == value:
            return False
        self._table[i] = value
        self._count += 1
        if self._count * 2 > self._mask:
            self._grow()
        return True

    def _slot(self, value: int) -> int:
        """Where `value` is, or the empty slot where it would go (linear probing)."""
        table, mask = self._table, self._mask
        i = value & mask
        while table[i] != value and table[i] != 0:
            i = (i + 1) & mask
        return i

    def _grow(self) -> None:
        old = self._table
        self._table = array("Q", bytes(8 * 2 * len(old)))
        self._mask = 2 * len(old) - 1
        self._count = 0
        for value in old:
            if value:
                self.add(value)
