"""Sorting batch output: every request lands in exactly one place; retryable ones go back."""

from __future__ import annotations

import io

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from batching.settings import Settings
from batching.steps.cost import estimate_cost, price_for
from batching.steps.ordering import Positions
from batching.steps.results import collect, is_retryable
from batching.steps.tables import answer_text, write_table


def _input(ids):
    return b"".join(
        orjson.dumps(
            {
                "custom_id": i,
                "method": "POST",
                "url": "/chat/completions",
                "body": {"model": "m", "messages": [{"role": "user", "content": "hi"}]},
            }
        )
        + b"\n"
        for i in ids
    )


def ok(cid, content="fine", usage=(10, 5)):
    return orjson.dumps(
        {
            "id": "r",
            "custom_id": cid,
            "error": None,
            "response": {
                "status_code": 200,
                "request_id": "q",
                "body": {
                    "model": "gpt-4o-2024-08-06",
                    "choices": [{"message": {"role": "assistant", "content": content}}],
                    "usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1]},
                },
            },
        }
    )


def http_fail(cid, status, code="server_error"):
    return orjson.dumps(
        {
            "id": "r",
            "custom_id": cid,
            "error": None,
            "response": {
                "status_code": status,
                "request_id": "q",
                "body": {"error": {"message": f"failed {status}", "type": code, "code": code}},
            },
        }
    )


def expired(cid):
    return orjson.dumps(
        {
            "id": "r",
            "custom_id": cid,
            "response": None,
            "error": {"code": "batch_expired", "message": "expired"},
        }
    )


class Keyed:
    """A keyed sink in memory: (position, line) pairs as collect adds them."""

    def __init__(self):
        self.lines = []

    def add(self, position, line):
        self.lines.append((position, line))


def run(output_lines, error_lines, ids, resubmit):
    results, failures, retry = Keyed(), Keyed(), Keyed()
    files = [
        [b"\n".join(output_lines) + b"\n"],
        [b"\n".join(error_lines) + b"\n"] if error_lines else [],
    ]
    outcome = collect(
        files,
        [_input(ids)],
        results,
        failures,
        retry,
        positions=Positions.of_input([_input(ids)]),
        round_no=1,
        batch_id="batch_1",
        resubmit=resubmit,
    )
    for sink in (results, failures, retry):  # each line carries its request's input position
        assert [p for p, _ in sink.lines] == [
            ids.index(orjson.loads(x)["custom_id"]) for _, x in sink.lines
        ]
    parse = lambda sink: [orjson.loads(x) for _, x in sink.lines]  # noqa: E731
    return outcome, parse(results), parse(failures), parse(retry)


def test_sorts_success_retryable_permanent_and_missing():
    ids = ["a", "b", "c", "d", "e"]
    outcome, results, failures, retry = run(
        [ok("a"), http_fail("b", 500)],
        [http_fail("c", 400, "content_filter"), expired("d")],
        ids,
        True,
    )
    assert [r["custom_id"] for r in results] == ["a"]
    assert [(f["custom_id"], f["code"], f["round"], f["retryable"]) for f in failures] == [
        ("c", "content_filter", 1, False)
    ]
    assert sorted(r["custom_id"] for r in retry) == ["b", "d", "e"]  # 5xx, expired, never ran
    assert retry[0]["body"]["model"] == "m"  # the original input line, ready to resubmit
    assert (outcome.succeeded, outcome.failed, outcome.retry) == (1, 1, 3)
    assert outcome.usage.to_dict() == {
        "prompt": 10,
        "completion": 5,
        "total": 15,
        "model": "gpt-4o-2024-08-06",
    }


def test_last_round_keeps_retryable_failures_as_final():
    outcome, _, failures, retry = run(
        [ok("a"), http_fail("b", 429, "rate_limit")], [], ["a", "b", "c"], False
    )
    assert not retry
    assert sorted((f["custom_id"], f["code"]) for f in failures) == [
        ("b", "rate_limit"),
        ("c", "not_run"),
    ]
    assert outcome.failed == 2


def test_repeated_output_line_counts_once():
    outcome, results, _, _ = run([ok("a"), ok("a")], [], ["a"], True)
    assert outcome.succeeded == 1 and len(results) == 1


