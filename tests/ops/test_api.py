"""The runs API through the local stack: list, detail, start, cancel, retry and its error answers.

One stack serves the module; each test works under a folder of its own, and a test that changes
the emulator's scenario puts it back.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

import httpx
import orjson
import pytest
from azure.core.exceptions import ResourceExistsError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batching.ops.runs import run_input
from tests.support.ops import api, custom_ids, get, in_progress, post, run, run_id_of, wait_run
from tests.support.stack import ROOT, local_stack, requests_file


@pytest.fixture(scope="module")
def stack(azurite, tmp_path_factory):
    # A quota failure waits about 3 s, then tries once more before the run fails.
    env = {
        "QUOTA_RETRY_ATTEMPTS": "1",
        "QUOTA_RETRY_INITIAL_SECONDS": "3",
        "QUOTA_RETRY_MAX_SECONDS": "3",
    }
    with local_stack(azurite, tmp_path_factory.mktemp("api"), extra_env=env) as s:
        yield s


@pytest.fixture
def scenario(stack):
    """Set the emulator's scenario for one test; cleared afterwards."""
    yield stack.scenario
    stack.scenario(next_batches=[], batch_duration=None, line_failure_rate=0.0)


def test_list_filters_status_and_folder_and_pages_newest_first(stack):
    for name in ("one", "two", "three"):
        stack.drop(f"list/good/{name}.jsonl", requests_file(2, prefix=name))
    stack.drop("list/bad/broken.jsonl", b'{"custom_id": "x", "method": "POST"\n')
    stack.drop("elsewhere/other.jsonl", requests_file(1))
    ids = {
        s: run_id_of(stack, s)
        for s in (
            "list/good/one.jsonl",
            "list/good/two.jsonl",
            "list/good/three.jsonl",
            "list/bad/broken.jsonl",
            "elsewhere/other.jsonl",
        )
    }
    for run_id in ids.values():
        wait_run(stack, run_id)

    listed = get(stack, "runs", prefix="list/").json()
    assert listed["count"] == len(listed["runs"]) == 4 and listed["next"] is None
    assert {r["id"] for r in listed["runs"]} == {v for k, v in ids.items() if k.startswith("list/")}
    created = [r["created"] for r in listed["runs"]]
    assert created == sorted(created, reverse=True)

    good = get(stack, "runs", prefix="list/good/", status="completed").json()
    assert sorted(r["source"] for r in good["runs"]) == [
        "list/good/one.jsonl",
        "list/good/three.jsonl",
        "list/good/two.jsonl",
    ]
    assert all(r["progress"] == 1.0 and r["requests"]["succeeded"] == 2 for r in good["runs"])
    assert all(r["tokens"]["total"] > 0 and r["cost"]["total"] > 0 for r in good["runs"])
    invalid = get(stack, "runs", prefix="list/", status="invalid").json()
    assert [r["id"] for r in invalid["runs"]] == [ids["list/bad/broken.jsonl"]]
    assert get(stack, "runs", prefix="list/", status="running").json()["runs"] == []

    first = get(stack, "runs", prefix="list/", limit=3).json()
    assert len(first["runs"]) == 3 and first["next"] is not None
    second = get(stack, "runs", prefix="list/", limit=3, cursor=first["next"]).json()
    assert len(second["runs"]) == 1 and second["next"] is None
    assert [r["id"] for r in first["runs"] + second["runs"]] == [r["id"] for r in listed["runs"]]

    assert get(stack, "runs", limit="many").status_code == 400
    assert get(stack, "runs", cursor="x").status_code == 400
    assert get(stack, "runs", since="yesterday").status_code == 400


def test_detail_has_chunks_batches_outputs_and_metadata(stack):
    stack.drop("detail/file.jsonl", requests_file(3, prefix="d"))
    run_id = run_id_of(stack, "detail/file.jsonl")
    detail = wait_run(stack, run_id)
    assert detail["status"] == "completed" and detail["phase"] == "done"
    assert detail["requests"] == {"total": 3, "succeeded": 3, "failed": 0, "pending": 0}
    assert [c["state"] for c in detail["chunks"]] == ["done"]
    meta = detail["metadata"]
    assert meta["run_id"] == run_id and meta["status"] == "completed"
    assert len(meta["batches"]) == 1 and meta["batches"][0]["status"] == "completed"
    assert meta["tokens"]["usage"]["total"] == detail["tokens"]["total"] > 0
    assert meta["cost"]["total"] == detail["cost"]["total"] > 0
    assert meta["cost"]["batch_discount"] == 0.5
    results = detail["outputs"]["results"]
    assert results["path"] == f"detail/file/{run_id}/results.jsonl"
    assert sorted(custom_ids(stack.read("output", results["path"]))) == ["d-0", "d-1", "d-2"]

    missing = get(stack, "runs/no-such-run")
    assert missing.status_code == 404 and "no-such-run" in missing.json()["error"]


