"""The typed fast path (batching.validation.fastpath) against the reference (`_request`).

The fast path may refuse what the reference accepts (the line then goes the reference's way),
but whatever it accepts, the reference must accept as the same request. Lines are generated
near the rules' edges and written by hand (`_emit`), so that they can hold what a serializer
never writes: duplicate keys, escaped keys, numbers past 64 bits or a double's range, bytes
that are not UTF-8, lone surrogates, odd whitespace.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batching.validation import fastpath, validator
from batching.validation.bodies import RequestError
from batching.validation.validator import ValidationOptions, _request, validate

CORPUS = Path(__file__).parent / "corpus"  # one file per problem code, and valid ones
FAST = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


@dataclass(frozen=True)
class Raw:
    """JSON text written as is: what orjson would never produce."""

    text: bytes


class Obj(list[tuple[str | Raw, Any]]):
    """A JSON object as (key, value) pairs: keys may repeat, or be written escaped (Raw)."""


def _emit(value: Any, ws: bytes = b"") -> bytes:
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, Obj):
        pairs = [
            (k.text if isinstance(k, Raw) else orjson.dumps(k)) + ws + b":" + ws + _emit(v, ws)
            for k, v in value
        ]
        return b"{" + ws + (b"," + ws).join(pairs) + ws + b"}"
    if isinstance(value, list):
        return b"[" + b",".join(_emit(v, ws) for v in value) + b"]"
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value).encode()  # orjson refuses ints past 64 bits; JSON does not
    return orjson.dumps(value)


text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
odd = st.sampled_from(
    [
        Raw(b"1e400"),  # a double's range: orjson refuses it
        Raw(b"-1e400"),
        Raw(b"1e-400"),  # underflows to 0.0 in both
        Raw(b'"\xff"'),  # not UTF-8
        Raw(b'"\xed\xa0\x80"'),  # a surrogate, UTF-8 encoded
        Raw(b'"\\ud800"'),  # a lone surrogate, escaped
        Raw(b"123456789012345678901234567890"),  # past 64 bits: a float to orjson
        Raw(b"18446744073709551616"),
        Raw(b"18446744073709551615"),
        Raw(b"-9223372036854775809"),
        Raw(b"[" * 300 + b"]" * 300),  # deeper than orjson writes (254)
        Raw(b"[" * 1100 + b"]" * 1100),  # deeper than orjson reads (1024)
        Raw(b"-0"),
        Raw(b"0.0"),
        Raw(b'""'),
        Raw(b"true"),
        Raw(b"false"),
        Raw(b"null"),
        Raw(b"{}"),
        Raw(b"[]"),
        Raw(b"[1]"),
    ]
)
value = st.one_of(
    odd,
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    text,
)


def usually(good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any] = value) -> Any:
    """`good` 19 times in 20: lines mostly valid, so that both paths accept many."""
    return st.sampled_from([True] * 19 + [False]).flatmap(lambda ok: good if ok else bad)


count = usually(
    st.integers(1, 2**64 - 1),
    st.one_of(
        st.sampled_from([2**64 - 1, 2**64, 0, -1, 1.0, True, None, "10"]),
        st.integers(-3, 2**65),
        odd,
    ),
)
role = usually(
    st.sampled_from(["user", "system", "assistant", "developer"]),
    st.sampled_from(["tool", "User", 5, None]),
)


def _pairs(draw: st.DrawFn, required: dict[str, Any], optional: dict[str, Any]) -> Obj:
    """The fields in a drawn order, some left out or repeated, unknown ones sometimes added."""
    fields = [(k, v) for k, v in required.items() if draw(st.integers(0, 49))]  # 2% missing
    fields += [(k, draw(v)) for k, v in optional.items() if draw(st.booleans())]
    if draw(st.integers(0, 19)) == 0:
        fields.append((draw(st.sampled_from(["name", "foo", "temperature"])), draw(value)))
    fields = draw(st.permutations(fields))
    obj = Obj(fields)
    if fields and draw(st.integers(0, 15)) == 0:  # a duplicate key, before or after
        key, _ = draw(st.sampled_from(fields))
        pair = (key, draw(st.one_of(value, st.just(dict(fields)[key]))))
        obj.insert(draw(st.integers(0, len(obj))), pair)
    if fields and draw(st.integers(0, 31)) == 0:  # a key written with an escape
        i = draw(st.integers(0, len(obj) - 1))
        key, v = obj[i]
        if isinstance(key, str) and key:
            obj[i] = (Raw(b'"\\u%04x' % ord(key[0]) + key[1:].encode() + b'"'), v)
    return obj


@st.composite
def parts(draw: st.DrawFn, chat: bool) -> Obj:
    kinds = ["text", "image_url"] if chat else ["input_text", "output_text", "input_image"]
    others = ["refusal", "file", "input_image", "image_url", "bogus", "text", "input_text"]
    kind = draw(usually(st.sampled_from(kinds), st.sampled_from(others)))
    required = {"type": kind}
    if kind.endswith("text"):
        required["text"] = draw(usually(text))
    optional = {"image_url": st.just({"url": "data:,x"}), "detail": st.just("low")}
    return _pairs(draw, required, optional if kind.endswith("image") else {})


@st.composite
def messages(draw: st.DrawFn, chat: bool) -> Obj:
    content = usually(st.one_of(text, text, st.lists(parts(chat), min_size=1, max_size=3)))
    optional = {"type": st.just("message")} if not chat else {"name": text}
    return _pairs(draw, {"role": draw(role), "content": draw(content)}, optional)


FORMATS = [
    {"type": "text"},
    {"type": "json_object"},
    {
        "type": "json_schema",
        "json_schema": {
            "name": "x",
            "strict": True,
            "schema": {
                "type": "object",
                "properties": {"a": {"type": "string"}},
                "required": ["a"],
                "additionalProperties": False,
            },
        },
    },
]
RESPONSES_FORMAT = {"type": "json_schema", "name": "x", **FORMATS[2]["json_schema"]}  # type: ignore[dict-item]
TOOLS = [{"type": "function", "function": {"name": "f"}}]


@st.composite
def lines(draw: st.DrawFn) -> bytes:
    chat = draw(st.booleans())
    common: dict[str, Any] = {
        "stream": usually(st.sampled_from([False, None, 0])),
        "tools": usually(st.just(TOOLS)),
        "temperature": usually(st.floats(0, 2)),
    }
    model = draw(usually(st.just("gpt-4o-batch")))
    if chat:
        items = usually(st.lists(messages(chat=True), min_size=1, max_size=4))
        body = _pairs(
            draw,
            {"model": model, "messages": draw(items)},
            {
                **common,
                "response_format": usually(
                    st.sampled_from(FORMATS), st.sampled_from([{"type": "bogus"}, None])
                ),
                "max_tokens": count,
                "max_completion_tokens": count,
            },
        )
        urls = ["/chat/completions", "/v1/chat/completions"]
    else:
        items = usually(st.one_of(text, st.lists(messages(chat=False), min_size=1, max_size=4)))
        body = _pairs(
            draw,
            {"model": model, "input": draw(items)},
            {
                **common,
                "instructions": usually(text),
                "text": usually(st.just({"format": RESPONSES_FORMAT})),
                "max_output_tokens": count,
            },
        )
        urls = ["/responses", "/v1/responses"]
    url = draw(usually(st.sampled_from(urls), st.sampled_from(["/chat/completions", "/responses"])))
    line = _pairs(
        draw,
        {
            "custom_id": draw(usually(text.filter(str.strip))),
            "method": draw(usually(st.just("POST"), st.just("GET"))),
            "url": url,
            "body": body,
        },
        {},
    )
    return _emit(line, draw(st.sampled_from([b"", b" ", b"\t", b"\r\n "])))


def _reference(raw: bytes) -> tuple[Any, ...] | None:
    try:
        r = _request(raw)
    except RequestError:
        return None
    return r.custom_id, r.url, r.model, r.prompt, r.columns


def _fast(raw: bytes, url: str | None) -> tuple[Any, ...] | None:
    """A new file's first line on the fast path: the text-only shape, then the general."""
    return fastpath.FileParser().parse(raw, url)


