"""The validator against the corpus of malformed files, plus rules the corpus cannot show."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from batching.jsonlines import read_blocks
from batching.validation.validator import (
    SERVICE_CODES,
    ValidationOptions,
    ValidationReport,
    check_line,
    validate,
)

CORPUS = Path(__file__).parent / "corpus"
OPTIONS = ValidationOptions(
    max_requests_per_batch=100_000,
    max_bytes_per_batch=1024,
    deployments=("gpt-4o-batch", "gpt-4o-mini-batch"),
)
MALFORMED = sorted(p for p in CORPUS.glob("*@*.jsonl"))
VALID = sorted(CORPUS.glob("valid-*.jsonl"))


def _line(custom_id: str = "t-1", content: str = "Hello", **body: object) -> bytes:
    request = {
        "custom_id": custom_id,
        "method": "POST",
        "url": "/chat/completions",
        "body": {"model": "gpt-4o-batch", "messages": [{"role": "user", "content": content}]},
    }
    request["body"].update(body)  # type: ignore[attr-defined]
    return orjson.dumps(request)


def _validate(data: bytes, **options: object) -> ValidationReport:
    return validate(
        [data],
        ValidationOptions(
            **{"max_requests_per_batch": 100_000, "max_bytes_per_batch": 200_000_000, **options}
        ),
    )


def test_corpus_is_big_enough() -> None:
    assert len(MALFORMED) >= 30
    assert {p.name.split("@")[0] for p in MALFORMED} == set(SERVICE_CODES)


@pytest.mark.parametrize("path", MALFORMED, ids=lambda p: p.stem)
def test_malformed_file_reports_its_code_on_its_line(path: Path) -> None:
    code, rest = path.stem.split("@")
    line = int(rest.split("-")[0])
    report = validate(read_blocks(path), OPTIONS)
    assert not report.valid
    assert [(p.line, p.code) for p in report.problems] == [(line, code)]
    assert report.problem_counts == {code: 1}
    assert report.split == []
    assert report.problems[0].message


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.stem)
def test_valid_corpus_files(path: Path) -> None:
    report = validate(read_blocks(path), OPTIONS)
    assert report.valid, report.problems
    assert report.problems == []
    assert report.requests == report.lines - report.blank_lines
    assert sum(c.requests for c in report.split) == report.requests


def test_blank_lines_and_crlf_are_skipped_and_counted() -> None:
    report = validate(read_blocks(CORPUS / "valid-crlf-blank-lines.jsonl"), OPTIONS)
    assert (report.requests, report.lines, report.blank_lines) == (3, 5, 2)
    assert [(c.first_line, c.last_line) for c in report.split] == [(1, 5)]
    # a chunk holds the 3 requests with "\n" endings: no CRLFs (5 x 2 bytes), no blank "   "
    assert report.split[0].bytes == report.bytes - 5 * 2 - len(b"   ") + 3


def test_duplicate_names_both_lines() -> None:
    report = validate(read_blocks(CORPUS / "duplicate_custom_id@3-repeat.jsonl"), OPTIONS)
    problem = report.problems[0]
    assert problem.custom_id == "t-1"
    assert "line 1" in problem.message
    assert "line 3" in problem.message


def test_nan_message_says_how_to_fix() -> None:
    report = validate(read_blocks(CORPUS / "invalid_json_line@2-nan.jsonl"), OPTIONS)
    assert "NaN and Infinity are not JSON" in report.problems[0].message


def test_mismatch_names_the_line_that_set_the_expectation() -> None:
    report = validate(read_blocks(CORPUS / "model_mismatch@3-other-deployment.jsonl"), OPTIONS)
    assert "'gpt-4o-batch' on line 1" in report.problems[0].message


def test_every_problem_is_counted_but_only_max_problems_listed() -> None:
    data = b"\n".join([b"not json"] * 30 + [_line()])
    report = _validate(data, max_problems=10)
    assert len(report.problems) == 10
    assert report.problem_counts == {"invalid_json_line": 30}
    assert report.invalid_lines == 30
    assert [p.line for p in report.problems] == list(range(1, 11))


def test_skip_mode_is_valid_with_one_good_line_and_plans_only_good_lines() -> None:
    data = b"\n".join([_line("a"), b"{", _line("a"), _line("b")])
    report = _validate(data, invalid_lines="skip")
    assert report.valid
    assert report.requests == 2
    assert report.problem_counts == {"invalid_json_line": 1, "duplicate_custom_id": 1}
    assert [(c.first_line, c.last_line, c.requests) for c in report.split] == [(1, 4, 2)]


def test_skip_mode_with_no_good_line_is_empty() -> None:
    report = _validate(b"{\n[]\n", invalid_lines="skip")
    assert not report.valid
    assert report.problem_counts == {"invalid_json_line": 2, "empty_file": 1}
    assert report.problems[-1].line == 0


def test_skipped_line_does_not_set_the_expected_deployment() -> None:
    data = b"\n".join([_line("a", model="gpt-4o-batch", stream=True), _line("b", model="other")])
    report = _validate(data, invalid_lines="skip")
    assert report.deployment == "other"
    assert report.problem_counts == {"invalid_request": 1}


def test_v1_urls_and_responses_endpoint() -> None:
    line = orjson.dumps(
        {
            "custom_id": "r",
            "method": "POST",
            "url": "/v1/responses",
            "body": {
                "model": "gpt-5-batch",
                "input": [{"type": "function_call_output", "call_id": "c", "output": "1"}],
            },
        }
    )
    report = _validate(line)
    assert report.valid
    assert (report.endpoint, report.model_family) == ("/v1/responses", "gpt-5")


def test_check_line_alone() -> None:
    good = check_line(7, _line("x", max_completion_tokens=10))
    assert not hasattr(good, "code")
    bad = check_line(7, _line("x", max_completion_tokens=0))
    assert (bad.line, bad.code, bad.custom_id) == (7, "invalid_request", "x")  # type: ignore[union-attr]


def test_table_columns_from_the_schema_in_order() -> None:
    report = validate(
        read_blocks(Path(__file__).resolve().parents[2] / "samples" / "structured-buildings.jsonl"),
        OPTIONS,
    )
    assert report.table_columns == ["BuildingName", "HeightInFeet", "City", "Country"]


def test_non_strict_schema_is_not_held_to_strict_rules() -> None:
    fmt = {
        "type": "json_schema",
        "json_schema": {"name": "n", "schema": {"type": "object", "properties": {"a": {}}}},
    }
    report = _validate(_line(response_format=fmt))
    assert report.valid
    assert report.table_columns == ["a"]


def test_report_round_trips_through_json() -> None:
    data = b"\n".join([_line("a"), b"oops", _line("b")])
    report = _validate(data, invalid_lines="skip", deployments=("gpt-4o-batch",))
    as_json = orjson.loads(orjson.dumps(report.to_dict()))
    assert ValidationReport.from_dict(as_json) == report
    assert as_json["encoding"] == "o200k_base"
    assert as_json["problems"] == [
        {"line": 2, "code": "invalid_json_line", "message": report.problems[0].message}
    ]
    assert as_json["tokens"]["method"] == "exact"


def test_bytes_counts_the_whole_input() -> None:
    data = _line("a") + b"\r\n\r\n" + _line("b")
    assert _validate(data).bytes == len(data)


def test_a_repeated_schema_is_checked_by_its_exact_json() -> None:
    schema = {"type": "object", "properties": {}, "required": [], "additionalProperties": False}
    good = {"type": "json_schema", "json_schema": {"name": "n", "schema": schema, "strict": True}}
    bad = {"type": "json_schema", "json_schema": {"name": "n", "schema": schema, "strict": 1}}
    assert good == bad  # equal in Python, so a cache keyed on equality would let it through
    report = _validate(
        b"\n".join([_line("a", response_format=good), _line("b", response_format=bad)])
    )
    assert [(p.line, p.code) for p in report.problems] == [(2, "invalid_schema")]


def test_a_line_over_max_line_bytes_is_rejected_with_its_line_number() -> None:
    long = _line("t-2", "word " * 2000)
    data = b"\n".join([_line("t-1"), long, b"", _line("t-3")]) + b"\n"
    report = _validate(data, max_line_bytes=len(long) - 1)
    assert not report.valid
    (problem,) = report.problems
    assert (problem.line, problem.code) == (2, "line_too_large")
    assert problem.custom_id is None  # the line was never parsed
    assert f"line 2 is {len(long)} bytes" in problem.message
    assert "MAX_LINE_BYTES" in problem.message
    assert report.requests == 2 and report.lines == 4 and report.blank_lines == 1
    assert _validate(data, max_line_bytes=len(long)).valid


def test_a_line_over_max_line_bytes_is_skipped_in_skip_mode() -> None:
    long = _line("t-2", "word " * 2000)
    data = b"\n".join([_line("t-1"), long + b"\r", _line("t-3")])
    report = _validate(data, max_line_bytes=1000, invalid_lines="skip")
    assert report.valid and report.requests == 2 and report.invalid_lines == 1
    assert report.problem_counts == {"line_too_large": 1}
    assert report.problems[0].line == 2


def _without_tokens(report: ValidationReport) -> dict[str, object]:
    data = report.to_dict()
    del data["tokens"]
    return data


@pytest.mark.parametrize("path", MALFORMED + VALID, ids=lambda p: p.stem)
def test_the_verdict_does_not_depend_on_counting_tokens(path: Path) -> None:
    """Without the tokenizer (batchctl validate's default) every problem, line number, count and
    the split plan are the same: only the token estimate differs, and is labelled."""
    counted = validate(read_blocks(path), OPTIONS)
    approximate = validate(read_blocks(path), OPTIONS, count_tokens=False)
    assert _without_tokens(approximate) == _without_tokens(counted)
    assert (approximate.tokens is None) == (counted.tokens is None)
    if approximate.tokens is not None and counted.tokens is not None:
        assert approximate.tokens.method == "approximate"
        assert counted.tokens.method in ("exact", "sampled")
        assert approximate.tokens.completion_budget == counted.tokens.completion_budget
        assert approximate.tokens.encoding == counted.tokens.encoding