def test_start_a_run_for_a_blob_already_in_the_input_container(stack):
    stack.drop("started/by-post.jsonl", requests_file(2, prefix="p"), deliver=False)
    assert get(stack, "runs", prefix="started/").json()["runs"] == []  # no event, no run

    answer = post(stack, "runs", {"path": "started/by-post.jsonl"})
    assert answer.status_code == 202, answer.text
    run_id = answer.json()["id"]
    assert answer.json()["started"] is True
    again = post(stack, "runs", {"path": "started/by-post.jsonl"})  # same upload: same run
    assert again.status_code == 200 and again.json() == {"id": run_id, "started": False}
    detail = wait_run(stack, run_id)
    assert detail["status"] == "completed" and detail["source"] == "started/by-post.jsonl"
    assert len(get(stack, "runs", prefix="started/").json()["runs"]) == 1

    assert post(stack, "runs", {"path": "started/none.jsonl"}).status_code == 404
    slash = post(stack, "runs", {"path": "/started/by-post.jsonl"})  # not relative: refused
    assert slash.status_code == 400 and slash.json()["field"] == "path"
    assert post(stack, "runs", {"path": "started/notes.txt"}).status_code == 400
    assert post(stack, "runs", {"file": "x.jsonl"}).status_code == 400
    assert post(stack, "runs", [1, 2]).status_code == 400


def test_cancel_mid_run_writes_partial_results_and_metadata(stack, scenario):
    scenario(batch_duration=30)
    stack.drop("cancel/long.jsonl", requests_file(6, prefix="c"))
    run_id = run_id_of(stack, "cancel/long.jsonl")
    wait_run(stack, run_id, in_progress, timeout=20)

    answer = post(stack, f"runs/{run_id}/cancel")
    assert answer.status_code == 202 and answer.json() == {"id": run_id, "cancelling": True}
    detail = wait_run(stack, run_id, timeout=20)  # far sooner than the 30 s batch

    assert detail["status"] == "cancelled"
    counts = detail["requests"]
    assert 1 <= counts["succeeded"] < 6 and counts["succeeded"] + counts["failed"] == 6
    meta = detail["metadata"]
    assert meta["status"] == "cancelled" and meta["batches"][0]["status"] == "cancelled"
    assert meta["requests"]["succeeded"] == counts["succeeded"]
    folder = f"cancel/long/{run_id}"
    done = custom_ids(stack.read("output", f"{folder}/results.jsonl"))
    failed = custom_ids(stack.read("output", f"{folder}/errors.jsonl"))
    assert len(done) == counts["succeeded"]
    assert sorted(done + failed) == [f"c-{i}" for i in range(6)]
    assert f"{folder}/input.jsonl" in stack.names("output")

    again = post(stack, f"runs/{run_id}/cancel")
    assert again.status_code == 409 and "cancelled" in again.json()["error"]
    assert post(stack, "runs/no-such-run/cancel").status_code == 404


def test_cancel_while_no_batch_exists_ends_the_run(stack, scenario):
    """A cancel while the chunk waits to submit again (after token_limit_exceeded)."""
    scenario(next_batches=["token_limit_fail_fast"] * 2)
    stack.drop("cancel/early.jsonl", requests_file(2, prefix="e"))
    run_id = run_id_of(stack, "cancel/early.jsonl")
    waiting = wait_run(
        stack, run_id, lambda d: (d["waiting"] or "").startswith("quota"), timeout=15, interval=0.05
    )
    assert waiting["chunks"][0]["state"] == "submitting"
    assert post(stack, f"runs/{run_id}/cancel").status_code == 202
    detail = wait_run(stack, run_id, timeout=15)
    assert detail["status"] == "cancelled", detail
    assert detail["metadata"]["batches"] == []  # nothing was submitted
    assert detail["metadata"]["requests"]["total"] == 2
    assert detail["requests"]["succeeded"] + detail["requests"]["failed"] == 2
    # Its upload never became a batch, yet cleanup deleted it too.
    from openai import AzureOpenAI

    aoai = AzureOpenAI(
        azure_endpoint=stack.emulator.endpoint, api_key="test-key", api_version="2024-10-21"
    )
    assert not [f.id for f in aoai.files.list(purpose="batch") if f.filename.startswith(run_id)]


