"""A typed fast path for the common request shapes: msgspec checks them while it parses.

`validator._request` (orjson, then the checks in `bodies`) is the reference: it decides every
verdict and writes every message. This path only ever says "valid, and here is the request",
when the reference would return the same request; for anything else (a broken rule, or a
shape it does not know) it returns None and the line goes the reference's way. It may refuse
more than the reference, never accept more (tests/validation/test_fastpath.py compares the two
on generated lines). It exists because files of many short messages spent as long in the checks
as in the parse (docs/benchmarks.md).

Why a msgspec parse is as strict as orjson's here: every struct forbids unknown fields and
types the rest (free values as `Any`), so invalid UTF-8, lone surrogates and numbers out of a
double's range fail the parse as they fail orjson's. The one thing msgspec skips unparsed is
a raw field (`msgspec.Raw`: tools, response formats), which orjson then reads as the reference
does, unless its bytes are the previous line's, already read. Where they differ, msgspec is the
stricter (nesting depth, while Python's recursion limit is at most
orjson's 1,024 levels), or the value is checked again here: integers past 64 bits, which
orjson reads as floats (and refuses to write back).

`FileParser` takes a file's lines in order and learns its shape (text-only messages or parts;
tools repeated or new on each line), so that each line is decoded once.
"""

from __future__ import annotations

import functools
import operator
import sys
from collections.abc import Callable
from typing import Any, Literal

import msgspec
import orjson
from msgspec import UNSET, Struct, UnsetType

from batching.tokens.estimate import DEFAULT_COMPLETION_BUDGET, Prompt, prompt_overhead
from batching.validation.bodies import RequestError, _format

_MAX_INT = 2**64 - 1  # orjson reads larger integers as floats: not a whole number to it
# orjson refuses JSON nested deeper than this. msgspec nests as deep as Python's recursion limit
# lets it (then raises RecursionError), so it is the stricter only while that limit is no
# higher: with a higher one (hypothesis raises it, for one) the fast path stands aside.
ORJSON_MAX_DEPTH = 1024
_Role = Literal["user", "system", "assistant", "developer"]  # bodies.PLAIN_ROLES


# A field kept as its raw JSON (`msgspec.Raw`), unparsed, when the line is decoded: the tools and
# response formats that files repeat on every line. `FileParser._add` parses it with orjson, as the
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


# The same shapes with `tools` parsed in the line (`Any`), for files whose lines each have
# their own tools: reading raw tools again costs more than parsing them in place.
class _ChatToolsBody(_ChatBody):
    tools: Any = UNSET


class _TextChatToolsBody(_TextChatBody):
    tools: Any = UNSET


class _ResponsesToolsBody(_ResponsesBody):
    tools: Any = UNSET


class _ChatToolsLine(_ChatLine):
    body: _ChatToolsBody


class _TextChatToolsLine(_ChatLine):
    body: _TextChatToolsBody


class _ResponsesToolsLine(_ResponsesLine):
    body: _ResponsesToolsBody


_CONTENT = operator.attrgetter("content")
_STR = frozenset({str})
Parsed = tuple[str, str, str, Prompt, Any]  # custom_id, url, model, prompt, columns
_Decoder = msgspec.json.Decoder[Any]
_CHAT = msgspec.json.Decoder(_ChatLine)
_TEXT_CHAT = msgspec.json.Decoder(_TextChatLine)
_RESPONSES = msgspec.json.Decoder(_ResponsesLine)
_RAW_TOOLS = (_RESPONSES, _CHAT, _TEXT_CHAT)
# The shapes with tools parsed in the line get their decoders on first use: about 1 ms of CPU
# at start-up (measured: the module's import 2.0 ms instead of 3.0, best of 15) that only a file
# whose tools keep changing needs.
_TOOLS_IN_LINE = ("_RESPONSES_TOOLS", "_CHAT_TOOLS", "_TEXT_CHAT_TOOLS")  # as _tools_in_line


