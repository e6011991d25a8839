"""Record ids: UUIDs of version 7 (RFC 9562), whose first 48 bits are the time in milliseconds.

Ids made close in time sort close together, so the database adds each new id at the end of the
indexes keyed by it. A random (version 4) id lands on a random page of each such index instead,
and a busy server then rewrites most of those pages at every commit: with live traffic, version 7
ids cut what SQLite writes per generation about threefold. (Ids a client makes itself are still
taken, whatever their version.)

Ids are unique, not secret (a feedback key is signed separately): the 74 random bits come from a
generator seeded once per process by ``os.urandom`` and seeded again in a forked child.
``os.urandom`` on every id would be a system call that releases the GIL, and on a busy server the
event loop then waits for another thread to hand it back.
"""

from __future__ import annotations

import os
import random
import time
import uuid

__all__ = ["new_id", "new_uuid"]

_VERSION_7 = (0x7 << 76) | (0b10 << 62)
_RANDOM_A = 12  # bits between the time and the variant
_RANDOM_B = 62  # bits after the variant

_rng = random.Random(os.urandom(32))
os.register_at_fork(after_in_child=lambda: _rng.seed(os.urandom(32)))


def _int() -> int:
    ms = time.time_ns() // 1_000_000
    bits = _rng.getrandbits(_RANDOM_A + _RANDOM_B)
    return (ms << 80) | _VERSION_7 | ((bits >> _RANDOM_B) << 64) | (bits & ((1 << _RANDOM_B) - 1))


def new_id() -> tuple[str, bytes]:
    """A new id: its text (lower-case, hyphenated) and its 16 bytes."""
    n = _int()
    h = f"{n:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}", n.to_bytes(16, "big")


def new_uuid() -> uuid.UUID:
    """A new id as a :class:`uuid.UUID`."""
    return uuid.UUID(int=_int())
