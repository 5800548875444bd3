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


@settings(max_examples=60, deadline=None)
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
