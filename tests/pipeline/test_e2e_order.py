"""A run's outputs come in input order: a file split into chunks, with failures that are
resubmitted in a second round, gives results.jsonl, errors.jsonl and table.csv in the input's
order, and `batchctl results` streams them so (the whole app on the local stack)."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys

import orjson

from tests.support.ops import api
from tests.support.stack import ROOT, local_stack, requests_file

N = 230
IDS = [f"task-{i}" for i in range(N)]


def _in_input_order(ids: list[str]) -> bool:
    positions = [IDS.index(i) for i in ids]
    return positions == sorted(positions) and len(set(positions)) == len(positions)


def test_split_run_with_a_resubmission_round_writes_every_output_in_input_order(
    azurite, tmp_path, monkeypatch
):
    # The host runs the app in this process: tiny sort runs (several per batch) and merge reads
    # of a few bytes (lines cut across blocks) exercise what large files do.
    from batching.steps import finalize, ordering

    monkeypatch.setattr(ordering, "RUN_BYTES", 4000)
    monkeypatch.setattr(finalize, "MERGE_BLOCK", 97)
    runs_written = []
    real_flush = ordering.SortedRuns._flush

    def counting_flush(self):
        runs_written.append(len(self._buffer))
        real_flush(self)

    monkeypatch.setattr(ordering.SortedRuns, "_flush", counting_flush)
    # Blank lines shift line numbers from positions: the order must still be the input's.
    lines = requests_file(N, schema=True).splitlines()
    data = b"\n".join([*lines[:7], b"", *lines[7:100], b"  ", *lines[100:]]) + b"\n"
    env = {"MAX_REQUESTS_PER_BATCH": "50", "RESUBMIT_ROUNDS": "1"}
    with local_stack(azurite, tmp_path, extra_env=env) as stack:
        # 5xx is retryable: failed lines go to a second round, where some fail again for good
        stack.scenario(line_failure_rate=0.3, line_failure_status=500, seed=11)
        stack.drop("order/split.jsonl", data)
        (run,) = stack.wait_all(1, timeout=180)
        run_id = run["instanceId"]
        folder = stack.run_folder("order/split.jsonl", run_id)
        meta = orjson.loads(stack.read("output", f"{folder}/metadata.json"))
        assert len(meta["chunks"]) == 5
        assert any(b["round"] == 1 for b in meta["batches"])  # a resubmission round ran
        results = [r["custom_id"] for r in stack.jsonl("output", f"{folder}/results.jsonl")]
        errors = [e["custom_id"] for e in stack.jsonl("output", f"{folder}/errors.jsonl")]
        assert errors  # some requests failed in both rounds
        second_round = {b["id"] for b in meta["batches"] if b["round"] == 1}
        assert second_round and meta["requests"]["succeeded"] == len(results)
        assert sorted(results + errors) == sorted(IDS)  # each exactly once
        assert _in_input_order(results)
        assert _in_input_order(errors)
        table = list(csv.reader(io.StringIO(stack.read("output", f"{folder}/table.csv").decode())))
        assert table[0] == ["custom_id", "City", "Height"]
        assert [row[0] for row in table[1:]] == IDS  # every request, failed ones included
        failed = set(errors)
        assert all((row[1] == "") == (row[0] in failed) for row in table[1:])

        def batchctl(*args: str) -> bytes:
            options = ["--api", api(stack), "--storage-connection", azurite.connection_string]
            options += ["--output-container", stack.env["OUTPUT_CONTAINER"]]
            env = {k: v for k, v in os.environ.items() if not k.startswith("BATCHCTL_")}
            done = subprocess.run(
                [sys.executable, "-m", "batchctl", *args, *options],
                cwd=ROOT,
                env=env,
                capture_output=True,
                check=True,
                timeout=60,
            )
            return done.stdout

        assert len(runs_written) > 10  # several sorted runs per batch were merged

        exported = batchctl("results", run_id)
        assert [orjson.loads(x)["custom_id"] for x in exported.splitlines()] == results
        exported_csv = batchctl("results", run_id, "--format", "csv").decode()
        assert [row[0] for row in csv.reader(io.StringIO(exported_csv))][1:] == IDS
