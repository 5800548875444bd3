"""Sorted runs by input position, positions files, and their merge (batching.steps.ordering)."""

from __future__ import annotations

import io
import random

import orjson

from batching.steps.ordering import UNKNOWN, KeyedLines, Positions, SortedRuns, merge, read_run
from batching.validation.idindex import DICT_IDS, CustomIdIndex


class Memory(io.BytesIO):
    def close(self) -> None:
        pass


def _input(ids):
    return b"".join(orjson.dumps({"custom_id": i, "method": "POST"}) + b"\n" for i in ids)


def test_positions_are_input_lines_and_unknown_ids_sort_last():
    positions = Positions.of_input([_input(["a", "b"]), b"\n", _input(["c"])])  # blank skipped
    assert [positions(x) for x in ("a", "b", "c", "zz")] == [0, 1, 2, UNKNOWN]


def test_index_get_finds_ids_in_the_dict_and_in_the_table():
    index = CustomIdIndex()
    n = DICT_IDS + 10  # past the dict, into the flat table
    for i in range(n):
        index.add(f"id-{i}", i + 1)
    assert [index.get(f"id-{i}") for i in (0, 1, n // 2, n - 1)] == [1, 2, n // 2 + 1, n]
    assert index.get("missing") == 0


def test_sorted_runs_merge_into_position_order_with_ties_in_run_order():
    rng = random.Random(5)
    order = list(range(5000))
    rng.shuffle(order)
    runs: list[Memory] = []

    def open_run(i):
        assert i == len(runs)
        runs.append(Memory())
        return runs[-1]

    writer = SortedRuns(open_run, run_bytes=20_000)
    for p in order:
        writer.add(p, b'{"n": %d, "text": "a b\\nc"}' % p)
    assert writer.close() == len(runs) > 5
    for run in runs:  # each run is sorted on its own
        keys = [p for p, _ in read_run([run.getvalue()])]
        assert keys == sorted(keys)
    # block boundaries anywhere: read in 7-byte blocks
    blocks = [[r.getvalue()[i : i + 7] for i in range(0, len(r.getvalue()), 7)] for r in runs]
    merged = list(merge(read_run(b) for b in blocks))
    assert [p for p, _ in merged] == list(range(5000))
    assert all(orjson.loads(line)["n"] == p for p, line in merged)
    first, second = [(0, "x")], [(0, "y"), (1, "z")]
    assert list(merge([first, second])) == [(0, "x"), (0, "y"), (1, "z")]


def test_no_line_no_run():
    assert SortedRuns(lambda i: Memory()).close() == 0


def test_one_buffered_run_is_written_unkeyed_in_position_order():
    writer = SortedRuns(lambda i: Memory())
    for p in (2, 0, 1, 0):
        writer.add(p, b"line-%d" % p)
    out = Memory()
    assert writer.close_unkeyed(out) == len(out.getvalue())
    assert out.getvalue() == b"line-0\nline-0\nline-1\nline-2\n"  # ties keep arrival order
    assert writer.close() == 0  # nothing left for a keyed run
    empty = Memory()
    assert SortedRuns(lambda i: Memory()).close_unkeyed(empty) == 0 and empty.getvalue() == b""


def test_runs_already_written_are_not_written_unkeyed():
    runs: list[Memory] = []
    writer = SortedRuns(lambda i: runs.append(Memory()) or runs[-1], run_bytes=100)
    for p in range(20):
        writer.add(p, b"x" * 20)
    out = Memory()
    assert writer.close_unkeyed(out) is None and out.getvalue() == b""
    assert writer.close() == len(runs) > 1  # every line is in a keyed run, for the merge
    assert [p for r in runs for p, _ in read_run([r.getvalue()])] == list(range(20))


def test_a_resubmission_input_keeps_its_first_round_positions():
    lines, positions = Memory(), Memory()
    keyed = KeyedLines(lines, positions)
    ids = {3: "d", 70_000: "x", 70_001: "y"}
    for p, cid in ids.items():
        keyed.add(p, _input([cid]).rstrip(b"\n"))
    keyed.close()
    data = positions.getvalue()
    assert len(data) == 12  # 4 bytes a line
    split = [data[:5], data[5:6], data[6:]]  # a position across blocks
    found = Positions.of_input([lines.getvalue()], split)
    assert {p: found(cid) for p, cid in ids.items()} == {p: p for p in ids}
