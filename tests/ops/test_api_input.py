"""The runs API's checks and public answers as plain functions: blob paths, list queries, error
shaping, spreadsheet-safe cells. The HTTP side is in test_api.py."""

from __future__ import annotations

import csv
import io

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batching.ops import api, runs
from batching.steps.tables import safe_cell
from batching.storage.blobpaths import BlobPathError, check_blob_path

FAST = settings(max_examples=300, deadline=None)


@pytest.mark.parametrize(
    "path",
    [
        "a.jsonl",
        "team/q1/file.jsonl",
        "xss/ünï😀 [bold]b[/bold] [/x].jsonl",
        "a" * 1024,
        "/".join(["d"] * 254),
        "..a/b..c/.hidden",
    ],
)
def test_blob_names_that_are_kept(path):
    assert check_blob_path(path) == path


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("", "empty"),
        ("../../etc/passwd.jsonl", "'..' segment"),
        ("./a.jsonl", "'.' segment"),
        ("a/../b.jsonl", "'..' segment"),
        ("a//b.jsonl", "empty segment"),
        ("a/", "empty segment"),
        ("/a.jsonl", "starts with '/'"),
        ("a\\b.jsonl", "backslash"),
        ("a\x00b", "U+0000"),
        ("a\nb", "U+000A"),
        ("a\x7fb", "U+007F"),
        ("a\x85b", "U+0085"),
        ("dir./a.jsonl", "ending in '.'"),
        ("a" * 1025, "1,025 characters"),
        ("/".join(["d"] * 255), "255 segments"),
        ("a\ud800b", "not valid Unicode"),
    ],
)
def test_blob_names_that_are_refused(path, why):
    with pytest.raises(BlobPathError, match=why.replace(".", r"\.").replace("+", r"\+")):
        check_blob_path(path)


@FAST
@given(st.text(max_size=40))
def test_a_kept_path_has_no_segment_a_url_would_resolve(path):
    try:
        check_blob_path(path)
    except BlobPathError as e:
        assert "\n" not in str(e) and len(str(e)) < 200
        return
    segments = path.split("/")
    assert not path.startswith("/") and "\\" not in path
    assert all(s not in ("", ".", "..") and not s.endswith(".") for s in segments)
    assert all(c.isprintable() or not (ord(c) < 32 or 127 <= ord(c) < 160) for c in path)


def test_list_query_names_the_bad_parameter():
    assert api.list_query({}) == api.ListQuery(None, None, 50, None, None, None)
    cursor = "8264438400000_data-0123456789abcdef"  # a runs-index key, as `next` gives them
    query = {
        "status": "invalid",
        "limit": "200",
        "cursor": cursor,
        "code": "k",
        "since": "2025-01-01",
    }
    assert api.list_query(query) == api.ListQuery("invalid", None, 200, cursor, "2025-01-01", None)
    for params, field in (
        ({"status": "bogus"}, "status"),
        ({"limit": "-5"}, "limit"),
        ({"limit": " 5"}, "limit"),
        ({"limit": "5_0"}, "limit"),
        ({"cursor": "x"}, "cursor"),
        ({"cursor": "3"}, "cursor"),
        ({"until": "soon"}, "until"),
        ({"prefix": "p" * 1025}, "prefix"),
    ):
        with pytest.raises(api.Problem) as caught:
            api.list_query(params)
        assert (caught.value.status, caught.value.field) == (400, field)


def test_start_path_body_checks():
    assert api.start_path(orjson.dumps({"path": "a/b.jsonl"})) == "a/b.jsonl"
    for body, status, field in (
        (b"", 400, "path"),
        (b"[1]", 400, "path"),
        (b"{", 400, "body"),
        (orjson.dumps({"path": None}), 400, "path"),
        (orjson.dumps({"path": "a/../b.jsonl"}), 400, "path"),
        (orjson.dumps({"path": "a.txt"}), 400, "path"),
        (b" " * (api.MAX_BODY_BYTES + 1), 413, "body"),
    ):
        with pytest.raises(api.Problem) as caught:
            api.start_path(body)
        assert (caught.value.status, caught.value.field) == (status, field), body[:30]


FAILED_OUTPUT = (
    "Orchestrator function 'run_file' failed: Activity function 'collect_batch' failed: "
    "ResourceModifiedError: The condition specified using HTTP conditional header(s) is not met.\n"
    "RequestId:0f1e2d3c-0000-1111-2222-333344445555\nTime:2026-12-02T10:00:00.0000000Z\n"
    "ErrorCode:ConditionNotMet\n"
    'Traceback (most recent call last):\n  File "/home/site/wwwroot/batching/results.py", '
    "line 120, in collect\n"
)


def test_a_failed_run_shows_a_code_and_one_line_reason_only():
    instance = {
        "instanceId": "file-0123456789abcdef",
        "runtimeStatus": "Failed",
        "output": FAILED_OUTPUT,
        "customStatus": {"phase": "running"},
    }
    error = runs.summary(instance)["error"]
    assert error["code"] == "internal_error"
    assert "collect_batch" in error["reason"] and "ResourceModifiedError" in error["reason"]
    text = orjson.dumps(runs.summary(instance)).decode()
    for leak in ("Traceback", "/home/site", "RequestId", "0f1e2d3c", "ConditionNotMet"):
        assert leak not in text


def test_a_rejected_run_counts_not_run_not_pending():
    instance = {
        "instanceId": "bad-0123456789abcdef",
        "runtimeStatus": "Completed",
        "output": {"status": "invalid"},
        "customStatus": {
            "phase": "rejected",
            "requests": {"total": 4, "succeeded": 0, "failed": 0, "pending": 4},
        },
    }
    counts = runs.summary(instance)["requests"]
    assert counts == {"total": 4, "succeeded": 0, "failed": 0, "pending": 0, "not_run": 4}


@pytest.mark.parametrize(
    ("cell", "shown"),
    [
        ("=1+2", "'=1+2"),
        ("+SUM(A1)", "'+SUM(A1)"),
        ("-2+3", "'-2+3"),
        ("@cmd", "'@cmd"),
        ("\t=x", "'\t=x"),
        ("\r=x", "'\r=x"),
        ("-3.5", "-3.5"),
        ("+7", "+7"),
        ("1e-3", "1e-3"),
        ("plain", "plain"),
        ("'=already", "'=already"),
        ("", ""),
    ],
)
def test_safe_cell(cell, shown):
    assert safe_cell(cell) == shown
    assert safe_cell(safe_cell(cell)) == shown  # idempotent: an exported table.csv stays equal


@FAST
@given(st.text(max_size=20))
def test_no_safe_cell_starts_a_formula(cell):
    shown = safe_cell(cell)
    out = io.StringIO()
    csv.writer(out).writerow([shown])
    (back,) = next(csv.reader(io.StringIO(out.getvalue())))
    assert back == shown
    if shown[:1] in ("=", "+", "-", "@", "\t", "\r"):
        float(shown)  # only a plain number may start so
