"""A million requests, ten chunks, a resubmission round on half of them: sorting their outcomes
into sorted runs and merging those back loses nothing, repeats nothing, and gives input order
(the in-memory core of the pipeline's collect-and-merge, with the pipeline's own parts)."""

from __future__ import annotations

import io

import orjson
import pytest

from batching.steps.ordering import KeyedLines, Positions, SortedRuns, merge, read_run
from batching.steps.results import collect

pytestmark = pytest.mark.slow

CHUNKS, PER_CHUNK = 10, 100_000
RUN_BYTES = 2 << 20  # small runs, so that each round of a chunk makes several


class Memory(io.BytesIO):
    """A sink whose bytes stay readable after close()."""

    def close(self) -> None:
        pass


def _line(cid: str) -> bytes:
    return b'{"custom_id":"' + cid.encode() + b'","method":"POST","url":"/chat/completions"}'


def _output(cid: str, status: int) -> bytes:
    body = (
        {"usage": {"prompt_tokens": 1, "completion_tokens": 1}}
        if status == 200
        else {"error": {"code": "x", "message": "m"}}
    )
    return orjson.dumps(
        {"custom_id": cid, "error": None, "response": {"status_code": status, "body": body}}
    )


def _first_round(c: int) -> tuple[bytes, bytes]:
    """The chunk's input, and its output in reverse order (the service keeps none)."""
    inputs, outputs = bytearray(), []
    for i in range(PER_CHUNK):
        cid = f"c{c}-{i}"
        inputs += _line(cid) + b"\n"
        kind = i % 20
        if kind == 0:  # never ran (an expired batch): absent from both files
            continue
        outputs.append(_output(cid, 400 if kind == 1 else 500 if kind == 2 else 200))
    return bytes(inputs), b"\n".join(reversed(outputs)) + b"\n"


class Part:
    """One round's results and failures, as sorted runs in memory."""

    def __init__(self) -> None:
        self.runs: dict[str, list[Memory]] = {"results": [], "failures": []}
        self.sorted = {kind: SortedRuns(self._opener(kind), RUN_BYTES) for kind in self.runs}

    def _opener(self, kind: str):
        def open_run(_: int) -> Memory:
            self.runs[kind].append(Memory())
            return self.runs[kind][-1]

        return open_run

    def close(self) -> None:
        for s in self.sorted.values():
            s.close()


def _collect(outputs, inputs, positions, resubmit, round_no):
    part = Part()
    retry_lines, retry_positions = Memory(), Memory()
    retry = KeyedLines(retry_lines, retry_positions)
    outcome = collect(
        [[outputs]],
        [inputs],
        part.sorted["results"],
        part.sorted["failures"],
        retry,
        positions=positions,
        round_no=round_no,
        batch_id=f"b{round_no}",
        resubmit=resubmit,
    )
    part.close()
    retry.close()
    return outcome, part, retry_lines.getvalue(), retry_positions.getvalue()


def test_a_million_requests_land_exactly_once_in_input_order():
    total = retried = runs = 0
    for c in range(CHUNKS):
        inputs, outputs = _first_round(c)
        resubmit = c % 2 == 0
        outcome, part, retry_input, retry_positions = _collect(
            outputs, inputs, Positions.of_input([inputs]), resubmit, 0
        )
        assert outcome.succeeded + outcome.failed + outcome.retry == PER_CHUNK
        parts = [part]
        if outcome.retry:  # the second round: every resubmitted request succeeds
            retried += outcome.retry
            ids = [orjson.loads(x)["custom_id"] for x in retry_input.splitlines()]
            second = b"\n".join(_output(cid, 200) for cid in reversed(ids)) + b"\n"
            positions = Positions.of_input([retry_input], [retry_positions])
            outcome2, part2, _, _ = _collect(second, retry_input, positions, False, 1)
            assert outcome2.succeeded == outcome.retry
            parts.append(part2)
        streams = [
            read_run([run.getvalue()])
            for p in parts
            for kind in ("results", "failures")
            for run in p.runs[kind]
        ]
        runs += len(streams)
        merged = [orjson.loads(line)["custom_id"] for _, line in merge(streams)]
        assert merged == [f"c{c}-{i}" for i in range(PER_CHUNK)]  # each once, in input order
        total += len(merged)
    assert total == CHUNKS * PER_CHUNK
    assert retried == (CHUNKS // 2) * PER_CHUNK * 2 // 20  # 5xx and never-ran, even chunks only
    assert runs > 4 * CHUNKS  # several sorted runs per chunk were merged