def test_retry_an_invalid_run_validates_its_kept_input_again(stack):
    stack.drop("retry/bad.jsonl", b"not json at all\n")
    run_id = run_id_of(stack, "retry/bad.jsonl")
    assert wait_run(stack, run_id)["status"] == "invalid"
    assert f"retry/bad/{run_id}/input.jsonl" in stack.names("error")
    assert "retry/bad.jsonl" not in stack.names("input")

    answer = post(stack, f"runs/{run_id}/retry")
    assert answer.status_code == 202, answer.text
    new_id = answer.json()["id"]
    assert new_id != run_id and answer.json()["retry_of"] == run_id
    detail = wait_run(stack, new_id)
    assert detail["status"] == "invalid" and detail["source"] == "retry/bad.jsonl"
    assert detail["report"]["problem_counts"] == {"invalid_json_line": 1}
    assert f"retry/bad/{new_id}/input.jsonl" in stack.names("error")
    # The copy's BlobCreated event, delivered late, lands on the same run.
    stack.watcher.poll_once()
    assert len(get(stack, "runs", prefix="retry/bad.jsonl").json()["runs"]) == 2

    assert post(stack, "runs/no-such-run/retry").status_code == 404


def test_retry_after_quota_exhaustion_completes(stack, scenario):
    scenario(next_batches=["token_limit_fail_fast"] * 2)
    stack.drop("retry/quota.jsonl", requests_file(3, prefix="q"))
    run_id = run_id_of(stack, "retry/quota.jsonl")
    failed = wait_run(stack, run_id)
    assert failed["status"] == "failed", failed
    assert "token_limit_exceeded" in failed["metadata"]["reason"]
    assert f"retry/quota/{run_id}/input.jsonl" in stack.names("error")
    report = orjson.loads(stack.read("error", f"retry/quota/{run_id}/report.json"))
    assert report["status"] == "failed"

    answer = post(stack, f"runs/{run_id}/retry")
    assert answer.status_code == 202, answer.text
    detail = wait_run(stack, answer.json()["id"])
    assert detail["status"] == "completed"
    assert detail["requests"] == {"total": 3, "succeeded": 3, "failed": 0, "pending": 0}
    conflict = post(stack, f"runs/{answer.json()['id']}/retry")
    assert conflict.status_code == 409 and "completed" in conflict.json()["error"]


def test_each_retry_of_a_run_whose_input_stayed_in_place_is_a_new_run(stack, scenario):
    """A terminated run never moved its input: every retry starts from the same upload."""
    scenario(batch_duration=30)
    stack.drop("retry/again.jsonl", requests_file(1, prefix="a"))
    ids = [run_id_of(stack, "retry/again.jsonl")]
    for _ in range(2):
        wait_run(stack, ids[-1], lambda d: d["status"] == "running", timeout=20)
        stack.host.terminate(ids[-1], "stopped by the test")
        assert wait_run(stack, ids[-1], timeout=20)["status"] == "terminated"
        answer = post(stack, f"runs/{ids[-1]}/retry")
        assert answer.status_code == 202, answer.text
        assert answer.json()["retry_of"] == ids[-1]
        ids.append(answer.json()["id"])
    assert len(set(ids)) == 3, ids
    assert wait_run(stack, ids[-1], lambda d: d["status"] == "running", timeout=20)
    assert "retry/again.jsonl" in stack.names("input")


def test_a_running_run_keeps_its_arrival_time_across_its_executions(stack, scenario):
    """Each status check ends in an execution of its own, whose start is the status's
    createdTime; the run's `created`, in the list and the detail, stays when its file came."""
    scenario(batch_duration=30)
    stack.drop("created/long.jsonl", requests_file(1))
    run_id = run_id_of(stack, "created/long.jsonl")
    deadline = time.monotonic() + 20
    while stack.scheduled(run_id).count("check_batch") < 2:  # checks 1-2 s apart
        assert time.monotonic() < deadline, stack.scheduled(run_id)
        time.sleep(0.2)
    status = stack.host.get_status(run_id)
    received = run_input(status)["received_at"]
    assert status["createdTime"] != received
    listed = get(stack, "runs", prefix="created/").json()["runs"]
    assert [(r["status"], r["created"]) for r in listed] == [("running", received)]
    assert run(stack, run_id)["created"] == received
    assert post(stack, f"runs/{run_id}/cancel").status_code == 202
    assert wait_run(stack, run_id, timeout=20)["status"] == "cancelled"


