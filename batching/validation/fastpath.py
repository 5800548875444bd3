"""A typed fast path for the common request shapes: msgspec checks them while it parses.

`validator._request` (orjson, then the checks in `bodies`) is the reference: it decides every
verdict and writes every message. This path only ever says "valid, and here is the request",
when the reference would return the same request; for anything else (a broken rule, or a
shape it does not know) it returns None and the line goes the reference's way. It may refuse
more than the reference, never accept more (tests/validation/test_fastpath.py compares the two
on generated lines). It exists because files of many short messages spent as long in the checks
as in the parse (docs/benchmarks.md).

Why a msgspec parse is as strict as orjson's here: every struct forbids unknown fields and
types the rest (free values as `Any`), so nothing is skipped unparsed and invalid UTF-8, lone
surrogates and numbers out of a double's range fail the parse as they fail orjson's. Where
they differ, msgspec is the stricter (nesting depth), or the value is checked again here:
integers past 64 bits, which orjson reads as floats (and refuses to write back).
"""

from __future__ import annotations

import operator
from typing import Any, Literal

import msgspec
import orjson
from msgspec import UNSET, Struct, UnsetType

from batching.tokens.estimate import DEFAULT_COMPLETION_BUDGET, Prompt, prompt_overhead
from batching.validation.bodies import RequestError, _format

_MAX_INT = 2**64 - 1  # orjson reads larger integers as floats: not a whole number to it
_Role = Literal["user", "system", "assistant", "developer"]  # bodies.PLAIN_ROLES


# A field kept as its raw JSON (`msgspec.Raw`), unparsed, when the line is decoded: the tools and
# response formats that files repeat on every line. `_extra` parses it with orjson, as the
# reference does, unless its bytes are the previous line's. Absent, it is this empty Raw.
_ABSENT = msgspec.Raw()


class _Strict(Struct, forbid_unknown_fields=True, gc=False):
    """Unknown fields send the line the reference's way (and are never skipped unparsed)."""


class _Text(_Strict, tag_field="type", tag="text"):
    text: str


class _Image(_Strict, tag_field="type", tag="image_url"):
    image_url: Any = UNSET


class _ChatMessage(_Strict):
    role: _Role
    content: str | list[_Text | _Image]
    name: Any = UNSET


class _TextMessage(_Strict):
    """A chat message whose content is a string: most files have no other kind."""

    role: _Role
    content: str
    name: Any = UNSET


class _InputText(_Strict, tag_field="type", tag="input_text"):
    text: str


class _OutputText(_Strict, tag_field="type", tag="output_text"):
    text: str


class _InputImage(_Strict, tag_field="type", tag="input_image"):
    image_url: Any = UNSET
    detail: Any = UNSET
    file_id: Any = UNSET


class _InputMessage(_Strict):
    role: _Role
    content: str | list[_InputText | _OutputText | _InputImage]
    type: Any = UNSET


class _Body(_Strict):
    """What both endpoints share; the reference reads `model`, `stream` and `tools`, the
    rest are the API's other request fields, passed through unread."""

    model: str
    stream: Any = UNSET
    tools: msgspec.Raw = _ABSENT
    temperature: Any = UNSET
    top_p: Any = UNSET
    seed: Any = UNSET
    user: Any = UNSET
    metadata: Any = UNSET
    store: Any = UNSET
    tool_choice: Any = UNSET
    parallel_tool_calls: Any = UNSET
    service_tier: Any = UNSET
    top_logprobs: Any = UNSET
    prompt_cache_key: Any = UNSET
    safety_identifier: Any = UNSET


class _ChatBody(_Body):
    messages: list[_ChatMessage] = []  # msgspec copies a mutable default
    response_format: msgspec.Raw = _ABSENT
    max_completion_tokens: Any = UNSET
    max_tokens: Any = UNSET
    n: Any = UNSET
    stop: Any = UNSET
    presence_penalty: Any = UNSET
    frequency_penalty: Any = UNSET
    logit_bias: Any = UNSET
    logprobs: Any = UNSET
    reasoning_effort: Any = UNSET
    verbosity: Any = UNSET
    modalities: Any = UNSET
    prediction: Any = UNSET
    audio: Any = UNSET
    web_search_options: Any = UNSET