@functools.cache
def _tools_in_line() -> tuple[_Decoder, _Decoder, _Decoder]:
    """(responses, chat, text-only chat) decoders of the tools-in-the-line shapes."""
    return (
        msgspec.json.Decoder(_ResponsesToolsLine),
        msgspec.json.Decoder(_ChatToolsLine),
        msgspec.json.Decoder(_TextChatToolsLine),
    )


def __getattr__(name: str) -> _Decoder:
    """`_RESPONSES_TOOLS`, `_CHAT_TOOLS` and `_TEXT_CHAT_TOOLS`, built on first use."""
    if name not in _TOOLS_IN_LINE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return _tools_in_line()[_TOOLS_IN_LINE.index(name)]


_RESPONSES_URLS = ("/responses", "/v1/responses")
_TEXT_BODIES = (_TextChatBody, _TextChatToolsBody)
_RESPONSES_BODIES = (_ResponsesBody, _ResponsesToolsBody)
# After this many lines in a row whose tools differ from the line before, a file's tools are
# parsed in the line instead of raw.
TOOLS_CHANGES_BEFORE_PARSING = 8

_Extra = tuple[tuple[str, ...], Any]  # a raw field's texts for the prompt, its table columns
_Reader = Callable[[Any], _Extra | None]  # what a raw field's value adds, or None: refused


def parse(raw: bytes, decoder: _Decoder) -> Parsed | None:
    """The request on a line the reference accepts as the fast path's shape, else None (a
    line on its own: nothing is remembered from other lines)."""
    return FileParser().parse_as(raw, decoder)


