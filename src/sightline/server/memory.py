"""Giving the memory a big request freed back to the system.

CPython frees a request's objects at once, but glibc's allocator keeps the freed pages of its heap
for later: after one 11.5 MB ingest batch the server held +17 MiB (and +60 MiB after three at once)
that nothing used (``bench/bench_ingest_memory.py``). ``malloc_trim`` hands them back; it is
called after requests big enough to leave that much, off the event loop.
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable

__all__ = ["release_free_memory"]


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        trim: Callable[[int], int] = ctypes.CDLL(None).malloc_trim  # glibc only
    except (AttributeError, OSError):  # another C library (musl, macOS): nothing to do
        return None
    return trim


def release_free_memory() -> None:
    """Return the C heap's free pages to the system (glibc's ``malloc_trim``); a no-op elsewhere."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
