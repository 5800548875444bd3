"""Shape checks of a request `body`, per endpoint, collecting the prompt text on the way.

This runs for every line of files with hundreds of thousands of lines, so one walk over the
messages both checks them and gathers what the token estimate needs, and error paths (the
position of a bad message, say) are worked out only when there is an error.
"""

from __future__ import annotations

import functools
import operator

import orjson

from batching.tokens.estimate import DEFAULT_COMPLETION_BUDGET, Prompt, prompt_overhead

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: batchctl start-up
if TYPE_CHECKING:
    from typing import Any

CHAT_ROLES = frozenset({"system", "user", "assistant", "developer", "tool"})
PLAIN_ROLES = ("user", "system", "assistant", "developer")  # a tuple: `in` needs no hashing
PLAIN_ROLE_SET = frozenset(PLAIN_ROLES)
RESPONSES_ROLES = frozenset({"system", "user", "assistant", "developer"})
CHAT_TEXT_PARTS = frozenset({"text", "refusal"})
CHAT_OTHER_PARTS = frozenset({"input_audio", "file"})
RESPONSES_TEXT_PARTS = frozenset({"input_text", "output_text", "refusal"})
RESPONSES_OTHER_PARTS = frozenset({"input_file", "input_audio"})
FORMAT_TYPES = frozenset({"text", "json_object", "json_schema"})
_ROLE = operator.itemgetter("role")
_CONTENT = operator.itemgetter("content")
_STR = frozenset({str})

Columns = tuple[str, ...] | None  # a json_schema format's top-level properties, in order


