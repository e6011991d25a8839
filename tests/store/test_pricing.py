"""Pricing from genai-prices: the rates kept per model give the library's own figures, and the
models kept are bounded however many names clients make up."""

from __future__ import annotations

import pytest
from genai_prices import Usage, calc_price

from sightline.store.generations import pricing
from sightline.store.generations.pricing import MODELS_CACHED, price


@pytest.mark.parametrize(
    ("model", "provider", "prompt", "completion", "cached"),
    [
        ("gpt-4o", "openai", 1000, 100, None),
        ("gpt-4o-mini", None, 12, 345, 0),
        ("gpt-4o", "openai", 2000, 10, 1500),
        ("claude-3-5-sonnet-latest", "anthropic", 50_000, 2000, None),
        ("gemini-1.5-pro", "google", 300_000, 100, None),  # past its tier: dearer rates for every token
        ("gpt-4o", "a-proxy-of-ours", 1000, 100, None),  # an unknown provider: the model alone
    ],
)
def test_a_price_is_what_genai_prices_computes(
    model: str, provider: str | None, prompt: int, completion: int, cached: int | None
) -> None:
    usage = Usage(input_tokens=prompt, output_tokens=completion, cache_read_tokens=cached or None)
    try:
        expected = float(calc_price(usage, model_ref=model, provider_id=provider).total_price)
    except LookupError:
        expected = float(calc_price(usage, model_ref=model).total_price)
    assert price(model, provider, prompt, completion, cached) == pytest.approx(expected, rel=1e-9)


def test_an_unknown_model_is_unpriced() -> None:
    assert price("no-such-model-anywhere", None, 10, 10) is None


def test_a_flood_of_made_up_model_names_does_not_grow_the_cache() -> None:
    pricing._lookup.cache_clear()
    for i in range(MODELS_CACHED + 50):
        assert price(f"made-up-model-{i}", "openai", 10, 10) is None
    full = pricing._lookup.cache_info().currsize
    assert full <= MODELS_CACHED
    for i in range(200):  # another wave of new names: still no bigger
        price(f"another-made-up-model-{i}", None, 10, 10)
    assert pricing._lookup.cache_info().currsize <= MODELS_CACHED
    # and a real model is still priced (looked up again if it was evicted)
    assert price("gpt-4o", "openai", 1000, 0) == pytest.approx(1000 * 2.5e-6)