class _TextChatBody(_ChatBody):
    messages: list[_TextMessage] = []  # type: ignore[assignment]


class _ResponsesBody(_Body):
    input: str | list[_InputMessage] | UnsetType = UNSET
    instructions: Any = UNSET
    text: msgspec.Raw = _ABSENT
    max_output_tokens: Any = UNSET
    reasoning: Any = UNSET
    truncation: Any = UNSET
    include: Any = UNSET
    max_tool_calls: Any = UNSET
    previous_response_id: Any = UNSET


class _ChatLine(_Strict):
    custom_id: str
    method: Literal["POST"]
    url: Literal["/chat/completions", "/v1/chat/completions"]
    body: _ChatBody


class _TextChatLine(_ChatLine):
    body: _TextChatBody


class _ResponsesLine(_Strict):
    custom_id: str
    method: Literal["POST"]
    url: Literal["/responses", "/v1/responses"]
    body: _ResponsesBody


_CONTENT = operator.attrgetter("content")
_STR = frozenset({str})
Parsed = tuple[str, str, str, Prompt, Any]  # custom_id, url, model, prompt, columns
_CHAT = msgspec.json.Decoder(_ChatLine)
_TEXT_CHAT = msgspec.json.Decoder(_TextChatLine)
_RESPONSES = msgspec.json.Decoder(_ResponsesLine)
_RESPONSES_URLS = ("/responses", "/v1/responses")


def decoder_for(url: str | None) -> msgspec.json.Decoder[Any]:
    """The decoder for a file whose lines use `url` (chat before the first line is known)."""
    return _RESPONSES if url in _RESPONSES_URLS else _CHAT


class FileParser:
    """The fast path for the lines of one file, in order.

    Chat lines are tried first on the shape whose every message content is a string (no
    per-message type check after the parse), until a line needs the general shape (content
    parts): from then on the file's lines go straight to the general shape, so a file of
    either kind decodes each line once.
    """

    def __init__(self) -> None:
        self._text_only = True

    def parse(self, raw: bytes, url: str | None) -> Parsed | None:
        """As `parse` with the decoder for `url`."""
        if url in _RESPONSES_URLS:
            return parse(raw, _RESPONSES)
        if self._text_only:
            found = parse(raw, _TEXT_CHAT)
            if found is not None:
                return found
            found = parse(raw, _CHAT)
            self._text_only = found is None
            return found
        return parse(raw, _CHAT)


def parse(raw: bytes, decoder: msgspec.json.Decoder[Any]) -> Parsed | None:
    """The request on a line the reference accepts as the fast path's shape, else None."""
    try:
        line = decoder.decode(raw)
    except msgspec.MsgspecError:
        return None
    custom_id = line.custom_id
    body = line.body
    if not custom_id or custom_id.isspace() or not body.model:
        return None
    try:
        prompt_and_columns = _responses(body) if type(body) is _ResponsesBody else _chat(body)
    except (RequestError, TypeError):  # a broken rule; or an int orjson cannot write
        return None
    if prompt_and_columns is None:
        return None
    prompt, columns = prompt_and_columns
    return custom_id, line.url, body.model, prompt, columns


def _chat(body: _ChatBody) -> tuple[Prompt, Any] | None:
    messages = body.messages
    if not messages:
        return None
    pieces = list(map(_CONTENT, messages))  # no bytecode per message: see bodies
    images = 0
    if type(body) is not _TextChatBody and set(map(type, pieces)) != _STR:  # content parts
        pieces, images = _chat_parts(pieces)
        if not pieces and not images:
            return None
    columns = None
    if body.response_format:
        extra = _extra(body.response_format, "response_format")
        if extra is None:
            return None
        pieces.extend(extra[0])
        columns = extra[1]
    budget = body.max_completion_tokens
    if budget is UNSET or budget is None:
        budget = body.max_tokens
    return _prompt(body, pieces, len(messages), images, budget, columns)


