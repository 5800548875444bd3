"""Synthesized answers: `chat.completion` and Responses API objects with realistic `usage`.

With a `json_schema` response format the content is JSON that conforms to the schema (see
schema.py); with `json_object` it is a small JSON object; otherwise a short deterministic sentence.
"""

from __future__ import annotations

from typing import Any

import orjson

from emulator import tokens
from emulator.schema import instance


def _last_user_text(body: dict[str, Any]) -> str:
    items = body.get("messages", body.get("input"))
    if isinstance(items, str):
        return items
    if isinstance(items, list):
        for item in reversed(items):
            if isinstance(item, dict) and item.get("role", "user") == "user":
                return tokens.prompt_text({"messages": [item]})
    return ""


def _answer_format(body: dict[str, Any], responses_api: bool) -> dict[str, Any]:
    """Chat has it in `response_format` (schema under `json_schema`); Responses in `text.format`."""
    if responses_api:
        text = body.get("text")
        fmt = text.get("format") if isinstance(text, dict) else None
        return fmt if isinstance(fmt, dict) else {"type": "text"}
    fmt = body.get("response_format")
    if not isinstance(fmt, dict):
        return {"type": "text"}
    if fmt.get("type") == "json_schema" and isinstance(fmt.get("json_schema"), dict):
        return {"type": "json_schema", **fmt["json_schema"]}
    return fmt


def answer_text(body: dict[str, Any], responses_api: bool) -> str:
    question = " ".join(_last_user_text(body).split())
    sentence = f"Emulated answer to: {question[:80]}" if question else "Emulated answer."
    fmt = _answer_format(body, responses_api)
    if fmt.get("type") == "json_schema":
        return orjson.dumps(instance(fmt.get("schema", {}))).decode()
    if fmt.get("type") == "json_object":
        return orjson.dumps({"answer": sentence}).decode()
    return sentence


def chat_completion(body: dict[str, Any], model: str, ident: str, now: float) -> dict[str, Any]:
    content = answer_text(body, responses_api=False)
    prompt, completion = tokens.prompt_tokens(body), max(1, tokens.count(content))
    return {
        "id": f"chatcmpl-{ident}",
        "object": "chat.completion",
        "created": int(now),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": content,
                    "refusal": None,
                    "annotations": [],
                },
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0},
        },
        "system_fingerprint": "fp_emulator",
    }


def response(body: dict[str, Any], model: str, ident: str, now: float) -> dict[str, Any]:
    text = answer_text(body, responses_api=True)
    prompt, completion = tokens.prompt_tokens(body), max(1, tokens.count(text))
    return {
        "id": f"resp_{ident}",
        "object": "response",
        "created_at": int(now),
        "status": "completed",
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": model,
        "output": [
            {
                "id": f"msg_{ident}",
                "type": "message",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": text, "annotations": []}],
            }
        ],
        "parallel_tool_calls": True,
        "temperature": body.get("temperature", 1.0),
        "text": body.get("text", {"format": {"type": "text"}}),
        "tool_choice": "auto",
        "tools": [],
        "top_p": body.get("top_p", 1.0),
        "usage": {
            "input_tokens": prompt,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": completion,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": prompt + completion,
        },
    }


def error_body(status: int, message: str) -> dict[str, Any]:
    """The body of a failed request, as the service writes it into the error file."""
    error_type, code = {
        400: ("invalid_request_error", "invalid_request"),
        408: ("timeout", "timeout"),
        429: ("rate_limit_error", "rate_limit_exceeded"),
    }.get(status, ("server_error" if status >= 500 else "invalid_request_error", str(status)))
    return {"error": {"message": message, "type": error_type, "param": None, "code": code}}