def test_retry_or_cancel_of_a_running_run_is_a_conflict(stack, scenario):
    scenario(batch_duration=30)
    stack.drop("conflict/long.jsonl", requests_file(1))
    run_id = run_id_of(stack, "conflict/long.jsonl")
    assert run(stack, run_id)["status"] == "running"
    retry = post(stack, f"runs/{run_id}/retry")
    assert retry.status_code == 409 and "running" in retry.json()["error"]
    assert post(stack, f"runs/{run_id}/cancel").status_code == 202
    assert wait_run(stack, run_id, timeout=20)["status"] == "cancelled"


# --- hardening: every route answers bad input with a 4xx, never a 5xx or a traceback --------

ROUTES = ("runs", "runs/{id}", "runs/{id}/cancel", "runs/{id}/retry", "health", "dashboard")
SERVED = {
    "runs": ("GET", "POST"),
    "runs/{id}": ("GET",),
    "runs/{id}/cancel": ("POST",),
    "runs/{id}/retry": ("POST",),
    "health": ("GET",),
    "dashboard": ("GET",),
}
LEAKS = ("Traceback", 'File "', "site-packages", "RequestId", str(ROOT))


def send(stack, method: str, path: str, **kwargs) -> httpx.Response:
    return httpx.request(method, f"{api(stack)}/{path}", timeout=30, **kwargs)


def assert_answer_is_clean(response: httpx.Response) -> None:
    """A 4xx (or success) with a JSON error that has a code; nothing of the server's insides."""
    assert response.status_code < 500, (response.status_code, response.text)
    for leak in LEAKS:
        assert leak not in response.text, (leak, response.text[:500])
    if response.status_code == 404 and b'"code"' not in response.content:
        return  # the host's own answer for a path no route matches (`runs//cancel`, `runs/%0A0`)
    if response.status_code >= 400 and response.request.method != "HEAD":
        body = response.json()
        assert isinstance(body["error"], str) and "\n" not in body["error"]
        assert isinstance(body["code"], str)


def test_bad_paths_are_400s_that_name_the_path(stack):
    too_long = "a/" * 600 + "x.jsonl"
    for path in (
        "../../etc/passwd.jsonl",
        "./a.jsonl",
        "a/../b.jsonl",
        "a//b.jsonl",
        "/abs.jsonl",
        "back\\slash.jsonl",
        "ctl\x07.jsonl",
        "deep/" * 254 + "x.jsonl",
        too_long,
        "x" * 2_000 + ".jsonl",
        "notes.txt",
        "",
    ):
        answer = post(stack, "runs", {"path": path})
        assert answer.status_code == 400, (path[:40], answer.status_code, answer.text[:200])
        assert answer.json()["field"] == "path" and answer.json()["error"].startswith("path")
    for body in ({"path": 7}, {"file": "a.jsonl"}, [1], "a.jsonl"):
        answer = post(stack, "runs", body)
        assert answer.status_code == 400 and answer.json()["field"] == "path", body
    huge = post(stack, "runs", {"path": "x" * 20_000_000 + ".jsonl"})  # a 20 MB path
    assert huge.status_code == 413 and huge.json()["code"] == "too_large"
    garbage = send(stack, "POST", "runs", content=b"{not json")
    assert garbage.status_code == 400 and garbage.json()["field"] == "body"


def test_bad_query_values_are_400s_that_name_the_parameter(stack):
    for params, field in (
        ({"status": "bogus"}, "status"),
        ({"limit": "-5"}, "limit"),
        ({"limit": "0"}, "limit"),
        ({"limit": "201"}, "limit"),
        ({"limit": "1e3"}, "limit"),
        ({"cursor": "-1"}, "cursor"),
        ({"cursor": "٣"}, "cursor"),
        ({"cursor": "0"}, "cursor"),  # a page cursor is a previous answer's `next`
        ({"since": "yesterday"}, "since"),
        ({"until": "2025-13-01"}, "until"),
        ({"prefix": "p" * 1025}, "prefix"),
    ):
        answer = get(stack, "runs", **params)
        assert answer.status_code == 400, (params, answer.text)
        assert answer.json()["field"] == field and field in answer.json()["error"]
    next_page = "8264438400000_data-0123456789abcdef"  # the form of a `next`: a runs-index key
    ok = get(stack, "runs", limit="200", cursor=next_page, since="2025-01-01T00:00:00+00:00")
    assert ok.status_code == 200, ok.text
    assert get(stack, "runs", code="any-key").status_code == 200