@FAST
@given(lines(), st.sampled_from([None, "/chat/completions", "/responses"]))
def test_what_the_fast_path_accepts_the_reference_accepts_the_same(raw, url):
    """On each of its shapes: chat text-only (tried first) or general, responses; each with
    tools raw or parsed in the line. At Python's default recursion limit, which hypothesis
    raises while it runs a test (the fast path stands aside above orjson's depth)."""
    with _recursion_limit(1000):
        found = [fastpath.parse(raw, decoder) for decoder in DECODERS]
        found.append(_fast(raw, url))
    for fast in found:
        if fast is not None:
            assert _reference(raw) == fast


@contextmanager
def _recursion_limit(limit: int) -> Iterator[None]:
    before = sys.getrecursionlimit()
    sys.setrecursionlimit(limit)
    try:
        yield
    finally:
        sys.setrecursionlimit(before)


def _nested(levels: int) -> bytes:
    """A /responses line whose temperature is `levels` arrays deep (the line adds 2 levels)."""
    return _responses(model="m", input="x")[:-2] + b',"temperature":%b%b}}' % (
        b"[" * levels,
        b"]" * levels,
    )


@pytest.mark.parametrize("levels", [900, 1019, 1021, 1022, 1023, 1030, 100_000])
def test_nesting_near_and_past_every_limit_goes_the_reference_way(levels):
    """orjson reads 1,024 levels (the line's own 2, then 1,022 arrays), msgspec as many as the
    recursion limit lets it, then raises RecursionError: the fast path never raises, and never
    takes a line the reference refuses, whatever the limit."""
    raw = _nested(levels)
    reference = _reference(raw)
    assert (reference is not None) == (levels <= 1022)
    for limit in (1000, 1024):
        with _recursion_limit(limit):
            found = [fastpath.parse(raw, decoder) for decoder in DECODERS]
        assert all(fast in (None, reference) for fast in found)
    with _recursion_limit(5000):  # msgspec would read 1,030 levels here: it is not asked to
        assert [fastpath.parse(raw, decoder) for decoder in DECODERS] == [None] * len(DECODERS)
    if levels == 900:  # and below the limits the fast path does take the line
        for limit in (1000, 1024):
            with _recursion_limit(limit):
                assert fastpath.parse(raw, fastpath._RESPONSES) == reference


