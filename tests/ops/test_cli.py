"""`python -m batchctl` run commands as subprocesses against the local stack."""

from __future__ import annotations

import csv
import io
import os
import re
import signal
import subprocess
import sys
import threading

import orjson
import pytest

from tests.support.ops import api, custom_ids, in_progress, post, run, run_id_of, wait_run
from tests.support.stack import ROOT, local_stack, requests_file

RUN_ID = re.compile(r"run (\S+-[0-9a-f]{16})")


@pytest.fixture(scope="module")
def stack(azurite, tmp_path_factory):
    with local_stack(azurite, tmp_path_factory.mktemp("cli")) as s:
        yield s


@pytest.fixture
def batchctl(stack, azurite):
    """Run batchctl against the test stack; returns the completed process."""

    def call(
        *args: str, target: bool = True, timeout: float = 60, columns: int = 250
    ) -> subprocess.CompletedProcess:
        options = (
            [
                "--api",
                api(stack),
                "--storage-connection",
                azurite.connection_string,
                "--input-container",
                stack.env["INPUT_CONTAINER"],
                "--output-container",
                stack.env["OUTPUT_CONTAINER"],
            ]
            if target
            else []
        )
        env = {**os.environ, "COLUMNS": str(columns), "NO_COLOR": "1"}
        for name in ("BATCHCTL_API", "BATCHCTL_KEY", "BATCHCTL_STORAGE", "BATCHCTL_ACCOUNT_URL"):
            env.pop(name, None)
        return subprocess.run(
            [sys.executable, "-m", "batchctl", *args, *options],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    return call


def submitted_ids(out: str) -> list[str]:
    return RUN_ID.findall(out)


def test_submit_prints_run_ids_that_runs_lists_and_results_exports(stack, batchctl, tmp_path):
    first = tmp_path / "alpha.jsonl"
    first.write_bytes(requests_file(3, prefix="a"))
    second = tmp_path / "beta.jsonl"
    second.write_bytes(requests_file(2, prefix="b", schema=True))

    done = batchctl("submit", str(first), str(second), "--prefix", "/cli/team/")
    assert done.returncode == 0, done.stderr
    alpha, beta = submitted_ids(done.stdout)
    assert f"{stack.env['INPUT_CONTAINER']}/cli/team/alpha.jsonl" in done.stdout
    assert sorted(stack.names("input")) == ["cli/team/alpha.jsonl", "cli/team/beta.jsonl"]
    stack.watcher.poll_once()  # Event Grid delivers the two BlobCreated events

    for run_id in (alpha, beta):
        assert wait_run(stack, run_id)["status"] == "completed"
    listed = batchctl("runs", "--prefix", "cli/team/", "-o", "table")
    assert listed.returncode == 0, listed.stderr
    assert alpha in listed.stdout and beta in listed.stdout and "2 runs" in listed.stdout
    assert listed.stdout.count("completed") >= 2 and "3/0/3" in listed.stdout
    paged = batchctl("runs", "--prefix", "cli/team/", "--limit", "1", "-o", "table")
    assert paged.returncode == 0 and "1 runs" in paged.stdout and "next:" in paged.stdout
    assert (beta in paged.stdout) != (alpha in paged.stdout)
    every = batchctl("runs", "--prefix", "cli/team/", "--limit", "1", "--all", "-o", "table")
    assert every.returncode == 0 and alpha in every.stdout and beta in every.stdout
    assert "2 runs" in every.stdout and "next:" not in every.stdout
    none = batchctl("runs", "--prefix", "cli/team/", "--status", "failed", "-o", "table")
    assert none.returncode == 0 and alpha not in none.stdout and "0 runs" in none.stdout

    shown = batchctl("show", alpha)
    assert shown.returncode == 0, shown.stderr
    detail = orjson.loads(shown.stdout)
    assert detail["id"] == alpha and detail["metadata"]["requests"]["succeeded"] == 3

    out = tmp_path / "alpha-results.jsonl"
    exported = batchctl("results", alpha, "--format", "jsonl", "-o", str(out))
    assert exported.returncode == 0, exported.stderr
    assert sorted(custom_ids(out.read_bytes())) == ["a-0", "a-1", "a-2"]
    assert out.read_bytes() == stack.read("output", f"cli/team/alpha/{alpha}/results.jsonl")

    plain = tmp_path / "alpha.csv"
    assert batchctl("results", alpha, "--format", "csv", "-o", str(plain)).returncode == 0
    rows = list(csv.reader(io.StringIO(plain.read_text())))
    assert rows[0] == ["custom_id", "content"]
    assert sorted(r[0] for r in rows[1:]) == ["a-0", "a-1", "a-2"] and all(r[1] for r in rows[1:])

    nowhere = batchctl("results", alpha, "-o", str(tmp_path / "no" / "such" / "dir.jsonl"))
    assert nowhere.returncode == 1 and "Traceback" not in nowhere.stderr
    assert "No such file" in nowhere.stdout

    table = batchctl("results", beta, "--format", "csv")  # structured outputs: table.csv
    assert table.returncode == 0, table.stderr
    rows = list(csv.reader(io.StringIO(table.stdout)))
    assert {"custom_id", "City", "Height"} <= set(rows[0]) and len(rows) == 3
    assert table.stdout.encode() == stack.read("output", f"cli/team/beta/{beta}/table.csv")


def test_cancel_and_retry(stack, batchctl, tmp_path):
    long = tmp_path / "long.jsonl"
    long.write_bytes(requests_file(4, prefix="l"))
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b"[1, 2, 3]\n")
    stack.scenario(batch_duration=30)
    try:
        done = batchctl("submit", str(long), str(bad), "--prefix", "cli/ops")
        assert done.returncode == 0, done.stderr
        long_id, bad_id = submitted_ids(done.stdout)
        stack.watcher.poll_once()
        wait_run(stack, long_id, in_progress, timeout=20)
    finally:
        stack.scenario(batch_duration=None)

    cancelled = batchctl("cancel", long_id)
    assert cancelled.returncode == 0 and f"cancelling {long_id}" in cancelled.stdout
    detail = wait_run(stack, long_id, timeout=20)
    assert detail["status"] == "cancelled" and detail["metadata"]["status"] == "cancelled"
    assert 1 <= detail["requests"]["succeeded"] < 4
    partial = batchctl("results", long_id)  # to standard output
    assert partial.returncode == 0
    assert len(custom_ids(partial.stdout.encode())) == detail["requests"]["succeeded"]
    again = batchctl("cancel", long_id)
    assert again.returncode == 1 and "409" in again.stdout and "cancelled" in again.stdout

    assert wait_run(stack, bad_id)["status"] == "invalid"
    retried = batchctl("retry", bad_id)
    assert retried.returncode == 0, retried.stdout + retried.stderr
    (new_id,) = submitted_ids(retried.stdout)
    assert new_id != bad_id and run(stack, new_id)["source"] == "cli/ops/bad.jsonl"
    assert wait_run(stack, new_id)["status"] == "invalid"
    nothing = batchctl("results", new_id)
    assert nothing.returncode == 1 and "invalid" in nothing.stdout


