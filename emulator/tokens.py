"""Token estimates without a tokenizer: about four characters per token.

The same estimate serves two purposes, so they agree with each other:
- `usage` in synthesized answers (prompt tokens from the messages, completion tokens from
  the answer);
- the enqueued-token quota: a request counts `prompt_tokens + completion budget`, where the
  budget is the request's `max_completion_tokens` / `max_tokens` / `max_output_tokens`, else
  DEFAULT_COMPLETION_BUDGET.
"""

from __future__ import annotations

import math
from typing import Any

DEFAULT_COMPLETION_BUDGET = 1_000


def count(text: str) -> int:
    return math.ceil(len(text) / 4)


def _content_text(content: Any) -> str:
    """Message content is a string or a list of parts; only text parts count."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
        )
    return ""


def prompt_text(body: dict[str, Any]) -> str:
    """The text a request sends: chat `messages`, or the Responses API `instructions` + `input`."""
    parts: list[str] = []
    if isinstance(body.get("instructions"), str):
        parts.append(body["instructions"])
    items = body.get("messages", body.get("input"))
    if isinstance(items, str):
        parts.append(items)
    elif isinstance(items, list):
        parts.extend(_content_text(m.get("content")) for m in items if isinstance(m, dict))
    return "\n".join(parts)


def prompt_tokens(body: dict[str, Any]) -> int:
    return max(1, count(prompt_text(body)))


def completion_budget(body: dict[str, Any]) -> int:
    for key in ("max_completion_tokens", "max_tokens", "max_output_tokens"):
        value = body.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return DEFAULT_COMPLETION_BUDGET


def enqueued_estimate(body: dict[str, Any]) -> int:
    return prompt_tokens(body) + completion_budget(body)
