"""Property-based tests of line splitting, the validator and the split plan."""

from __future__ import annotations

import itertools
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batching.jsonlines import LineTooLong, iter_bounded_lines, iter_lines
from batching.validation.plan import SplitPlanner
from batching.validation.validator import ValidationOptions, validate

OPTIONS = ValidationOptions(max_requests_per_batch=100_000, max_bytes_per_batch=200_000_000)
# Examples per test come from the profile (tests/conftest.py): 1,000 in CI.
FAST = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])

text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)
message = st.fixed_dictionaries(
    {"role": st.sampled_from(["system", "user", "assistant", "developer"]), "content": text}
)
body = st.fixed_dictionaries(
    {"messages": st.lists(message, min_size=1, max_size=3)},
    optional={"max_tokens": st.integers(1, 4000), "temperature": st.floats(0, 2)},
)


@st.composite
def valid_files(draw: st.DrawFn) -> tuple[list[dict[str, Any]], bytes]:
    """Unique ids, one url and deployment; CRLF or LF, blank lines anywhere, maybe no final EOL."""
    bodies = draw(st.lists(body, min_size=1, max_size=12))
    ids = draw(
        st.lists(
            text.filter(lambda s: s.strip()),
            min_size=len(bodies),
            max_size=len(bodies),
            unique=True,
        )
    )
    url = draw(st.sampled_from(["/chat/completions", "/v1/chat/completions"]))
    requests = [
        {"custom_id": i, "method": "POST", "url": url, "body": {"model": "gpt-4o-b", **b}}
        for i, b in zip(ids, bodies, strict=True)
    ]
    lines: list[bytes] = []
    for r in requests:
        lines.extend([b""] * draw(st.integers(0, 1)))
        lines.append(orjson.dumps(r))
    eol = draw(st.sampled_from([b"\n", b"\r\n"]))
    data = eol.join(lines) + draw(st.sampled_from([eol, b""]))
    return requests, data