def test_errors_have_exit_codes_and_messages(stack, batchctl, tmp_path):
    missing = batchctl("show", "no-such-run")
    assert missing.returncode == 1 and "404" in missing.stdout and "no-such-run" in missing.stdout
    assert batchctl("retry", "no-such-run").returncode == 1
    assert batchctl("results", "no-such-run").returncode == 1
    for odd in ("a/b?c#d", "[/x]", "../runs", "%2e%2e"):
        answered = batchctl("show", odd)
        assert answered.returncode == 1 and "Traceback" not in answered.stderr, odd

    nofile = batchctl("submit", str(tmp_path / "absent.jsonl"))
    assert nofile.returncode == 2 and "no such file" in nofile.stdout

    down = batchctl("runs", "--api", "http://127.0.0.1:9/api", target=False)
    assert down.returncode == 1 and "cannot reach" in down.stdout

    f = tmp_path / "x.jsonl"
    f.write_bytes(requests_file(1))
    nocontainer = batchctl(
        "submit",
        str(f),
        "--input-container",
        "no-such-container",
        "--storage-connection",
        stack.env["BATCH_STORAGE"],
        target=False,
    )
    assert nocontainer.returncode == 1 and "storage" in nocontainer.stdout

    usage = batchctl(target=False)
    assert usage.returncode == 2 and "COMMAND" in usage.stderr
    bad_format = batchctl("results", "x", "--format", "xml")
    assert bad_format.returncode == 2


