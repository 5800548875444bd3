"""What a user reads about a rejected line: exact messages, and the report's JSON round trip."""

from __future__ import annotations

import orjson
import pytest

from batching.validation.validator import (
    LineChecker,
    Problem,
    Request,
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


@pytest.mark.parametrize(
    ("key", "where"), [("tools", "body.tools"), ("response_format", "body.response_format")]
)
def test_tools_or_a_format_nested_past_what_orjson_writes_is_a_problem_not_a_crash(
    key: str, where: str
) -> None:
    """orjson reads 1,024 levels but writes 254: the text the estimate needs cannot be made."""
    deep = b"[" * 255 + b"]" * 255
    raw = (
        b'{"custom_id":"a","method":"POST","url":"/chat/completions","body":{"model":"m",'
        b'"messages":[{"role":"user","content":"x"}],"%s":%s}}' % (key.encode(), deep)
    )
    p = _problem(raw)
    assert (p.code, p.message, p.custom_id) == (
        "invalid_request",
        f"{where} is nested too deeply: more than 254 levels",
        "a",
    )
    if key == "tools":  # 254 levels are written (a format must be an object: a list is not)
        assert isinstance(check_line(7, raw.replace(deep, b"[" * 254 + b"]" * 254)), Request)


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


def _req(custom_id: str = "r", **fields: object) -> bytes:
    line: dict[str, object] = {
        "custom_id": custom_id,
        "method": "POST",
        "url": "/chat/completions",
        "body": {"model": "dep-a", "messages": [{"role": "user", "content": "hi"}]},
    }
    line.update(fields)
    return orjson.dumps(line)


def _problems(*lines: bytes, **options: object) -> list[dict[str, object]]:
    report = validate([b"\n".join(lines) + b"\n"], ValidationOptions(100, 10_000, **options))  # type: ignore[arg-type]
    return [p.to_dict() for p in report.problems]


def test_each_per_line_rule_names_the_line_its_custom_id_and_what_was_wrong() -> None:
    got = _problems(
        b"[1, 2]",
        _req("m", method="GET"),
        _req("u", url="/embeddings"),
        _req("b", body=[1]),
        _req("n", body={"model": 5, "messages": []}),
        _req("e", body={"model": "", "messages": []}),
    )
    model_message = "body.model must name the Global Batch deployment to run the request on"
    assert got == [
        {
            "line": 1,
            "code": "invalid_json_line",
            "message": "the line is JSON but not an object {...}",
        },
        {
            "line": 2,
            "code": "invalid_method",
            "message": "method must be \"POST\", not 'GET'",
            "custom_id": "m",
        },
        {
            "line": 3,
            "code": "invalid_url",
            "message": "url must be one of /chat/completions, /v1/chat/completions, /responses, "
            "/v1/responses (batch runs chat completions and responses), not '/embeddings'",
            "custom_id": "u",
        },
        {
            "line": 4,
            "code": "invalid_request",
            "message": "body must be a JSON object",
            "custom_id": "b",
        },
        {"line": 5, "code": "invalid_request", "message": model_message, "custom_id": "n"},
        {"line": 6, "code": "invalid_request", "message": model_message, "custom_id": "e"},
    ]


def test_each_cross_line_rule_names_the_first_line_and_the_custom_id() -> None:
    got = _problems(
        _req("ok"),
        _req("other-url", url="/v1/chat/completions"),
        _req(
            "other-model", body={"model": "dep-b", "messages": [{"role": "user", "content": "x"}]}
        ),
        _req("ok"),
    )
    assert got == [
        {
            "line": 2,
            "code": "url_mismatch",
            "message": "url '/v1/chat/completions' differs from '/chat/completions' on line 1: "
            "a batch runs one endpoint, put other endpoints in another file",
            "custom_id": "other-url",
        },
        {
            "line": 3,
            "code": "model_mismatch",
            "message": "deployment 'dep-b' differs from 'dep-a' on line 1: a batch runs on one "
            "deployment, use another file",
            "custom_id": "other-model",
        },
        {
            "line": 4,
            "code": "duplicate_custom_id",
            "message": "custom_id 'ok' is already used on line 1 (and again on line 4): "
            "custom_ids must be unique in a file",
            "custom_id": "ok",
        },
    ]
    assert _problems(_req("x"), deployments=("dep-1", "dep-2")) == [
        {
            "line": 1,
            "code": "model_not_found",
            "message": "deployment 'dep-a' is not one of the allowed deployments (dep-1, dep-2)",
            "custom_id": "x",
        },
    ]


def test_the_first_line_in_a_file_that_passes_sets_the_endpoint_even_on_line_one() -> None:
    # A blank first line: the first request is on line 2, and mismatches name line 2.
    got = _problems(b"", _req("a"), _req("b", url="/v1/chat/completions"))
    assert got[0]["message"] == (
        "url '/v1/chat/completions' differs from '/chat/completions' on line 2: "
        "a batch runs one endpoint, put other endpoints in another file"
    )


def test_a_line_must_leave_room_for_its_newline_in_a_batch() -> None:
    line = _req("a")
    at_limit = validate([line + b"\n"], ValidationOptions(100, len(line) + 1))
    assert at_limit.valid and at_limit.bytes == len(line) + 1
    over = validate([line + b"\n"], ValidationOptions(100, len(line)))
    assert over.problems[0].to_dict() == {
        "line": 1,
        "code": "line_too_large",
        "message": f"line 1 is {len(line)} bytes, more than a batch may hold ({len(line)}): "
        "shorten the request",
    }


def test_a_line_over_max_line_bytes_gets_the_message_that_names_the_setting() -> None:
    line = _req("a")
    report = validate([line + b"\n"], ValidationOptions(100, 10_000, max_line_bytes=len(line) - 1))
    assert [p.to_dict() for p in report.problems] == [
        {
            "line": 1,
            "code": "line_too_large",
            "message": f"line 1 is {len(line)} bytes, more than MAX_LINE_BYTES ({len(line) - 1}) "
            "allows: shorten the request (or raise MAX_LINE_BYTES, which costs memory)",
        }
    ]


def test_the_line_checker_refuses_the_bytes_of_a_line_as_long_as_a_batch() -> None:
    """validate() hands such a line over unread (LineTooLong); check() takes bytes too, and a
    line must stay one byte under the batch limit either way."""
    line = _req("a")
    problem = LineChecker(ValidationOptions(100, len(line))).check(4, line)
    assert isinstance(problem, Problem)
    assert problem.to_dict() == {
        "line": 4,
        "code": "line_too_large",
        "message": f"line 4 is {len(line)} bytes, more than a batch may hold ({len(line)}): "
        "shorten the request",
    }
    accepted = LineChecker(ValidationOptions(100, len(line) + 1)).check(4, line)
    assert isinstance(accepted, Request) and accepted.custom_id == "a"


def test_an_empty_file_is_one_problem_on_line_zero() -> None:
    report = validate([b"\n  \n"], OPTIONS)
    assert not report.valid
    assert report.problem_counts == {"empty_file": 1}
    assert [p.to_dict() for p in report.problems] == [
        {
            "line": 0,
            "code": "empty_file",
            "message": "the file has no requests (it is empty or only blank lines)",
        }
    ]
    assert report.table_columns is None


def test_problems_are_listed_up_to_the_limit_and_all_counted() -> None:
    lines = [_req(f"m{i}", method="GET") for i in range(3)]
    capped = validate([b"\n".join(lines)], ValidationOptions(100, 10_000, max_problems=2))
    assert [p.line for p in capped.problems] == [1, 2]
    assert capped.problem_counts == {"invalid_method": 3}
    capped = validate(
        [b"\n".join(lines)], ValidationOptions(100, 10_000, invalid_lines="skip", max_problems=3)
    )
    assert [p.code for p in capped.problems] == ["invalid_method"] * 3
    assert capped.problem_counts == {"invalid_method": 3, "empty_file": 1}
    skipped = validate([b"\n".join(lines)], ValidationOptions(100, 10_000, invalid_lines="skip"))
    assert skipped.problems[-1].to_dict() == {
        "line": 0,
        "code": "empty_file",
        "message": "no valid request: all 3 non-blank lines are invalid",
    }
    assert (skipped.endpoint, skipped.deployment, skipped.model_family) == (None, None, None)


def test_table_columns_come_from_the_schemas_in_first_seen_order() -> None:
    def schema(*names: str) -> dict[str, object]:
        properties = {n: {"type": "string"} for n in names}
        return {
            "type": "json_schema",
            "json_schema": {
                "name": "a",
                "strict": True,
                "schema": {
                    "type": "object",
                    "properties": properties,
                    "required": list(names),
                    "additionalProperties": False,
                },
            },
        }

    def line(custom_id: str, *names: str) -> bytes:
        body: dict[str, object] = {"model": "dep", "messages": [{"role": "user", "content": "q"}]}
        if names:
            body["response_format"] = schema(*names)
        return _req(custom_id, body=body)

    report = validate(
        [b"\n".join([line("a", "City", "Height"), line("b"), line("c", "Height", "Year")])],
        OPTIONS,
    )
    assert report.valid, report.problems
    assert report.table_columns == ["City", "Height", "Year"]


def _schema(strict: object) -> dict[str, object]:
    return {
        "name": "s",
        "strict": strict,
        "schema": {
            "type": "object",
            "properties": {"a": {"type": "string"}},
            "required": ["a"],
            "additionalProperties": False,
        },
    }


def _chat_format(custom_id: str, strict: object) -> bytes:
    fmt = {"type": "json_schema", "json_schema": _schema(strict)}
    body = {"model": "dep-a", "messages": [{"role": "user", "content": "hi"}]}
    return _req(custom_id, body={**body, "response_format": fmt})


def test_a_format_equal_to_the_last_one_but_for_its_json_types_is_checked_again() -> None:
    """The last format's outcome is reused only for the same JSON: `"strict": 1` equals
    `"strict": true` in Python (1 == True) but is not a boolean, and is reported each time."""
    got = _problems(
        _chat_format("t1", True),
        _chat_format("one", 1),
        _chat_format("t2", True),
        _chat_format("one-again", 1),
    )
    assert [(p["line"], p["code"], p["custom_id"]) for p in got] == [
        (2, "invalid_schema", "one"),
        (4, "invalid_schema", "one-again"),
    ]
    assert got[0]["message"] == "body.response_format.json_schema.strict must be true or false"


def test_the_same_format_json_in_another_place_is_checked_for_that_place() -> None:
    """Chat nests the schema under json_schema, /responses does not: the same JSON is valid as
    one and not as the other, whichever comes first."""
    fmt = {"type": "json_schema", "json_schema": _schema(True)}
    chat = _chat_format("c", True)
    responses = orjson.dumps(
        {
            "custom_id": "r",
            "method": "POST",
            "url": "/responses",
            "body": {"model": "dep-a", "input": "hi", "text": {"format": fmt}},
        }
    )
    for first, second in ((chat, responses), (responses, chat)):
        outcomes = [check_line(1, first), check_line(2, second)]
        kinds = {o.custom_id: isinstance(o, Problem) for o in outcomes}
        assert kinds == {"c": False, "r": True}
