"""Prices of model calls, from the ``genai-prices`` library.

Looking a model up in genai-prices and doing its Decimal arithmetic costs hundreds of times what a
multiplication does, too much at tens of thousands of generations a second (a fast path: figure in
docs/fast-paths.md, ``bench/bench_fast_paths.py --only price``). Within one price tier a call's cost
is linear in its token counts (genai-prices uses "cliff" tiers: the input token count picks one rate
for all tokens), so the per-token rates of each (model, provider, tier) are asked of the library once
and kept as floats; every call after that is three multiplications.
"""

from __future__ import annotations

import functools
import threading
from bisect import bisect_left
from dataclasses import dataclass
from typing import Any

from genai_prices import Usage, calc_price
from genai_prices.types import TieredPrices

__all__ = ["MODELS_CACHED", "price"]

_MTOK = 1_000_000


@dataclass(frozen=True, slots=True)
class _Rates:
    input: float
    output: float
    cache_read: float | None


@dataclass(slots=True)
class _Model:
    """One (model, provider) as genai-prices knows it: its tier thresholds and the rates found so far."""

    model: str
    provider: str | None
    thresholds: list[int]  # input-token counts past which a dearer tier applies
    has_cache_price: bool
    tiers: dict[int, _Rates]

    def total(self, **usage: int) -> float:
        calc = calc_price(Usage(**usage), model_ref=self.model, provider_id=self.provider)
        return float(calc.total_price)

    def rates(self, tier: int) -> _Rates:
        found = self.tiers.get(tier)
        if found is None:
            # A representative input size inside this tier (cliff tiers: "more than start").
            tokens = self.thresholds[tier - 1] + 1 if tier else 1000
            base = self.total(input_tokens=tokens)
            output = (self.total(input_tokens=tokens, output_tokens=_MTOK) - base) / _MTOK
            cache = (
                self.total(input_tokens=tokens, cache_read_tokens=tokens) / tokens
                if self.has_cache_price
                else None
            )
            found = self.tiers[tier] = _Rates(base / tokens, output, cache)
        return found


# Rates are found under this lock (a model's tiers fill in as calls of each size arrive).
_lock = threading.Lock()

# Models looked up so far. The names come from clients, so the cache is bounded: a flood of made-up
# names evicts the least recently used, never grows memory. Real deployments use tens of models.
MODELS_CACHED = 1024


@functools.lru_cache(maxsize=MODELS_CACHED)
def _lookup(model: str, provider: str | None) -> _Model | None:
    """The (model, provider) as genai-prices knows it, or ``None`` when it cannot price it."""
    try:
        calc = calc_price(Usage(input_tokens=1, output_tokens=1), model_ref=model, provider_id=provider)
    except LookupError:
        if provider is None:
            return None
        # An unknown provider name ("azure-eu", "my-proxy"): the model alone may still be known.
        return _lookup(model, None)
    mp = calc.model_price
    prices: list[Any] = [getattr(mp, name, None) for name in ("input_mtok", "output_mtok", "cache_read_mtok")]
    thresholds = sorted({tier.start for p in prices if isinstance(p, TieredPrices) for tier in p.tiers})
    return _Model(model, calc.provider.id, thresholds, prices[2] is not None, {})


def price(
    model: str,
    provider: str | None,
    prompt_tokens: int,
    completion_tokens: int,
    cached_tokens: int | None = None,
) -> float | None:
    """The cost in USD of a call, or ``None`` when genai-prices does not know the model."""
    known = _lookup(model, provider)
    if known is None:
        return None
    tier = bisect_left(known.thresholds, prompt_tokens)
    rates = known.tiers.get(tier)
    if rates is None:
        with _lock:
            rates = known.rates(tier)
    cached = (cached_tokens or 0) if rates.cache_read is not None else 0
    uncached = max(prompt_tokens - cached, 0)
    return uncached * rates.input + cached * (rates.cache_read or 0.0) + completion_tokens * rates.output