def _chat_parts(contents: list[str | list[_Text | _Image]]) -> tuple[list[str], int]:
    """The text of contents some of which are parts, and the number of images; ([], 0) when
    a content is an empty list."""
    pieces: list[str] = []
    images = 0
    for content in contents:
        if type(content) is str:
            pieces.append(content)
            continue
        if not content:
            return [], 0
        for part in content:
            if type(part) is _Text:
                pieces.append(part.text)
            else:
                images += 1
    return pieces, images


def _responses(body: _ResponsesBody) -> tuple[Prompt, Any] | None:
    found = _input(body.input)
    if found is None:
        return None
    pieces, count, images = found
    instructions = body.instructions
    if instructions is not UNSET and instructions is not None:
        if type(instructions) is not str:
            return None
        pieces.append(instructions)
    columns = None
    if body.text:
        extra = _extra(body.text, "text")
        if extra is None:
            return None
        pieces.extend(extra[0])
        columns = extra[1]
    return _prompt(body, pieces, count, images, body.max_output_tokens, columns)


def _input(items: str | list[_InputMessage] | UnsetType) -> tuple[list[str], int, int] | None:
    """A /responses input's text, its number of items and of images; None when it has none."""
    if type(items) is str:
        return [items], 1, 0
    if type(items) is not list or not items:
        return None
    pieces: list[str] = []
    images = 0
    for item in items:
        content = item.content
        if isinstance(content, str):
            pieces.append(content)
            continue
        if not content:
            return None
        for part in content:
            if isinstance(part, _InputImage):
                images += 1
            else:
                pieces.append(part.text)
    return pieces, len(items), images


def _prompt(
    body: _Body, pieces: list[str], messages: int, images: int, budget: Any, columns: Any
) -> tuple[Prompt, Any] | None:
    """As `bodies._budget` and `bodies._prompt` decide, for a line they accept."""
    if budget is UNSET or budget is None:
        budget = DEFAULT_COMPLETION_BUDGET
    elif type(budget) is not int or not 1 <= budget <= _MAX_INT:
        return None
    if body.stream is not UNSET and body.stream:
        return None
    if body.tools:
        extra = _extra(body.tools, "tools")
        if extra is None:
            return None
        pieces.extend(extra[0])
    return Prompt(pieces, prompt_overhead(messages, images), budget), columns


_Extra = tuple[tuple[str, ...], Any]  # a raw field's texts for the prompt, its table columns
# The last value seen in each raw field: (its JSON as the line had it, its `_Extra` or None).
# One item assignment each, so threads validating other files see a whole pair or none.
_SEEN: dict[str, tuple[bytes, _Extra | None]] = {}


def _extra(raw: msgspec.Raw, field: str) -> _Extra | None:
    """What a raw field adds to the prompt, None when the reference would refuse it: the
    previous line's when the bytes are the same (files repeat one format and one tools list),
    else read as the reference reads it (orjson, which checks what msgspec skipped: UTF-8,
    number range, surrogates)."""
    data = bytes(raw)
    seen = _SEEN.get(field)
    if seen is not None and seen[0] == data:
        return seen[1]
    extra = _read_extra(data, field)
    _SEEN[field] = (data, extra)
    return extra


def _read_extra(data: bytes, field: str) -> _Extra | None:
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if value is None:
        return (), None
    pieces: list[str] = []
    try:
        if field == "tools":
            if type(value) is not list:
                return None
            return (orjson.dumps(value).decode(),), None
        if field == "text":
            if type(value) is not dict:
                return None
            if value.get("format") is None:
                return (), None
            columns = _format(value["format"], "body.text.format", pieces)
        else:
            columns = _format(value, "body.response_format", pieces)
    except (RequestError, TypeError, orjson.JSONEncodeError):
        return None
    return tuple(pieces), columns