def _cut(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


@FAST
@given(
    st.binary(max_size=200).map(lambda b: b.replace(b"\x00", b"\n")),
    st.lists(st.integers(0, 300), max_size=8),
)
def test_iter_lines_matches_split_whatever_the_blocks(data: bytes, cuts: list[int]) -> None:
    expected = data.split(b"\n")
    if expected[-1] == b"":
        expected.pop()
    expected = [line.removesuffix(b"\r") for line in expected]
    got = list(iter_lines(_cut(data, cuts)))
    assert got == list(enumerate(expected, start=1))


@FAST
@given(
    st.binary(max_size=200).map(lambda b: b.replace(b"\x00", b"\n").replace(b"\x01", b"\r")),
    st.lists(st.integers(0, 300), max_size=8),
    st.integers(0, 40),
)
def test_bounded_lines_are_lines_with_the_long_ones_sized(
    data: bytes, cuts: list[int], limit: int
) -> None:
    """Every line as `iter_lines` gives it, except that one over `limit` is only its size."""
    expected = [
        (n, line if len(line) <= limit else LineTooLong(len(line)))
        for n, line in iter_lines([data])
    ]
    assert list(iter_bounded_lines(_cut(data, cuts), limit)) == expected


@pytest.mark.parametrize(
    ("blocks", "expected"),
    [
        ([b"abcde\n"], [b"abcde"]),  # exactly at the limit
        ([b"abcd\nabcdef\n"], [b"abcd", LineTooLong(6)]),  # one under, one over
        ([b"abcde\r\n"], [b"abcde"]),  # a CR before the LF is not the line's
        ([b"abcdef\r\n"], [LineTooLong(6)]),
        ([b"abcde\r", b"\n"], [b"abcde"]),  # the CRLF cut between blocks
        ([b"ab", b"cde\r", b"\nabc", b"def"], [b"abcde", LineTooLong(6)]),  # no final LF
        ([b"\n\r\n", b"\r"], [b"", b"", b""]),
    ],
)
def test_lines_at_and_around_the_limit(blocks: list[bytes], expected: list[object]) -> None:
    assert [line for _, line in iter_bounded_lines(blocks, 5)] == expected


@FAST
@given(valid_files(), st.lists(st.integers(0, 5000), max_size=6))
def test_valid_files_validate_the_same_whatever_the_blocks(
    generated: tuple[list[dict[str, Any]], bytes], cuts: list[int]
) -> None:
    requests, data = generated
    whole = validate([data], OPTIONS)
    assert whole.valid, whole.problems
    assert whole.requests == len(requests)
    assert whole.bytes == len(data)
    assert validate(_cut(data, cuts), OPTIONS).to_dict() == whole.to_dict()


def _corrupt(kind: str, request: dict[str, Any], earlier: dict[str, Any]) -> bytes:
    r = orjson.loads(orjson.dumps(request))
    if kind == "json":
        return orjson.dumps(r)[:-1]
    if kind == "nan":
        return orjson.dumps({**r, "x": 1.5}).replace(b"1.5", b"NaN")
    if kind == "utf8":
        return orjson.dumps(r).replace(b'"POST"', b'"PO\xffST"')
    if kind == "custom_id":
        r["custom_id"] = ""
    elif kind == "duplicate":
        r["custom_id"] = earlier["custom_id"]
    elif kind == "method":
        r["method"] = "PUT"
    elif kind == "url":
        r["url"] = "/chat/completions" if r["url"].startswith("/v1/") else "/v1/chat/completions"
    elif kind == "unsupported_url":
        r["url"] = "/embeddings"
    elif kind == "model":
        r["body"]["model"] = "another"
    elif kind == "messages":
        r["body"]["messages"] = {}
    elif kind == "role":
        r["body"]["messages"][0]["role"] = "bot"
    elif kind == "stream":
        r["body"]["stream"] = True
    return orjson.dumps(r)


CODES = {
    "json": "invalid_json_line",
    "nan": "invalid_json_line",
    "utf8": "invalid_utf8",
    "custom_id": "invalid_custom_id",
    "duplicate": "duplicate_custom_id",
    "method": "invalid_method",
    "url": "url_mismatch",
    "unsupported_url": "invalid_url",
    "model": "model_mismatch",
    "messages": "invalid_request",
    "role": "invalid_request",
    "stream": "invalid_request",
}


@FAST
@given(valid_files().filter(lambda g: len(g[0]) >= 2), st.sampled_from(sorted(CODES)), st.data())
def test_any_single_corruption_is_caught_at_its_line(
    generated: tuple[list[dict[str, Any]], bytes], kind: str, data: st.DataObject
) -> None:
    requests, _ = generated
    target = data.draw(st.integers(1, len(requests) - 1))  # line 1 sets url and deployment
    lines = [orjson.dumps(r) for r in requests]
    lines[target] = _corrupt(kind, requests[target], requests[target - 1])
    report = validate([b"\n".join(lines)], OPTIONS)
    assert not report.valid
    assert [(p.line, p.code) for p in report.problems] == [(target + 1, CODES[kind])]


@FAST
@given(
    st.lists(st.integers(1, 500), min_size=1, max_size=400),
    st.integers(1, 120),
    st.integers(500, 5000),
)
def test_split_plan_covers_every_line_once_within_both_limits(
    sizes: list[int], max_requests: int, max_bytes: int
) -> None:
    planner = SplitPlanner(max_requests, max_bytes)
    for line, size in enumerate(sizes, start=1):
        planner.add(line, size)
    chunks = planner.plan()
    assert [c.index for c in chunks] == list(range(len(chunks)))
    assert chunks[0].first_line == 1
    assert chunks[-1].last_line == len(sizes)
    for before, after in itertools.pairwise(chunks):
        assert after.first_line == before.last_line + 1
    assert sum(c.requests for c in chunks) == len(sizes)
    assert sum(c.bytes for c in chunks) == sum(sizes)
    for c in chunks:
        assert c.requests <= max_requests
        assert c.bytes <= max_bytes
        assert c.requests == c.last_line - c.first_line + 1
    assert len(chunks) <= _fewest_chunks(sizes, max_requests, max_bytes) + 1


def _fewest_chunks(sizes: list[int], max_requests: int, max_bytes: int) -> int:
    """Greedy packing: the fewest contiguous chunks within both limits."""
    count, requests, size = 1, 0, 0
    for s in sizes:
        if requests + 1 > max_requests or size + s > max_bytes:
            count, requests, size = count + 1, 0, 0
        requests, size = requests + 1, size + s
    return count


@FAST
@given(st.integers(1, 50), st.integers(1, 99))
def test_just_over_the_request_limit_splits_in_halves(chunks: int, extra: int) -> None:
    limit = 100
    total = chunks * limit + min(extra, limit - 1)
    planner = SplitPlanner(limit, 10**12)
    for line in range(1, total + 1):
        planner.add(line, 100)
    sizes = [c.requests for c in planner.plan()]
    assert len(sizes) == chunks + 1
    assert max(sizes) - min(sizes) <= 1


@FAST
@given(valid_files(), st.sampled_from(sorted(CODES)), st.integers(0, 11), st.data())
def test_counting_tokens_or_not_gives_the_same_verdict(
    generated: tuple[list[dict[str, Any]], bytes], kind: str, target: int, data: st.DataObject
) -> None:
    """Valid files and files with a corrupted line: everything but the token estimate is the
    same with the tokenizer (the pipeline) and without it (batchctl validate's default)."""
    requests, whole = generated
    lines = [orjson.dumps(r) for r in requests]
    if data.draw(st.booleans()) and len(requests) >= 2:
        index = 1 + target % (len(requests) - 1)
        lines[index] = _corrupt(kind, requests[index], requests[index - 1])
        whole = b"\n".join(lines)
    counted = validate([whole], OPTIONS).to_dict()
    approximate = validate([whole], OPTIONS, count_tokens=False).to_dict()
    tokens = counted.pop("tokens"), approximate.pop("tokens")
    assert approximate == counted
    assert (tokens[0] is None) == (tokens[1] is None)
