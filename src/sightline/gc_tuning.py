"""Garbage collection settings for Sightline's long-running processes (a server, its writer).

Both allocate thousands of short-lived objects a request (a batch of 100 generations is ~20,000
dicts, lists and strings), almost all freed by reference counting the moment they are done with.
With CPython's defaults a young collection runs every 700 allocations, and an old one now and then
walks every long-lived object (the framework's hundreds of thousands): time spent finding next to
nothing. A fast path: docs/fast-paths.md gives its figure (``bench/bench_fast_paths.py --only gc``)
and ``tests/test_fast_paths.py`` checks that garbage cycles are still freed.
"""

from __future__ import annotations

import gc

__all__ = ["for_long_running_process"]

# Allocations (less deallocations) between young collections: CPython's default is 700.
_YOUNG = 20_000


def for_long_running_process() -> None:
    """Call once the process has loaded what it keeps: what exists now is never collected again
    (``gc.freeze``), and young collections run once per ``_YOUNG`` allocations."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(_YOUNG, middle, old)