@settings(deadline=None)  # examples: the profile (tests/conftest.py)
@given(
    st.lists(
        st.sampled_from(["ok", "500", "429", "400", "expired", "missing"]), min_size=1, max_size=40
    ),
    st.booleans(),
)
def test_every_request_lands_exactly_once(kinds, resubmit):
    ids = [f"t{i}" for i in range(len(kinds))]
    out, err = [], []
    for cid, kind in zip(ids, kinds, strict=True):
        if kind == "ok":
            out.append(ok(cid))
        elif kind in ("500", "429", "400"):
            (out if kind == "500" else err).append(http_fail(cid, int(kind)))
        elif kind == "expired":
            err.append(expired(cid))
    _, results, failures, retry = run(out or [b""], err, ids, resubmit)
    placed = (
        [r["custom_id"] for r in results]
        + [f["custom_id"] for f in failures]
        + [r["custom_id"] for r in retry]
    )
    assert sorted(placed) == sorted(ids)
    if not resubmit:
        assert not retry


def test_retryable_classification():
    assert is_retryable(500, "x") and is_retryable(429, "x") and is_retryable(408, "x")
    assert is_retryable(None, "batch_expired")
    assert not is_retryable(400, "content_filter") and not is_retryable(404, "x")


def test_table_has_a_row_per_request_and_schema_columns():
    results = [
        [
            ok("t0", '{"City": "Dubai", "HeightInFeet": "2717"}')
            + b"\n"
            + ok("t1", "not json")
            + b"\n"
        ]
    ]
    failures = [[orjson.dumps({"custom_id": "t2", "code": "x"}) + b"\n"]]
    out = io.BytesIO()
    rows = write_table(["City", "HeightInFeet"], results, failures, out)
    assert rows == 3
    assert out.getvalue().decode().splitlines() == [
        "custom_id,City,HeightInFeet",
        "t0,Dubai,2717",
        "t1,,",
        "t2,,",
    ]


def test_answer_text_reads_responses_api_objects():
    body = {"output": [{"type": "message", "content": [{"type": "output_text", "text": "{}"}]}]}
    assert answer_text(body) == "{}"


def test_cost_uses_longest_prefix_and_batch_discount():
    s = Settings.from_env(
        {"AZURE_OPENAI_ENDPOINT": "http://x", "BATCH_STORAGE": "UseDevelopmentStorage=true"}
    )
    assert price_for(s.model_prices, "gpt-4o-mini-2024-07-18")[0] == "gpt-4o-mini"
    assert price_for(s.model_prices, "gpt-4o-2024-08-06")[0] == "gpt-4o"
    cost = estimate_cost(s, "gpt-4o-2024-08-06", {"prompt": 1_000_000, "completion": 1_000_000})
    assert cost["total"] == (2.5 + 10.0) * 0.5
    assert estimate_cost(s, "unknown-model", {"prompt": 1})["total"] is None


def _failed_line(cid, response, error=None):
    return orjson.dumps({"id": "r", "custom_id": cid, "response": response, "error": error})


def test_failure_code_status_and_reason_come_from_their_own_fields():
    lines = [
        # code and type differ: the code is the code
        _failed_line(
            "a",
            {
                "status_code": 400,
                "body": {
                    "error": {
                        "code": "content_filter",
                        "type": "invalid_request_error",
                        "message": "filtered",
                    }
                },
            },
        ),
        # no code: the type stands in
        _failed_line("b", {"status_code": 400, "body": {"error": {"type": "invalid_prompt"}}}),
        # no error object: the HTTP status names it
        _failed_line("c", {"status_code": 404, "body": {}}),
        # an error file line: no response, the error at the top
        _failed_line("d", None, {"code": "invalid_value", "message": "bad value"}),
        # nothing at all
        _failed_line("e", None, {}),
    ]
    outcome, results, failures, retry = run(lines, [], list("abcde"), False)
    assert not results and not retry
    got = {f["custom_id"]: (f["status_code"], f["code"], f["reason"]) for f in failures}
    assert got == {
        "a": (400, "content_filter", "filtered"),
        "b": (400, "invalid_prompt", "request failed"),
        "c": (404, "http_404", "request failed"),
        "d": (None, "invalid_value", "bad value"),
        "e": (None, "error", "request failed"),
    }
    assert all(f["retryable"] is False for f in failures)
    assert all((f["round"], f["batch_id"]) == (1, "batch_1") for f in failures)
    assert outcome.failed == 5
    assert outcome.failure_codes == {
        "content_filter": 1,
        "invalid_prompt": 1,
        "http_404": 1,
        "invalid_value": 1,
        "error": 1,
    }


