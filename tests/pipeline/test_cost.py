"""Cost at batch prices: longest matching price name, the discount, rounding to 6 places."""

from __future__ import annotations

import dataclasses

from batching.settings import Settings
from batching.steps.cost import estimate_cost, price_for

PRICES = {
    "gpt-4o": {"input": 2.5, "output": 10.0},
    "gpt-4o-mini": {"input": 0.15, "output": 0.6},
    "o3": {"input": 2.0, "output": 8.0},
}


def _settings(discount: float = 0.5) -> Settings:
    base = Settings.from_env(
        {"AZURE_OPENAI_ENDPOINT": "http://x", "BATCH_STORAGE": "UseDevelopmentStorage=true"}
    )
    return dataclasses.replace(base, model_prices=PRICES, batch_discount=discount)


def test_price_for_picks_the_longest_name_that_is_the_model_or_its_prefix() -> None:
    assert price_for(PRICES, "gpt-4o") == ("gpt-4o", PRICES["gpt-4o"])
    assert price_for(PRICES, "gpt-4o-2024-08-06") == ("gpt-4o", PRICES["gpt-4o"])
    assert price_for(PRICES, "gpt-4o-mini") == ("gpt-4o-mini", PRICES["gpt-4o-mini"])
    assert price_for(PRICES, "gpt-4o-mini-2024-07-18") == ("gpt-4o-mini", PRICES["gpt-4o-mini"])
    # A prefix counts only up to a dash: o3x is not o3, gpt-4 is not gpt-4o.
    assert price_for(PRICES, "o3x") is None
    assert price_for(PRICES, "gpt-4") is None
    assert price_for(PRICES, "") is None
    assert price_for(PRICES, None) is None


def test_estimate_cost_applies_the_discount_per_million_tokens() -> None:
    # 2,000,000 prompt tokens at $2.50/M and 500,000 completion at $10/M, at 40 % of the price.
    cost = estimate_cost(
        _settings(0.4), "gpt-4o-2024-08-06", {"prompt": 2_000_000, "completion": 500_000}
    )
    assert cost == {
        "model": "gpt-4o-2024-08-06",
        "price_model": "gpt-4o",
        "currency": "USD",
        "batch_discount": 0.4,
        "prompt": 2.0,
        "completion": 2.0,
        "total": 4.0,
    }


def test_estimate_cost_rounds_to_six_places_and_treats_missing_usage_as_zero() -> None:
    # 7 prompt tokens of gpt-4o-mini at half price: 7 * 0.15 * 0.5 / 1e6 = 5.25e-7 -> 1e-6.
    cost = estimate_cost(_settings(), "gpt-4o-mini", {"prompt": 7})
    assert cost["prompt"] == 0.000001
    assert cost["completion"] == 0
    assert cost["total"] == 0.000001
    # 3 completion tokens: 3 * 0.6 * 0.5 / 1e6 = 9e-7 -> 1e-6.
    assert estimate_cost(_settings(), "gpt-4o-mini", {"completion": 3})["total"] == 0.000001


def test_a_model_without_a_price_has_no_amounts() -> None:
    assert estimate_cost(_settings(), "unknown", {"prompt": 10}) == {
        "model": "unknown",
        "currency": "USD",
        "total": None,
        "note": "no price for this model: add it to MODEL_PRICES",
    }
    assert estimate_cost(_settings(), None, {})["total"] is None


def test_each_side_is_priced_and_rounded_on_its_own() -> None:
    big = dataclasses.replace(
        _settings(0.5), model_prices={"big": {"input": 1_000_000.0, "output": 3_000_000.0}}
    )
    # one token: $1 in, $3 out at full price; half of it at batch prices; none of a missing side
    assert estimate_cost(big, "big", {"completion": 1})["prompt"] == 0
    assert estimate_cost(big, "big", {"completion": 1})["completion"] == 1.5
    assert estimate_cost(big, "big", {"prompt": 1})["completion"] == 0
    assert estimate_cost(big, "big", {"prompt": 1})["total"] == 0.5
    # 3 completion tokens of gpt-4o-mini at half price: 9e-7 USD, 1e-6 at six places (not 9e-7)
    assert estimate_cost(_settings(), "gpt-4o-mini", {"completion": 3})["completion"] == 0.000001