class RequestError(ValueError):
    """A request breaks a rule; `code` is the problem code, the message says how to fix it."""

    def __init__(
        self, message: str, code: str = "invalid_request", custom_id: str | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.custom_id = custom_id


def check_chat(body: dict[str, Any]) -> tuple[Prompt, Columns]:
    """A /chat/completions body: non-empty `messages` of {role, content}."""
    messages = body.get("messages")
    if type(messages) is not list or not messages:
        raise RequestError(
            'body.messages must be a non-empty list like [{"role": "user", "content": "..."}]'
        )
    images = 0
    pieces = _plain_contents(messages)
    if pieces is None:  # some message has parts, tool calls, or is wrong: one at a time
        pieces = []
        for i, message in enumerate(messages):
            # the common message first: text content and a role that needs nothing else
            if type(message) is dict and message.get("role") in PLAIN_ROLES:
                content = message.get("content")
                if type(content) is str:
                    pieces.append(content)
                    continue
            found = _chat_message(message, pieces)
            if isinstance(found, str):
                raise RequestError(f"body.messages[{i}]{found}")
            images += found
    columns = None
    response_format = body.get("response_format")
    if response_format is not None:
        columns = _format(response_format, "body.response_format", pieces)
    budget = _budget(body, "max_completion_tokens", "max_tokens")
    return _prompt(body, pieces, len(messages), images, budget), columns


def _plain_contents(messages: list[Any]) -> list[str] | None:
    """The contents when every message is {role: user/system/assistant/developer, content:
    "text"} (most files), else None. Comprehensions instead of a loop: conversations of many
    short messages made the per-message loop the largest cost of validating them."""
    try:  # map(itemgetter) rather than comprehensions: no bytecode per message
        roles = set(map(_ROLE, messages))
        contents = list(map(_CONTENT, messages))
    except (TypeError, KeyError):  # not an object, no role or content, an unhashable role
        return None
    if roles <= PLAIN_ROLE_SET and set(map(type, contents)) == _STR:
        return contents
    return None


def check_responses(body: dict[str, Any]) -> tuple[Prompt, Columns]:
    """A /responses body: `input` as a string or a non-empty list of items."""
    items = body.get("input")
    pieces: list[str] = []
    images = 0
    if type(items) is str:
        pieces.append(items)
        count = 1
    elif type(items) is list and items:
        count = len(items)
        for i, item in enumerate(items):
            found = _input_item(item, pieces)
            if isinstance(found, str):
                raise RequestError(f"body.input[{i}]{found}")
            images += found
    else:
        raise RequestError("body.input must be a string or a non-empty list of input items")
    instructions = body.get("instructions")
    if instructions is not None:
        if type(instructions) is not str:
            raise RequestError("body.instructions must be a string")
        pieces.append(instructions)
    columns = None
    text = body.get("text")
    if text is not None:
        if type(text) is not dict:
            raise RequestError('body.text must be an object like {"format": {...}}')
        if text.get("format") is not None:
            columns = _format(text["format"], "body.text.format", pieces)
    budget = _budget(body, "max_output_tokens")
    return _prompt(body, pieces, count, images, budget), columns


def _chat_message(message: Any, pieces: list[str]) -> int | str:
    """One chat message: its number of images, or what is wrong with it."""
    if type(message) is not dict:
        return " must be an object with role and content"
    role = message.get("role")
    if type(role) is not str or role not in CHAT_ROLES:
        return f".role must be one of {', '.join(sorted(CHAT_ROLES))}, not {role!r}"
    if role == "tool" and type(message.get("tool_call_id")) is not str:
        return " (role tool) needs a tool_call_id string"
    content = message.get("content")
    if content is None and role == "assistant" and "tool_calls" in message:
        return 0
    return _content(content, pieces, chat=True)


def _input_item(item: Any, pieces: list[str]) -> int | str:
    """One /responses input item: its number of images, or what is wrong with it."""
    if type(item) is not dict:
        return " must be an object"
    role = item.get("role")
    if role is None:
        kind = item.get("type")
        return 0 if type(kind) is str else " needs a role (a message) or a type (another item)"
    if type(role) is not str or role not in RESPONSES_ROLES:
        return f".role must be one of {', '.join(sorted(RESPONSES_ROLES))}, not {role!r}"
    return _content(item.get("content"), pieces, chat=False)


def _content(content: Any, pieces: list[str], *, chat: bool) -> int | str:
    """A message's content, a string or a list of parts: its number of images, or the error."""
    if type(content) is str:
        pieces.append(content)
        return 0
    if type(content) is list:
        images = _parts(content, pieces, chat=chat)
        return f".content: {images}" if isinstance(images, str) else images
    return ".content must be a string or a list of content parts"


def _parts(parts: list[Any], pieces: list[str], *, chat: bool) -> int | str:
    """Content parts: text goes to `pieces`; the number of images, or what is wrong."""
    if not parts:
        return "an empty list: give at least one content part"
    text_types = CHAT_TEXT_PARTS if chat else RESPONSES_TEXT_PARTS
    other_types = CHAT_OTHER_PARTS if chat else RESPONSES_OTHER_PARTS
    image_type = "image_url" if chat else "input_image"
    images = 0
    for j, part in enumerate(parts):
        kind = part.get("type") if type(part) is dict else None
        if kind in text_types:
            text = part.get("refusal" if kind == "refusal" else "text")
            if type(text) is not str:
                return f"part {j} ({kind}) needs a string {kind if kind == 'refusal' else 'text'}"
            pieces.append(text)
        elif kind == image_type:
            images += 1
        elif kind not in other_types:
            known = ", ".join(sorted(text_types | other_types | {image_type}))
            return f"part {j} must be an object with a type, one of {known}"
    return images


def _dumps(value: Any, where: str) -> bytes:
    """`value` as JSON; orjson writes at most 254 levels of nesting, and reads up to 1024."""
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:
        raise RequestError(f"{where} is nested too deeply: more than 254 levels") from None


def _format(fmt: Any, where: str, pieces: list[str]) -> Columns:
    """A response format; a json_schema one must be valid and gives the table columns."""
    key = _dumps(fmt, where)
    last = _LAST_FORMAT[0]
    if key == last[0] and where == last[1]:  # the previous line's format (the usual case)
        outcome = last[2]
    else:
        outcome = _format_outcome(key, where)
        _LAST_FORMAT[0] = (key, where, outcome)  # one assignment: threads see all or nothing
    text, columns, problem = outcome
    if problem is not None:
        raise RequestError(problem[1], problem[0])
    if columns is not None:
        pieces.append(text)
    return columns


_Outcome = tuple[str, Columns, tuple[str, str] | None]  # (schema text, columns, (code, message))
# The last format seen, as (its JSON, where, outcome): files repeat one format on every line, and
# comparing its JSON with the last one's is cheaper than hashing it to look it up in the cache.
_LAST_FORMAT: list[tuple[bytes, str, _Outcome]] = [(b"", "", ("", None, None))]


@functools.lru_cache(maxsize=64)
def _format_outcome(key: bytes, where: str) -> _Outcome:
    """Checked once per distinct format (its JSON): files repeat one format on every line."""
    fmt = orjson.loads(key)
    if type(fmt) is not dict or fmt.get("type") not in FORMAT_TYPES:
        types = ", ".join(sorted(FORMAT_TYPES))
        return "", None, ("invalid_request", f"{where}.type must be one of {types}")
    if fmt["type"] != "json_schema":
        return "", None, None
    if where == "body.response_format":  # chat nests the schema; responses does not
        fmt = fmt.get("json_schema")
        where = f"{where}.json_schema"
        if type(fmt) is not dict:
            message = f"{where} must be an object {{name, schema, strict}}"
            return "", None, ("invalid_schema", message)
    from batching.validation.schema import SchemaError, check_json_schema  # when a file has one

    try:
        return key.decode(), tuple(check_json_schema(fmt, where)), None
    except SchemaError as exc:
        return "", None, ("invalid_schema", str(exc))


def _budget(body: dict[str, Any], *keys: str) -> int:
    """The first of `keys` the body sets (a positive whole number), else 0."""
    for key in keys:
        value = body.get(key)
        if value is not None:
            if type(value) is not int or value < 1:
                raise RequestError(f"body.{key} must be a positive whole number, not {value!r}")
            return value
    return 0


def _prompt(
    body: dict[str, Any], pieces: list[str], messages: int, images: int, budget: int
) -> Prompt:
    """Checks both endpoints share, then the prompt."""
    if body.get("stream"):
        raise RequestError('body.stream is not supported in batch: remove "stream": true')
    tools = body.get("tools")
    if tools is not None:
        if type(tools) is not list:
            raise RequestError("body.tools must be a list")
        pieces.append(_dumps(tools, "body.tools").decode())
    return Prompt(pieces, prompt_overhead(messages, images), budget or DEFAULT_COMPLETION_BUDGET)