def test_retryable_failures_go_back_as_their_input_lines_and_count_by_code():
    lines = [http_fail("a", 500), http_fail("b", 429, "rate_limit_exceeded"), ok("c")]
    outcome, results, failures, retry = run(lines, [], ["a", "b", "c", "d"], True)
    assert [r["custom_id"] for r in results] == ["c"]
    assert failures == []
    assert [r["custom_id"] for r in retry] == ["a", "b", "d"]  # d never ran
    assert retry[0] == orjson.loads(_input(["a"]))
    assert (outcome.succeeded, outcome.failed, outcome.retry) == (1, 0, 3)
    assert outcome.failure_codes == {}
    assert outcome.usage.to_dict() == {
        "prompt": 10,
        "completion": 5,
        "total": 15,
        "model": "gpt-4o-2024-08-06",
    }


def test_requests_that_never_ran_fail_as_not_run_on_the_last_round():
    outcome, _, failures, retry = run([ok("a")], [], ["a", "b"], False)
    assert retry == []
    assert failures == [
        {
            "custom_id": "b",
            "round": 1,
            "batch_id": "batch_1",
            "status_code": None,
            "code": "not_run",
            "reason": "the batch ended before this request ran",
            "retryable": True,
        }
    ]
    assert outcome.to_dict()["failure_codes"] == {"not_run": 1}


def test_usage_adds_up_chat_and_responses_shapes():
    responses_shape = orjson.dumps(
        {
            "custom_id": "r",
            "error": None,
            "response": {
                "status_code": 200,
                "body": {"model": "gpt-4o", "usage": {"input_tokens": 7, "output_tokens": 2}},
            },
        }
    )
    no_usage = orjson.dumps(
        {"custom_id": "n", "error": None, "response": {"status_code": 200, "body": {"usage": {}}}}
    )
    outcome, results, _, _ = run(
        [ok("a", usage=(10, 5)), ok("b", usage=(1, 3)), responses_shape, no_usage],
        [],
        ["a", "b", "r", "n"],
        True,
    )
    assert len(results) == 4
    assert outcome.to_dict() == {
        "succeeded": 4,
        "failed": 0,
        "retry": 0,
        "usage": {"prompt": 18, "completion": 10, "total": 28, "model": "gpt-4o-2024-08-06"},
        "failure_codes": {},
    }


def test_odd_shapes_of_failed_lines_still_give_a_code():
    lines = [
        # a response that is not an object: the top-level error speaks
        _failed_line("a", "gateway said no", {"code": "bad_gateway", "message": "down"}),
        # a body that is not an object: the status names it
        _failed_line("b", {"status_code": 502, "body": "Bad Gateway"}),
        # an error that is not an object: the status names it
        _failed_line("c", {"status_code": 418, "body": {}}, "teapot"),
    ]
    outcome, _, failures, _ = run(lines, [], ["a", "b", "c"], False)
    got = {f["custom_id"]: (f["status_code"], f["code"], f["reason"]) for f in failures}
    assert got == {
        "a": (None, "bad_gateway", "down"),
        "b": (502, "http_502", "request failed"),
        "c": (418, "http_418", "request failed"),
    }
    assert outcome.failed == 3