def test_wrong_methods_are_405_with_allow(stack):
    for route, served in SERVED.items():
        path = route.replace("{id}", "some-run")
        for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
            if method in served:
                continue
            answer = send(stack, method, path)
            assert answer.status_code == 405, (method, path, answer.status_code)
            assert answer.json()["code"] == "method_not_allowed"
            assert set(answer.headers["allow"].split(", ")) == set(served)
    assert send(stack, "GET", "nowhere").status_code == 404  # an unknown route stays a 404


def test_bodies_over_the_limit_are_413(stack):
    from batching.ops.api import MAX_BODY_BYTES

    big = b'{"path": "' + b"a" * MAX_BODY_BYTES + b'.jsonl"}'
    for path in ("runs", "runs/some-run/cancel", "runs/some-run/retry"):
        answer = send(stack, "POST", path, content=big)
        assert answer.status_code == 413 and answer.json()["code"] == "too_large", path
    twenty_mb = send(stack, "POST", "runs", content=b" " * (20 << 20))
    assert twenty_mb.status_code == 413


def test_ids_that_cannot_be_run_ids_are_400s(stack):
    for raw in ("a%20b", "%2E%2E", "x" * 201, "%E2%80%AE", "-lead"):
        answer = send(stack, "GET", f"runs/{raw}")
        assert answer.status_code == 400 and answer.json()["field"] == "id", raw
    assert send(stack, "POST", "runs/a%00b/retry").status_code == 400


ODD_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=300)
ODD_PATHS = st.one_of(
    ODD_TEXT,
    ODD_TEXT.map(lambda t: t + ".jsonl"),
    st.lists(
        st.sampled_from(["a", ".", "..", "", "ü😀", "[/x]", "%2e", "\\", " ", "\x00"]), max_size=8
    )
    .map("/".join)
    .map(lambda t: t + ".jsonl"),
)
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | ODD_TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ODD_TEXT, inner, max_size=4),
    max_leaves=10,
)
METHODS = st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"])
HTTP = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))


@HTTP
@given(path=ODD_PATHS)
def test_property_odd_paths_to_start_are_4xx(stack, path):
    answer = post(stack, "runs", {"path": path})
    assert_answer_is_clean(answer)
    assert answer.status_code in (400, 404), (path, answer.status_code, answer.text)


@HTTP
@given(run_id=ODD_TEXT, route=st.sampled_from(ROUTES[1:4]), method=METHODS)
def test_property_odd_ids_on_every_run_route(stack, run_id, route, method):
    path = route.replace("{id}", quote(run_id, safe=""))
    answer = send(stack, method, path)
    assert_answer_is_clean(answer)


@HTTP
@given(
    params=st.dictionaries(
        st.sampled_from(["status", "prefix", "limit", "cursor", "code"]) | ODD_TEXT,
        ODD_TEXT | st.integers().map(str),
        max_size=5,
    )
)
def test_property_odd_query_values_on_the_list(stack, params):
    answer = get(stack, "runs", **params)
    assert_answer_is_clean(answer)
    if answer.status_code == 200:
        assert isinstance(answer.json()["runs"], list)


@HTTP
@given(
    body=st.one_of(st.binary(max_size=3000), JSON.map(orjson.dumps)),
    route=st.sampled_from(ROUTES),
    method=METHODS,
    params=st.dictionaries(ODD_TEXT, ODD_TEXT, max_size=3),
)
def test_property_odd_bodies_methods_and_queries_on_every_route(stack, body, route, method, params):
    path = route.replace("{id}", "no-such-run")
    answer = send(stack, method, path, content=body, params=params)
    assert_answer_is_clean(answer)


