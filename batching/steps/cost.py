"""What a run cost, at batch prices: the standard price table with the batch discount applied."""

from __future__ import annotations

from typing import Any

from batching.settings import Settings

PER_TOKENS = 1_000_000


def price_for(
    prices: dict[str, dict[str, float]], model: str | None
) -> tuple[str, dict[str, float]] | None:
    """The price entry for a model name such as `gpt-4o-2024-08-06`: the longest matching prefix."""
    if not model:
        return None
    matches = [name for name in prices if model == name or model.startswith(f"{name}-")]
    if not matches:
        return None
    best = max(matches, key=len)
    return best, prices[best]


def estimate_cost(settings: Settings, model: str | None, usage: dict[str, int]) -> dict[str, Any]:
    """USD for the tokens used; `None` amounts when the model has no price (set MODEL_PRICES)."""
    found = price_for(settings.model_prices, model)
    if found is None:
        return {
            "model": model,
            "currency": "USD",
            "total": None,
            "note": "no price for this model: add it to MODEL_PRICES",
        }
    name, price = found
    discount = settings.batch_discount
    prompt = usage.get("prompt", 0) * price["input"] * discount / PER_TOKENS
    completion = usage.get("completion", 0) * price["output"] * discount / PER_TOKENS
    return {
        "model": model,
        "price_model": name,
        "currency": "USD",
        "batch_discount": discount,
        "prompt": round(prompt, 6),
        "completion": round(completion, 6),
        "total": round(prompt + completion, 6),
    }