def test_success_is_a_2xx_status_without_an_error():
    redirect = orjson.dumps(
        {"custom_id": "m", "error": None, "response": {"status_code": 300, "body": {}}}
    )
    with_error = orjson.dumps(
        {
            "custom_id": "e",
            "error": {"code": "odd", "message": "2xx with an error"},
            "response": {"status_code": 299, "body": {}},
        }
    )
    edge = orjson.dumps(
        {"custom_id": "k", "error": None, "response": {"status_code": 299, "body": {}}}
    )
    outcome, results, failures, _ = run([redirect, with_error, edge], [], ["m", "e", "k"], False)
    assert [r["custom_id"] for r in results] == ["k"]
    assert sorted((f["custom_id"], f["code"]) for f in failures) == [
        ("e", "odd"),
        ("m", "http_300"),
    ]
    assert outcome.succeeded == 1


def test_a_5xx_failure_is_retryable_whatever_its_code_and_codes_are_counted():
    lines = [
        http_fail("a", 503, "odd_code"),
        http_fail("b", 503, "odd_code"),
        http_fail("c", 400, "odd_code"),
    ]
    outcome, _, failures, _ = run(lines, [], ["a", "b", "c"], False)
    assert {f["custom_id"]: f["retryable"] for f in failures} == {"a": True, "b": True, "c": False}
    assert outcome.failure_codes == {"odd_code": 3}
    # resubmitting: the 5xx ones go back (by status, though the code is unknown), the 400 fails
    outcome, _, failures, retry = run(lines, [], ["a", "b", "c"], True)
    assert [r["custom_id"] for r in retry] == ["a", "b"]
    assert [f["custom_id"] for f in failures] == ["c"]


def test_blank_and_repeated_lines_do_not_stop_the_sorting():
    out = [ok("a"), b"", b"   ", ok("a"), ok("b"), ok("c")]
    outcome, results, _, retry = run(out, [], ["a", "x", "b", "y", "c"], True)
    assert [r["custom_id"] for r in results] == ["a", "b", "c"]
    assert [r["custom_id"] for r in retry] == ["x", "y"]
    assert (outcome.succeeded, outcome.retry) == (3, 2)
    # the last round: both never ran, each gets its own not_run failure
    _, _, failures, _ = run(out, [], ["a", "x", "b", "y", "c"], False)
    assert [(f["custom_id"], f["code"]) for f in failures] == [("x", "not_run"), ("y", "not_run")]


def test_blank_lines_in_the_chunk_input_are_skipped():
    results, failures, retry = Keyed(), Keyed(), Keyed()
    chunk = _input(["a"]) + b"\n  \n" + _input(["b", "c"])
    outcome = collect(
        [[ok("a") + b"\n"]],
        [chunk],
        results,
        failures,
        retry,
        positions=Positions.of_input([chunk]),
        round_no=2,
        batch_id="batch_2",
        resubmit=True,
    )
    assert [orjson.loads(x)["custom_id"] for _, x in retry.lines] == ["b", "c"]
    assert (outcome.succeeded, outcome.retry, outcome.failed) == (1, 2, 0)


class Watched:
    """A chunk input that records whether it was read."""

    def __init__(self, data):
        self.data, self.read = data, False

    def __iter__(self):
        self.read = True
        yield self.data


def _collect_watched(outputs, ids, resubmit):
    chunk = Watched(_input(ids))
    outcome = collect(
        [[b"\n".join(outputs) + b"\n"]],
        chunk,
        Keyed(),
        Keyed(),
        Keyed(),
        positions=Positions.of_input([_input(ids)]),
        round_no=0,
        batch_id="b",
        resubmit=resubmit,
    )
    return outcome, chunk.read


def test_the_input_is_read_back_only_when_a_request_needs_its_line():
    # every request answered, nothing to resubmit: the chunk input is not downloaded again
    outcome, read = _collect_watched([ok("a"), http_fail("b", 400, "content_filter")], "ab", True)
    assert (outcome.succeeded, outcome.failed, read) == (1, 1, False)
    # a retryable failure needs its input line; so does a request the outputs lack
    assert _collect_watched([ok("a"), http_fail("b", 500)], "ab", True)[1]
    outcome, read = _collect_watched([ok("a"), ok("zz")], "ab", False)  # zz: not in the input
    assert read and outcome.failure_codes == {"not_run": 1}
    # a repeated line counts once: "b" is still missing
    outcome, read = _collect_watched([ok("a"), ok("a")], "ab", True)
    assert read and outcome.retry == 1