class FileParser:
    """The fast path for the lines of one file, in order; it learns the file's shape.

    - Chat lines are tried first on the shape whose every message content is a string (no
      per-message type check after the parse), until a line needs content parts: then on the
      general shape, to which the file's later lines go straight.
    - Tools and response formats are kept raw in the decode, and read as the reference reads
      them unless their bytes are the previous line's (files tend to repeat them); when lines
      keep changing their tools, the file's later lines parse tools in place instead.

    Either way a line decodes once, except the one on which the file changes shape.
    """

    def __init__(self) -> None:
        self._text_only = True
        self._raw_tools = True
        self._tools_changes = 0  # lines in a row whose tools were not the previous line's
        # per raw field (by its reader), the last value seen: (its JSON, its _Extra or None)
        self._seen: dict[_Reader, tuple[bytes, _Extra | None]] = {}

    def parse(self, raw: bytes, url: str | None) -> Parsed | None:
        """The request on the file's next line, if the reference would accept it, else None."""
        responses, general, text = _RAW_TOOLS if self._raw_tools else _tools_in_line()
        if url in _RESPONSES_URLS:
            return self.parse_as(raw, responses)
        if self._text_only:
            found = self.parse_as(raw, text)
            if found is not None:
                return found
            found = self.parse_as(raw, general)
            self._text_only = found is None
            return found
        return self.parse_as(raw, general)

    def parse_as(self, raw: bytes, decoder: _Decoder) -> Parsed | None:
        """The request on a line decoded by `decoder`, else None."""
        if sys.getrecursionlimit() > ORJSON_MAX_DEPTH:
            return None
        try:
            line = decoder.decode(raw)
        except (msgspec.MsgspecError, RecursionError):  # nested past the recursion limit
            return None
        custom_id = line.custom_id
        body = line.body
        if not custom_id or custom_id.isspace() or not body.model:
            return None
        try:
            if isinstance(body, _RESPONSES_BODIES):
                prompt_and_columns = self._responses(body)
            else:
                prompt_and_columns = self._chat(body)
        except (RequestError, TypeError, _Refused):  # a broken rule; an int orjson cannot write
            return None
        if prompt_and_columns is None:
            return None
        prompt, columns = prompt_and_columns
        return custom_id, line.url, body.model, prompt, columns

    def _chat(self, body: _ChatBody) -> tuple[Prompt, Any] | None:
        messages = body.messages
        if not messages:
            return None
        pieces = list(map(_CONTENT, messages))  # no bytecode per message: see bodies
        images = 0
        if not isinstance(body, _TEXT_BODIES) and set(map(type, pieces)) != _STR:  # parts
            pieces, images = _chat_parts(pieces)
            if not pieces and not images:
                return None
        columns = self._add(body.response_format, _read_response_format, pieces)[0]
        budget = body.max_completion_tokens
        if budget is UNSET or budget is None:
            budget = body.max_tokens
        return self._prompt(body, pieces, len(messages), images, budget, columns)

    def _responses(self, body: _ResponsesBody) -> tuple[Prompt, Any] | None:
        found = _input(body.input)
        if found is None:
            return None
        pieces, count, images = found
        instructions = body.instructions
        if instructions is not UNSET and instructions is not None:
            if type(instructions) is not str:
                return None
            pieces.append(instructions)
        columns = self._add(body.text, _read_text, pieces)[0]
        return self._prompt(body, pieces, count, images, body.max_output_tokens, columns)

    def _prompt(
        self, body: _Body, pieces: list[str], messages: int, images: int, budget: Any, columns: Any
    ) -> tuple[Prompt, Any] | None:
        """As `bodies._budget` and `bodies._prompt` decide, for a line they accept."""
        if budget is UNSET or budget is None:
            budget = DEFAULT_COMPLETION_BUDGET
        elif type(budget) is not int or not 1 <= budget <= _MAX_INT:
            return None
        if body.stream is not UNSET and body.stream:
            return None
        tools = body.tools
        if type(tools) is msgspec.Raw:
            if tools:
                self._tools_seen(changed=self._add(tools, _read_tools, pieces)[1])
        elif tools is not UNSET and tools is not None:  # parsed in the line
            if type(tools) is not list:
                return None
            pieces.append(orjson.dumps(tools).decode())
        return Prompt(pieces, prompt_overhead(messages, images), budget), columns

    def _add(self, raw: msgspec.Raw, read: _Reader, pieces: list[str]) -> tuple[Any, bool]:
        """Append what a raw field adds to the prompt to `pieces`; its table columns, and whether
        its value differs from the previous line's. The field may be absent (an empty Raw).
        Raises `_Refused` when the reference would refuse it.

        Its value is the previous line's when the bytes are the same, else `read` from what
        orjson makes of them, as the reference reads it (orjson checks what msgspec skipped:
        UTF-8, number range, surrogates).
        """
        if not raw:
            return None, False
        data = bytes(raw)
        seen = self._seen.get(read)
        if seen is not None and seen[0] == data:
            extra, changed = seen[1], False
        else:
            extra, changed = _read(data, read), True
            self._seen[read] = (data, extra)
        if extra is None:
            raise _Refused
        pieces.extend(extra[0])
        return extra[1], changed

    def _tools_seen(self, *, changed: bool) -> None:
        """Count lines in a row with new tools; after TOOLS_CHANGES_BEFORE_PARSING, the file's
        later lines parse their tools in the line."""
        self._tools_changes = self._tools_changes + 1 if changed else 0
        if self._tools_changes >= TOOLS_CHANGES_BEFORE_PARSING:
            self._raw_tools = False


class _Refused(Exception):
    """A raw field the reference would refuse: the line goes the reference's way."""


def _read(data: bytes, read: _Reader) -> _Extra | None:
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if value is None:
        return (), None
    try:
        return read(value)
    except (RequestError, TypeError, orjson.JSONEncodeError):
        return None


def _read_tools(tools: Any) -> _Extra | None:
    if type(tools) is not list:
        return None
    return (orjson.dumps(tools).decode(),), None


def _read_response_format(fmt: Any) -> _Extra | None:
    return _read_format(fmt, "body.response_format")


def _read_text(text: Any) -> _Extra | None:
    if type(text) is not dict:
        return None
    if text.get("format") is None:
        return (), None
    return _read_format(text["format"], "body.text.format")


def _read_format(fmt: Any, where: str) -> _Extra:
    """A format's text for the prompt (a json_schema's) and its table columns, as `_format`
    checks it (it raises what the reference would refuse)."""
    pieces: list[str] = []
    columns = _format(fmt, where, pieces)
    return tuple(pieces), columns


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
