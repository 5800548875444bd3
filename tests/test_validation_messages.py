"""What a user reads about a rejected line: exact messages, and the report's JSON round trip."""

from __future__ import annotations

import orjson
import pytest

from batching.validation import (
    Problem,
    ValidationOptions,
    ValidationReport,
    check_line,
    validate,
)

OPTIONS = ValidationOptions(max_requests_per_batch=100, max_bytes_per_batch=10_000)


def _problem(raw: bytes) -> Problem:
    found = check_line(7, raw)
    assert isinstance(found, Problem)
    assert found.line == 7
    return found


def test_a_byte_order_mark_is_named_with_its_fix() -> None:
    p = _problem(b'\xef\xbb\xbf{"custom_id": "a"}')
    assert (p.code, p.message) == (
        "bom",
        "the line starts with a UTF-8 byte-order mark, which the service rejects: "
        "save the file as UTF-8 without BOM",
    )


def test_a_byte_that_is_not_utf8_is_named_by_its_one_based_position() -> None:
    p = _problem(b'{"a": "\xff"}')  # the 8th byte
    assert (p.code, p.message) == (
        "invalid_utf8",
        "byte 8 of the line is not UTF-8: re-encode the file as UTF-8",
    )


@pytest.mark.parametrize("token", [b"NaN", b"Infinity", b"-Infinity"])
def test_nan_and_infinity_get_their_own_hint(token: bytes) -> None:
    p = _problem(b'{"custom_id": "a", "x": ' + token + b"}")
    assert p.code == "invalid_json_line"
    assert p.message.startswith("not valid JSON at column ")
    assert p.message.endswith("; NaN and Infinity are not JSON: use null or a number")


def test_other_broken_json_gets_the_one_object_per_line_hint() -> None:
    p = _problem(b'{"custom_id": "a"')
    assert p.code == "invalid_json_line"
    assert p.message.startswith("not valid JSON at column ")
    assert p.message.endswith(
        "; each line must be one complete JSON object (escape line breaks in strings as \\n)"
    )


def test_problem_to_dict_has_the_custom_id_only_when_known() -> None:
    assert Problem(3, "c", "m").to_dict() == {"line": 3, "code": "c", "message": "m"}
    assert Problem(3, "c", "m", "id-1").to_dict() == {
        "line": 3,
        "code": "c",
        "message": "m",
        "custom_id": "id-1",
    }
    # a line whose custom_id was read before it failed keeps it
    p = _problem(orjson.dumps({"custom_id": "kept", "method": "PUT", "url": "/chat/completions"}))
    assert p.custom_id == "kept"
    assert p.message


def test_options_from_dict_accepts_missing_deployments() -> None:
    assert ValidationOptions.from_dict(
        {"max_requests_per_batch": 5, "max_bytes_per_batch": 6}
    ) == ValidationOptions(5, 6)
    assert ValidationOptions.from_dict(
        {"max_requests_per_batch": 5, "max_bytes_per_batch": 6, "deployments": ["a"]}
    ) == ValidationOptions(5, 6, ("a",))


def test_a_report_without_token_estimate_round_trips() -> None:
    report = validate([b"not json\n"], OPTIONS)
    assert report.tokens is None
    data = report.to_dict()
    assert data["encoding"] is None
    assert data["tokens"] is None
    assert ValidationReport.from_dict(orjson.loads(orjson.dumps(data))) == report
