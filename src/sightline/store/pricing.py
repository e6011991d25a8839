"""Prices of model calls, from the ``genai-prices`` library.

Looking a model up in genai-prices and doing its Decimal arithmetic costs ~50 µs a call, too much
at tens of thousands of generations a second. So each (model, provider) is looked up once; for the
usual flat per-token prices the per-token rates are kept as floats, and only models with tiered or
otherwise non-linear prices go through the library for every call.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from genai_prices import Usage, calc_price

__all__ = ["price"]

_MTOK = 1_000_000


@dataclass(frozen=True, slots=True)
class _Rates:
    input: float
    output: float
    cache_read: float | None
    model_price: Any  # genai_prices ModelPrice, for prices that are not flat


_cache: dict[tuple[str, str | None], _Rates | None] = {}
_lock = threading.Lock()


def _lookup(model: str, provider: str | None) -> _Rates | None:
    try:
        calc = calc_price(Usage(input_tokens=1, output_tokens=1), model_ref=model, provider_id=provider)
    except LookupError:
        if provider is None:
            return None
        # An unknown provider name ("azure-eu", "my-proxy"): the model alone may still be known.
        return _lookup(model, None)
    mp = calc.model_price
    flat = all(
        isinstance(getattr(mp, f), Decimal | None) for f in ("input_mtok", "output_mtok", "cache_read_mtok")
    )
    if not flat:
        return _Rates(0.0, 0.0, None, mp)
    cache_read = float(mp.cache_read_mtok) / _MTOK if mp.cache_read_mtok is not None else None
    return _Rates(float(mp.input_mtok or 0) / _MTOK, float(mp.output_mtok or 0) / _MTOK, cache_read, None)


def price(
    model: str,
    provider: str | None,
    prompt_tokens: int,
    completion_tokens: int,
    cached_tokens: int | None = None,
) -> float | None:
    """The cost in USD of a call, or ``None`` when genai-prices does not know the model."""
    key = (model, provider)
    rates = _cache.get(key, _Rates)  # sentinel: the class itself means "not looked up"
    if rates is _Rates:
        with _lock:
            rates = _cache[key] = _lookup(model, provider)
    if rates is None:
        return None
    assert isinstance(rates, _Rates)
    cached = cached_tokens or 0
    if rates.model_price is not None:
        usage = Usage(
            input_tokens=prompt_tokens, output_tokens=completion_tokens, cache_read_tokens=cached or None
        )
        return float(rates.model_price.calc_price(usage)["total_price"])
    if rates.cache_read is None:
        cached = 0
    uncached = max(prompt_tokens - cached, 0)
    return uncached * rates.input + cached * (rates.cache_read or 0.0) + completion_tokens * rates.output