def test_runs_watch_refreshes_until_interrupted(stack, azurite):
    """The watch shows the run in flight, then, with no other prompt, the run's new status once
    it was cancelled; Ctrl-C ends it cleanly. (Rich redraws a non-terminal when told to.)"""
    stack.scenario(batch_duration=3600)  # the run stays in flight until it is cancelled
    try:
        stack.drop("cli/watch/w.jsonl", requests_file(1, prefix="w"))
        run_id = run_id_of(stack, "cli/watch/w.jsonl")
        wait_run(stack, run_id, lambda r: any(c.get("batch_id") for c in r.get("chunks") or []))
    finally:
        stack.scenario(batch_duration=None)
    env = {
        **os.environ,
        "COLUMNS": "250",
        "NO_COLOR": "1",
        "TTY_COMPATIBLE": "1",
        "TTY_INTERACTIVE": "1",
    }
    command = [
        sys.executable,
        "-m",
        "batchctl",
        "runs",
        "--watch",
        "--prefix",
        "cli/watch/",
        "--api",
        api(stack),
        "--storage-connection",
        azurite.connection_string,
    ]
    shown: list[str] = []
    seen = threading.Condition()

    def read(stream) -> None:
        for text in iter(lambda: stream.read1(4096), b""):
            with seen:
                shown.append(text.decode(errors="replace"))
                seen.notify_all()

    def wait_for_output(*words: str) -> str:
        with seen:
            assert seen.wait_for(lambda: all(w in "".join(shown) for w in words), timeout=60), (
                f"the watch never showed {words}: {''.join(shown)[-2000:]}"
            )
            return "".join(shown)

    def as_in_a_terminal() -> None:
        # A shell without job control starts background commands with SIGINT ignored, and a
        # Python started so never turns Ctrl-C into KeyboardInterrupt: the watch runs as a
        # user's terminal would start it, with SIGINT at its default.
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    with subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=as_in_a_terminal,  # noqa: PLW1509 - a signal reset only, no threads involved
    ) as proc:
        reader = threading.Thread(target=read, args=(proc.stdout,), daemon=True)
        reader.start()
        errors: list[bytes] = []  # stderr drained too, so a full pipe can never block the exit
        drain = threading.Thread(target=lambda: errors.append(proc.stderr.read()), daemon=True)
        drain.start()
        try:
            before = wait_for_output("cli/watch/w.jsonl", "running")
            assert "cancelled" not in before
            assert post(stack, f"runs/{run_id}/cancel").status_code == 202
            wait_run(stack, run_id, lambda r: r["status"] == "cancelled")
            wait_for_output("cancelled")
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            proc.send_signal(signal.SIGINT)
            # Only the reader thread reads stdout; wait for the exit (a deadline only a hung
            # process reaches, even with both cores busy), then read what it said on stderr.
            proc.wait(timeout=90)
            drain.join(timeout=10)
            err = b"".join(errors).decode(errors="replace")
        finally:
            if proc.poll() is None:
                proc.kill()
        reader.join(timeout=10)
    assert proc.returncode == 0, err
    assert "1 runs" in "".join(shown) and "cli/watch/w.jsonl" in "".join(shown)


MARKUP_NAME = "xss/ünï😀 [bold]b[/bold] [/x].jsonl"