def test_two_concurrent_retries_start_one_run(stack):
    stack.drop("retry/twice.jsonl", b"not json\n")
    run_id = run_id_of(stack, "retry/twice.jsonl")
    assert wait_run(stack, run_id)["status"] == "invalid"
    barrier = threading.Barrier(2)

    def retry() -> httpx.Response:
        barrier.wait()
        return post(stack, f"runs/{run_id}/retry")

    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda _: retry(), range(2)))
    assert sorted(a.status_code for a in answers) == [202, 409], [a.text for a in answers]
    (started,) = [a.json()["id"] for a in answers if a.status_code == 202]
    (refused,) = [a.json() for a in answers if a.status_code == 409]
    assert refused["code"] == "conflict" and run_id in refused["error"]
    later = post(stack, f"runs/{run_id}/retry")  # once done, a retry names the run it started
    assert later.status_code == 409 and started in later.json()["error"]
    assert wait_run(stack, started)["status"] == "invalid"
    assert len(get(stack, "runs", prefix="retry/twice.jsonl").json()["runs"]) == 2


def test_a_rejected_run_counts_its_requests_as_not_run(stack):
    lines = requests_file(3, prefix="r") + b"[1, 2]\n"
    stack.drop("rejected/some.jsonl", lines)
    run_id = run_id_of(stack, "rejected/some.jsonl")
    detail = wait_run(stack, run_id)
    assert detail["status"] == "invalid"
    assert detail["requests"] == {
        "total": 3,
        "succeeded": 0,
        "failed": 0,
        "pending": 0,
        "not_run": 3,
    }
    (listed,) = get(stack, "runs", prefix="rejected/some.jsonl").json()["runs"]
    assert listed["requests"] == detail["requests"]
    assert detail["report"]["request_counts"] == detail["requests"]


def test_health_makes_no_upstream_call_per_hit(stack):
    def batch_lists() -> int:
        return int(stack.emulator_state()["requests"].get("GET /openai/batches", 0))

    first = send(stack, "GET", "health")
    assert first.status_code == 200 and first.json()["status"] == "healthy", first.text
    before = batch_lists()
    assert before >= 1  # this stack's emulator was checked once (now or earlier in the module)
    answers = [send(stack, "GET", "health") for _ in range(20)]
    assert all(a.status_code == 200 for a in answers)
    assert batch_lists() == before  # all 20 answered from the cached check
    assert all(a.json()["checked_seconds_ago"] >= 0 for a in answers)


def test_a_run_that_errors_shows_a_code_and_one_line_reason(stack, scenario, caplog):
    """The work container vanishes mid-run: collecting the batch fails with a storage error.

    The API shows a code and a one-line reason; the storage error's text (request id) and the
    traceback stay on the server: in the logs and in metadata.json, under the run id.
    """
    scenario(batch_duration=4)
    stack.drop("errors/gone.jsonl", requests_file(2, prefix="g"))
    run_id = run_id_of(stack, "errors/gone.jsonl")
    wait_run(stack, run_id, lambda d: d["status"] == "running" and d["phase"] == "running")
    work = stack.container("work")
    work.delete_container()
    try:
        detail = wait_run(stack, run_id, timeout=60)
    finally:
        for _ in range(60):  # Azurite refuses to create a container it is still deleting
            try:
                work.create_container()
                break
            except ResourceExistsError:
                time.sleep(0.5)
    assert detail["status"] == "error", detail
    assert detail["error"]["code"] == "internal_error"
    assert "\n" not in detail["error"]["reason"]
    for response in (get(stack, f"runs/{run_id}"), get(stack, "runs", prefix="errors/")):
        assert_answer_is_clean(response)

    meta = orjson.loads(stack.read("output", f"errors/gone/{run_id}/metadata.json"))
    assert meta["run_id"] == run_id and meta["status"] == "error"
    assert meta["error"] == detail["error"]
    assert "ContainerNotFound" in meta["error_detail"]["text"]
    logged = [r for r in caplog.records if getattr(r, "run_id", None) == run_id]
    assert any(
        "ContainerNotFound" in r.getMessage() for r in logged if r.message.startswith("run failed")
    )


def test_a_retry_that_starts_nothing_gives_its_claim_back(stack):
    stack.drop("retry/lost.jsonl", b"not json\n")
    run_id = run_id_of(stack, "retry/lost.jsonl")
    assert wait_run(stack, run_id)["status"] == "invalid"
    stack.container("error").delete_blob(f"retry/lost/{run_id}/input.jsonl")
    for _ in range(2):  # gone each time, never "already retried"
        answer = post(stack, f"runs/{run_id}/retry")
        assert answer.status_code == 410 and answer.json()["code"] == "gone", answer.text