def test_a_file_with_a_line_nested_past_the_recursion_limit_validates(monkeypatch):
    """The whole report, as the reference's, when the fast path meets such lines."""
    options = ValidationOptions(max_requests_per_batch=7, max_bytes_per_batch=10_000_000)
    data = b"\n".join(
        _nested(levels).replace(b'"r"', b'"r%d"' % i)
        for i, levels in enumerate([1, 990, 1022, 1023, 50_000, 3])
    )
    monkeypatch.setattr(validator, "FAST_PATH_AFTER_LINES", 10**9)
    reference = validate([data], options).to_dict()
    monkeypatch.setattr(validator, "FAST_PATH_AFTER_LINES", 0)
    assert validate([data], options).to_dict() == reference
    assert reference["invalid_lines"] == 2


DECODERS = [
    fastpath._TEXT_CHAT,
    fastpath._CHAT,
    fastpath._RESPONSES,
    fastpath._TEXT_CHAT_TOOLS,
    fastpath._CHAT_TOOLS,
    fastpath._RESPONSES_TOOLS,
]


def _spy_decoders(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """The decoders FileParser.parse_as is called with, in order."""
    tried: list[object] = []
    original = fastpath.FileParser.parse_as

    def spy(self: fastpath.FileParser, raw: bytes, decoder: Any) -> Any:
        tried.append(decoder)
        return original(self, raw, decoder)

    monkeypatch.setattr(fastpath.FileParser, "parse_as", spy)
    return tried


def _with_tools(raw: bytes, name: str) -> bytes:
    return raw[:-2] + b',"tools":[{"type":"function","function":{"name":"%s"}}]}}' % name.encode()


def test_a_file_whose_lines_change_their_tools_parses_them_in_the_line(monkeypatch):
    """Raw tools pay when lines repeat them; after TOOLS_CHANGES_BEFORE_PARSING lines in a row
    with new tools (a repeat starts the count again), the file's later lines parse tools in
    the line, on each shape. The requests are the reference's throughout."""
    tried = _spy_decoders(monkeypatch)
    changes = fastpath.TOOLS_CHANGES_BEFORE_PARSING
    text = _plain(**CHAT)
    parts = _plain(model="m", messages=[{"role": "user", "content": [TEXT]}])
    responses = _responses(model="m", input="x")
    for first, url, raw_tools, parsed_tools in [
        (text, "/chat/completions", fastpath._TEXT_CHAT, fastpath._TEXT_CHAT_TOOLS),
        (parts, "/chat/completions", fastpath._CHAT, fastpath._CHAT_TOOLS),
        (responses, "/v1/responses", fastpath._RESPONSES, fastpath._RESPONSES_TOOLS),
    ]:
        names = [f"f{i}" for i in range(changes - 1)] + [f"f{changes - 2}"]  # then a repeat
        names += [f"g{i}" for i in range(changes)]  # the last of these is the switch
        parser = fastpath.FileParser()
        if first is parts:  # the file's first line tells it that its lines have parts
            assert parser.parse(first, url) == _reference(first)
        tried.clear()
        for name in names:
            raw = _with_tools(first, name)
            assert parser.parse(raw, url) == _reference(raw)
        assert tried == [raw_tools] * len(names)
        tried.clear()
        assert parser.parse(first, url) == _reference(first)  # tools or none: the same path
        assert tried == [parsed_tools]

    tried.clear()
    repeating = fastpath.FileParser()
    for _ in range(3 * changes):
        raw = _with_tools(text, "f")
        assert repeating.parse(raw, "/chat/completions") == _reference(raw)
    assert set(tried) == {fastpath._TEXT_CHAT}


def test_a_line_no_shape_takes_leaves_the_file_on_the_text_only_shape(monkeypatch):
    tried = _spy_decoders(monkeypatch)
    parser = fastpath.FileParser()
    refused = _plain(**CHAT, stream=True)  # refused on every shape
    for raw, decoders in [
        (_plain(**CHAT), [fastpath._TEXT_CHAT]),
        (refused, [fastpath._TEXT_CHAT, fastpath._CHAT]),
        (_plain(**CHAT), [fastpath._TEXT_CHAT]),
    ]:
        tried.clear()
        assert parser.parse(raw, "/chat/completions") == _reference(raw)
        assert tried == decoders


def test_a_repeated_raw_field_is_read_again_when_its_bytes_change():
    """The previous line's tools stand for a line's only when the bytes are the same."""
    tools = b',"tools":[{"type":"function","function":{"name":"f%s"}}]}}'
    good, bad = (_plain(**CHAT)[:-2] + tools % name for name in (b"", b"\xff"))
    parser = fastpath.FileParser()
    for raw in (good, good, bad, good):
        assert parser.parse(raw, "/chat/completions") == _reference(raw)
    assert _reference(good) is not None and _reference(bad) is None


def test_a_file_tries_the_text_only_shape_until_a_line_has_content_parts(monkeypatch):
    """Each line is decoded once on a file of either kind; a line with parts costs a second
    decode once, then the file's lines go to the general shape."""
    tried = _spy_decoders(monkeypatch)
    text, chat = fastpath._TEXT_CHAT, fastpath._CHAT
    parts = _plain(model="m", messages=[{"role": "user", "content": [TEXT]}])
    parser = fastpath.FileParser()
    for raw, decoders in [
        (_plain(**CHAT), [text]),
        (_plain(**CHAT), [text]),
        (parts, [text, chat]),
        (_plain(**CHAT), [chat]),
        (parts, [chat]),
    ]:
        tried.clear()
        assert parser.parse(raw, "/chat/completions") == _reference(raw)
        assert tried == decoders
    tried.clear()
    assert parser.parse(_responses(model="m", input="x"), "/v1/responses") is not None
    assert tried == [fastpath._RESPONSES]


def test_the_tools_in_the_line_decoders_are_built_only_for_a_file_that_needs_them():
    """Building decoders costs start-up time: a fresh process that validates a file repeating
    its tools builds none of them; one whose tools keep changing builds them."""
    changes = fastpath.TOOLS_CHANGES_BEFORE_PARSING
    code = (
        "import sys\n"
        "from batching.validation import fastpath\n"
        "parser = fastpath.FileParser()\n"
        "for raw in sys.stdin.buffer.read().splitlines():\n"
        "    assert parser.parse(raw, '/chat/completions') is not None\n"
        "print(fastpath._tools_in_line.cache_info().currsize)\n"
    )

    def built(names: list[str]) -> str:
        lines = b"\n".join(_with_tools(_plain(**CHAT), name) for name in names)
        done = subprocess.run(
            [sys.executable, "-c", code], input=lines, capture_output=True, check=True
        )
        return done.stdout.decode().strip()

    assert built(["same"] * 3 * changes) == "0"
    assert built([f"f{i}" for i in range(changes + 1)]) == "1"


def _plain(**body: Any) -> bytes:
    return orjson.dumps(
        {"custom_id": "a", "method": "POST", "url": "/chat/completions", "body": body}
    )


CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
BIG_INT = b"123456789012345678901234567890"
SCHEMA = FORMATS[2]


def _responses(url: str = "/v1/responses", **body: Any) -> bytes:
    return orjson.dumps({"custom_id": "r", "method": "POST", "url": url, "body": body})


TEXT = {"type": "text", "text": "t"}
IMAGE = {"type": "image_url", "image_url": {"url": "data:,x"}}
INPUT_TEXT = {"type": "input_text", "text": "x"}
INPUT_IMAGE = {"type": "input_image", "image_url": "data:,x"}


@pytest.mark.parametrize(
    "raw",
    [
        _plain(**CHAT),
        _plain(**CHAT, max_tokens=10, temperature=0.2, seed=1, response_format=SCHEMA),
        _plain(**CHAT, tools=[{"type": "function", "function": {"name": "f"}}], stream=False),
        _plain(**CHAT, max_tokens=1),
        _plain(**CHAT, max_completion_tokens=1, max_tokens=None),
        _plain(
            model="m",
            messages=[
                {"role": "system", "content": "s"},
                {"role": "user", "content": [TEXT, {"type": "image_url"}]},
            ],
            max_completion_tokens=2**64 - 1,
        ),
        # a number past 64 bits in a raw field: orjson reads it (as a float), as the reference
        _plain(**CHAT)[:-2] + b',"tools":[{"x":%s}]}}' % BIG_INT,
        _plain(model="m", messages=[{"role": "user", "content": [TEXT, TEXT]}]),  # no image
        _plain(model="m", messages=[{"role": "user", "content": [IMAGE, IMAGE]}]),  # no text
        _plain(model="m", messages=[{"role": "user", "content": [IMAGE]}, CHAT["messages"][0]]),
        _responses(
            model="m",
            instructions="i",
            input=[{"role": "user", "content": [INPUT_TEXT]}],
            text={"format": RESPONSES_FORMAT},
            max_output_tokens=5,
        ),
        _responses("/responses", model="m", input="a string"),  # no instructions, no text
        _responses(model="m", input="s", instructions=None, text=None, max_output_tokens=1),
        _responses(
            model="m",
            input=[
                {"role": "developer", "content": "first"},
                {"role": "user", "content": "second"},
                {"type": "message", "role": "user", "content": [INPUT_IMAGE, INPUT_IMAGE]},
                {"role": "assistant", "content": [{"type": "output_text", "text": "y"}]},
            ],
        ),
    ],
)
def test_the_common_shapes_take_the_fast_path(raw):
    """What the fast path is for: without this, a path that accepted nothing would pass. Each
    general shape of the endpoint takes them, with tools raw or parsed in the line."""
    url = orjson.loads(raw)["url"]
    fast = _fast(raw, url)
    assert fast is not None
    assert fast == _reference(raw)
    responses = url.endswith("/responses")
    general = (
        [fastpath._RESPONSES, fastpath._RESPONSES_TOOLS]
        if responses
        else [fastpath._CHAT, fastpath._CHAT_TOOLS]
    )
    for decoder in general:
        # parsed in the line, an integer past 64 bits is one orjson will not write back: such
        # a line goes the reference's way
        big = decoder in (fastpath._CHAT_TOOLS, fastpath._RESPONSES_TOOLS) and BIG_INT in raw
        assert fastpath.parse(raw, decoder) == (None if big else fast)


@pytest.mark.parametrize(
    "raw",
    [
        _plain(**CHAT, foo=1),  # unknown: never skipped unparsed
        _plain(**CHAT)[:-2] + b',"max_tokens":18446744073709551616}}',  # a float to orjson
        _plain(**CHAT, max_tokens=0),
        _plain(**CHAT, stream=True),
        _plain(model="m", messages=[]),
        _plain(model="m", messages=[{"role": "tool", "content": "x", "tool_call_id": "c"}]),
        _plain(**CHAT, response_format={"type": "bogus"}),
        _plain(**CHAT)[:-2] + b',"temperature":1e400}}',
        _plain(**CHAT)[:-2] + b',"temperature":"\xff"}}',
        _plain(**CHAT)[:-2] + b',"temperature":1,"temperature":1e400}}',
        # what msgspec skips unchecked in a raw field, and orjson refuses
        _plain(**CHAT)[:-2] + b',"tools":[{"d":"\xff"}]}}',
        _plain(**CHAT)[:-2] + b',"tools":[{"d":"\\ud800"}]}}',
        _plain(**CHAT)[:-2] + b',"response_format":{"type":"text","x":1e400}}}',
        _responses(model="m", input="x")[:-2] + b',"text":{"format":{"type":"text"},"x":-1e999}}}',
        _plain(**CHAT, tools={"type": "function"}),  # not a list
        _responses(model="m", input="x", text="plain"),  # not an object
        _plain(model="m", messages=[{"role": "user", "content": []}]),
        _plain(
            model="m",
            messages=[{"role": "user", "content": [TEXT]}, {"role": "user", "content": []}],
        ),
        _responses(model="m", input=[]),
        _responses(model="m", input=[{"role": "user", "content": []}]),
        _responses(model="m"),
    ],
)
def test_what_the_fast_path_leaves_to_the_reference(raw):
    url = "/v1/responses" if b"/v1/responses" in raw else "/chat/completions"  # some are not JSON
    assert _fast(raw, url) is None


def test_a_file_validates_the_same_with_and_without_the_fast_path(monkeypatch):
    """Every line of the corpus (valid and broken) and a file of chat lines: the whole report,
    problems included, whether the fast path takes lines from the first or never."""
    options = ValidationOptions(max_requests_per_batch=7, max_bytes_per_batch=100_000)
    files = [path.read_bytes() for path in sorted(CORPUS.glob("*.jsonl"))]
    files.append(b"\n".join(_plain(**CHAT).replace(b'"a"', b'"%d"' % i) for i in range(50)))
    for data in files:
        monkeypatch.setattr(validator, "FAST_PATH_AFTER_LINES", 10**9)
        reference = validate([data], options).to_dict()
        monkeypatch.setattr(validator, "FAST_PATH_AFTER_LINES", 0)
        assert validate([data], options).to_dict() == reference


def test_the_fast_path_starts_at_its_line_and_follows_the_files_endpoint(monkeypatch):
    """Lines before FAST_PATH_AFTER_LINES never load msgspec (its import costs about what the
    fast path saves on a thousand lines); from that line on, each line is tried on the decoder
    of the endpoint the first accepted line set."""
    seen: list[tuple[bytes, object]] = []
    original = fastpath.FileParser.parse_as

    def spy(self: fastpath.FileParser, raw: bytes, decoder: Any) -> Any:
        found = original(self, raw, decoder)
        seen.append((raw, found))
        return found

    monkeypatch.setattr(fastpath.FileParser, "parse_as", spy)
    options = ValidationOptions(max_requests_per_batch=10, max_bytes_per_batch=100_000)
    checker = validator.LineChecker(options)
    at = validator.FAST_PATH_AFTER_LINES
    first = _responses("/responses", model="m", input="x").replace(b'"r"', b'"r0"')
    assert isinstance(checker.check(at - 1, first), validator.Request)
    assert seen == []
    line = first.replace(b'"r0"', b'"r1"')
    assert isinstance(checker.check(at, line), validator.Request)
    assert len(seen) == 1 and seen[0][0] == line and seen[0][1] is not None


def _lines(count: int) -> list[bytes]:
    return [_plain(**CHAT).replace(b'"a"', b'"%03d"' % i) for i in range(count)]


# the size of a file of FAST_PATH_AFTER_LINES lines as long as these
_MANY = validator.FAST_PATH_AFTER_LINES * (len(_lines(1)[0]) + 1)


@pytest.mark.parametrize(("size_hint", "fast_lines"), [(None, 0), (_MANY - 1, 0), (_MANY, 5)])
def test_an_input_whose_size_says_it_has_many_lines_takes_the_fast_path_at_once(
    monkeypatch: pytest.MonkeyPatch, size_hint: int | None, fast_lines: int
) -> None:
    """A file that will reach FAST_PATH_AFTER_LINES pays for msgspec anyway: when its size and
    the length of its lines say it has that many, its first lines take the fast path too (a
    file of a few long lines, such as images, does not), and the report is the same."""
    tried = _spy_decoders(monkeypatch)
    data = b"\n".join(_lines(5))
    options = ValidationOptions(max_requests_per_batch=10, max_bytes_per_batch=100_000)
    report = validate([data], options, size_hint=size_hint, count_tokens=False).to_dict()
    assert len(tried) == fast_lines
    assert report == validate([data], options, count_tokens=False).to_dict()
    assert report["requests"] == 5