def test_names_with_markup_are_shown_as_text(stack, batchctl, tmp_path):
    """A blob name that is rich markup breaks no listing, and submit prints the run id."""
    stack.drop(MARKUP_NAME, requests_file(1, prefix="m"))
    run_id = wait_run(stack, run_id_of(stack, MARKUP_NAME))["id"]
    for layout in ("table", "plain", "json"):
        listed = batchctl("runs", "-o", layout)  # unfiltered: every run, this one too
        assert listed.returncode == 0, listed.stdout + listed.stderr
        assert "Traceback" not in listed.stderr
        assert run_id in listed.stdout
        if layout != "table":  # the table may fold a long source over lines
            assert MARKUP_NAME in listed.stdout
    f = tmp_path / "odd.jsonl"
    f.write_bytes(requests_file(1))
    done = batchctl("submit", str(f), "--prefix", "[/x]")
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(submitted_ids(done.stdout)) == 1
    assert "[/x]/odd.jsonl" in done.stdout and "[/x]/odd.jsonl" in stack.names("input")
    shown = batchctl("show", "no-such-[/x]-run")  # an id with markup in an error message
    assert shown.returncode == 1 and "Traceback" not in shown.stderr


def test_submit_refuses_names_that_are_no_blob_name(batchctl, stack, tmp_path):
    f = tmp_path / "x.jsonl"
    f.write_bytes(requests_file(1))
    before = stack.names("input")
    for prefix in ("../up", "a/./b", "a\\b", "ctl\x01"):
        done = batchctl("submit", str(f), "--prefix", prefix)
        assert done.returncode == 2, (prefix, done.stdout, done.stderr)
        assert "blob name" in done.stdout
    assert stack.names("input") == before  # nothing was uploaded


def test_runs_stay_readable_at_80_columns_and_piped(stack, batchctl):
    names = [f"cli/narrow/a-rather-long-file-name-for-a-narrow-console-{i}.jsonl" for i in (1, 2)]
    for name in names:
        stack.drop(name, requests_file(1, prefix="n"))
    ids = [wait_run(stack, run_id_of(stack, name))["id"] for name in names]
    assert all(len(i) > 40 for i in ids)

    plain = batchctl("runs", "--prefix", "cli/narrow/", columns=80)  # piped: plain by default
    assert plain.returncode == 0, plain.stderr
    header, *rows = plain.stdout.splitlines()
    assert header.split()[:3] == ["RUN", "STATUS", "PHASE"]
    assert sorted(r.split()[0] for r in rows) == sorted(ids)  # one line per run, id first
    assert all(r.split()[1] == "completed" and r.endswith(".jsonl") for r in rows)

    table = batchctl("runs", "--prefix", "cli/narrow/", "-o", "table", columns=80)
    assert table.returncode == 0, table.stderr
    assert all(i in table.stdout for i in ids)  # whole on one line: ids never wrap
    assert max(len(line) for line in table.stdout.splitlines()) <= 80
    assert "run / source" in table.stdout and "completed" in table.stdout  # the compact table
    wide = batchctl("runs", "--prefix", "cli/narrow/", "-o", "table", columns=200)
    assert all(i in wide.stdout for i in ids) and "tokens" in wide.stdout

    as_json = batchctl("runs", "--prefix", "cli/narrow/", "-o", "json", columns=80)
    assert sorted(r["id"] for r in orjson.loads(as_json.stdout)["runs"]) == sorted(ids)


def test_csv_cells_that_would_be_formulas_are_neutralised(stack, batchctl, tmp_path):
    f = tmp_path / "formula.jsonl"
    f.write_bytes(requests_file(2, prefix="=1+2", schema=True))
    g = tmp_path / "at.jsonl"
    g.write_bytes(requests_file(1, prefix="@SUM(A1)"))
    done = batchctl("submit", str(f), str(g), "--prefix", "cli/csv")
    assert done.returncode == 0, done.stdout + done.stderr
    table_id, plain_id = submitted_ids(done.stdout)
    stack.watcher.poll_once()
    for run_id in (table_id, plain_id):
        assert wait_run(stack, run_id)["status"] == "completed"

    stored = stack.read("output", f"cli/csv/formula/{table_id}/table.csv").decode()
    rows = list(csv.reader(io.StringIO(stored)))
    assert sorted(r[0] for r in rows[1:]) == ["'=1+2-0", "'=1+2-1"]
    exported = batchctl("results", table_id, "--format", "csv")
    assert exported.returncode == 0 and exported.stdout == stored

    plain = batchctl("results", plain_id, "--format", "csv")
    rows = list(csv.reader(io.StringIO(plain.stdout)))
    assert [r[0] for r in rows[1:]] == ["'@SUM(A1)-0"]
