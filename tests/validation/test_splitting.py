"""Splitting validated files into chunk sinks, up to a million requests."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from batching.jsonlines import read_blocks
from batching.validation.plan import SplitPlanner
from batching.validation.splitting import PlanMismatchError, directory_sinks, write_chunks
from batching.validation.validator import ValidationOptions, ValidationReport, validate

ROOT = Path(__file__).resolve().parents[2]
PEAK_RSS = """
import os, subprocess, sys
child = subprocess.Popen(sys.argv[1:])
_, status, usage = os.wait4(child.pid, 0)
print(usage.ru_maxrss, os.waitstatus_to_exitcode(status), file=sys.stderr)
"""


def _line(i: int, content: str = "What is 2 + 2?") -> bytes:
    return orjson.dumps(
        {
            "custom_id": f"r-{i:07d}",
            "method": "POST",
            "url": "/chat/completions",
            "body": {
                "model": "gpt-4o-mini-batch",
                "max_tokens": 5,
                "messages": [{"role": "user", "content": f"{content} #{i}"}],
            },
        }
    )


def _options(**kw: object) -> ValidationOptions:
    base: dict[str, object] = {
        "max_requests_per_batch": 100_000,
        "max_bytes_per_batch": 200_000_000,
    }
    return ValidationOptions(**{**base, **kw})  # type: ignore[arg-type]


def _chunk_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("chunk-0*.jsonl"))


def test_a_million_requests_land_once_each_in_chunks_under_both_limits(tmp_path: Path) -> None:
    count = 1_000_000
    source = tmp_path / "million.jsonl"
    with source.open("wb") as f:
        for start in range(0, count, 10_000):
            f.write(b"".join(_line(i) + b"\n" for i in range(start, start + 10_000)))
    # validate through the CLI, in its own process, to read its peak memory (started from a
    # small process: a child's peak RSS includes its parent's until it execs)
    measured = subprocess.run(
        [
            sys.executable,
            "-c",
            PEAK_RSS,
            sys.executable,
            "-m",
            "batchctl",
            "validate",
            "--json",
            str(source),
        ],
        cwd=ROOT,
        capture_output=True,
        check=False,
    )
    peak_kb, status = map(int, measured.stderr.split())
    assert status == 0
    assert peak_kb / 1024 < 200, "peak RSS over 200 MB"
    output = measured.stdout
    report = ValidationReport.from_dict(orjson.loads(output))
    assert report.requests == count
    assert [c.requests for c in report.split] == [100_000] * 10

    out = tmp_path / "chunks"
    out.mkdir()
    open_chunk, open_skipped = directory_sinks(out)
    written = write_chunks(read_blocks(source), report, open_chunk, open_skipped)
    assert written == report.split
    seen = bytearray(count)
    for path, chunk in zip(_chunk_files(out), written, strict=True):
        data = path.read_bytes()
        assert len(data) == chunk.bytes <= report.options.max_bytes_per_batch
        ids = re.findall(rb'"custom_id":"r-(\d{7})"', data)
        assert len(ids) == chunk.requests <= report.options.max_requests_per_batch
        for i in ids:
            seen[int(i)] += 1
    assert seen == bytearray(b"\x01") * count
    source.unlink()


def test_just_over_the_limit_gives_two_halves() -> None:
    planner = SplitPlanner(100_000, 200_000_000)
    for line in range(1, 100_002):
        planner.add(line, 150)
    assert [c.requests for c in planner.plan()] == [50_001, 50_000]


def test_byte_limit_splits_evenly(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"".join(_line(i, "x" * 200) + b"\n" for i in range(100)))
    report = validate(read_blocks(source), _options(max_bytes_per_batch=10_000))
    sizes = [c.bytes for c in report.split]
    assert len(sizes) == -(-report.bytes // 10_000)
    assert max(sizes) <= 10_000
    assert max(sizes) - min(sizes) < 2 * 330
    open_chunk, _ = directory_sinks(tmp_path)
    write_chunks(read_blocks(source, 777), report, open_chunk, None)
    assert b"".join(p.read_bytes() for p in _chunk_files(tmp_path)) == source.read_bytes()


def test_chunks_hold_requests_with_lf_endings_and_no_blank_lines(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"\r\n".join([_line(1), b"", _line(2), b"  ", _line(3)]))
    report = validate(read_blocks(source), _options(max_requests_per_batch=2))
    open_chunk, _ = directory_sinks(tmp_path)
    write_chunks(read_blocks(source, 5), report, open_chunk)
    assert [p.read_bytes() for p in _chunk_files(tmp_path)] == [
        _line(1) + b"\n" + _line(2) + b"\n",
        _line(3) + b"\n",
    ]


def test_skip_mode_writes_invalid_lines_aside_with_the_reason(tmp_path: Path) -> None:
    lines = [_line(1), b"{oops", _line(2), _line(1), b"\xff", _line(3)]
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"\n".join(lines) + b"\n")
    report = validate(read_blocks(source), _options(invalid_lines="skip", max_requests_per_batch=2))
    assert report.valid
    assert [(c.first_line, c.last_line) for c in report.split] == [(1, 3), (6, 6)]
    open_chunk, open_skipped = directory_sinks(tmp_path)
    write_chunks(read_blocks(source, 3), report, open_chunk, open_skipped)
    assert b"".join(p.read_bytes() for p in _chunk_files(tmp_path)) == b"".join(
        line + b"\n" for line in (_line(1), _line(2), _line(3))
    )
    skipped = [
        orjson.loads(x) for x in (tmp_path / "chunk-skipped.jsonl").read_bytes().splitlines()
    ]
    assert [(s["line"], s["code"]) for s in skipped] == [
        (2, "invalid_json_line"),
        (4, "duplicate_custom_id"),
        (5, "invalid_utf8"),
    ]
    assert skipped[1]["custom_id"] == "r-0000001"
    assert skipped[0]["text"] == "{oops"
    assert all(s["message"] for s in skipped)


def test_skip_mode_without_a_skipped_sink_drops_invalid_lines(tmp_path: Path) -> None:
    data = b"\n".join([_line(1), b"[]", _line(2)])
    report = validate([data], _options(invalid_lines="skip"))
    open_chunk, _ = directory_sinks(tmp_path)
    write_chunks([data], report, open_chunk, None)
    assert not (tmp_path / "chunk-skipped.jsonl").exists()
    assert (tmp_path / "chunk-0000.jsonl").read_bytes() == _line(1) + b"\n" + _line(2) + b"\n"


def test_an_input_that_changed_since_validation_is_refused(tmp_path: Path) -> None:
    data = b"\n".join(_line(i) for i in range(10))
    report = validate([data], _options(max_requests_per_batch=5))
    open_chunk, _ = directory_sinks(tmp_path)
    with pytest.raises(PlanMismatchError):
        write_chunks([data.replace(b"#3", b"#33")], report, open_chunk)
    with pytest.raises(PlanMismatchError):
        write_chunks([data + b"\n" + _line(10)], report, open_chunk)
    with pytest.raises(PlanMismatchError):
        write_chunks([data.rsplit(b"\n", 1)[0]], report, open_chunk)


def test_an_invalid_report_cannot_be_split(tmp_path: Path) -> None:
    report = validate([b"{"], _options())
    with pytest.raises(ValueError, match="not valid"):
        write_chunks([b"{"], report, directory_sinks(tmp_path)[0])


def test_a_line_over_max_line_bytes_is_skipped_without_its_text(tmp_path: Path) -> None:
    lines = [_line(0), _line(1, "x" * 5000), _line(2)]
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"\n".join(lines) + b"\n")
    report = validate(read_blocks(source), _options(invalid_lines="skip", max_line_bytes=4000))
    assert report.valid and report.requests == 2
    open_chunk, open_skipped = directory_sinks(tmp_path)
    write_chunks(read_blocks(source, 700), report, open_chunk, open_skipped)
    skipped = (tmp_path / "chunk-skipped.jsonl").read_bytes().splitlines()
    assert [orjson.loads(x) for x in skipped] == [
        {"line": 2, "code": "line_too_large", "message": report.problems[0].message, "text": None}
    ]
    assert (
        b"".join(p.read_bytes() for p in _chunk_files(tmp_path))
        == lines[0] + b"\n" + lines[2] + b"\n"
    )
