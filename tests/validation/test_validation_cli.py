"""`python -m batchctl validate`: exit codes, the --json report, the readable summary."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from batchctl.__main__ import main

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "structured-buildings.jsonl"
CORPUS = Path(__file__).parent / "corpus"


def _run(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "batchctl", "validate", *args],
        cwd=ROOT,
        capture_output=True,
        check=False,
    )


def test_exit_codes_and_json_as_a_subprocess(tmp_path: Path) -> None:
    ok = _run("--json", str(SAMPLE))
    assert ok.returncode == 0
    report = orjson.loads(ok.stdout)
    assert report["valid"] is True
    bad = _run("--json", str(CORPUS / "duplicate_custom_id@3-repeat.jsonl"))
    assert bad.returncode == 1
    assert orjson.loads(bad.stdout)["problems"][0]["code"] == "duplicate_custom_id"
    assert _run(str(tmp_path / "missing.jsonl")).returncode == 2
    assert _run("--max-requests", "zero", str(SAMPLE)).returncode == 2


def test_json_shape(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "--json", str(SAMPLE)]) == 0
    report = orjson.loads(capsys.readouterr().out)
    assert {
        "valid",
        "requests",
        "bytes",
        "problems",
        "problem_counts",
        "endpoint",
        "deployment",
        "model_family",
        "encoding",
        "tokens",
        "table_columns",
        "split",
    } <= set(report)
    assert (report["requests"], report["bytes"]) == (3, SAMPLE.stat().st_size)
    assert report["tokens"].keys() >= {"prompt", "completion_budget", "total", "encoding", "method"}
    assert report["tokens"]["total"] == (
        report["tokens"]["prompt"] + report["tokens"]["completion_budget"]
    )
    assert report["split"] == [
        {"index": 0, "first_line": 1, "last_line": 3, "requests": 3, "bytes": report["bytes"]}
    ]
    assert report["table_columns"] == ["BuildingName", "HeightInFeet", "City", "Country"]


def test_deployment_option_gives_model_not_found(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "--json", "--deployment", "other", str(SAMPLE)]) == 1
    report = orjson.loads(capsys.readouterr().out)
    assert report["problem_counts"] == {"model_not_found": 3}
    assert report["problems"][0] == {
        "line": 1,
        "code": "model_not_found",
        "custom_id": "task-0",
        "message": report["problems"][0]["message"],
    }
    assert main(["validate", "--json", "--deployment", "gpt-4o-batch", str(SAMPLE)]) == 0


def test_limits_from_options_and_environment(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAX_REQUESTS_PER_BATCH", "2")
    assert main(["validate", "--json", str(SAMPLE)]) == 0
    assert [c["requests"] for c in orjson.loads(capsys.readouterr().out)["split"]] == [2, 1]
    assert main(["validate", "--json", "--max-requests", "1", str(SAMPLE)]) == 0
    assert len(orjson.loads(capsys.readouterr().out)["split"]) == 3


def test_readable_summary_of_a_valid_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["validate", "--max-requests", "2", str(CORPUS / "valid-crlf-blank-lines.jsonl")]) == 0
    )
    out = capsys.readouterr().out
    assert "valid" in out
    assert "3 on 5 lines" in out
    assert "2 skipped (not an error)" in out
    assert "approximate, 4 bytes a token; --count-tokens: o200k_base" in out
    assert "split plan" in out


def test_readable_summary_of_an_invalid_file(capsys: pytest.CaptureFixture[str]) -> None:
    path = CORPUS / "invalid_schema@3-nested-object.jsonl"
    assert main(["validate", str(path)]) == 1
    out = capsys.readouterr().out
    assert "INVALID" in out
    assert "invalid_schema" in out
    assert "additionalProperties" in out
    assert "problems by code: invalid_schema 1" in out


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["validate"])
    assert exit_info.value.code == 2
    with pytest.raises(SystemExit) as exit_info:
        main(["validate", "--invalid-lines", "maybe", str(SAMPLE)])
    assert exit_info.value.code == 2
    assert main(["validate", "/nonexistent/file.jsonl"]) == 2
    assert "no such file" in capsys.readouterr().err


def test_validate_does_not_load_the_run_commands() -> None:
    code = (
        "import sys\n"
        "from batchctl.__main__ import main\n"
        f"main(['validate', '--json', {str(SAMPLE)!r}])\n"
        "print('batchctl.runs' in sys.modules, 'azure' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, check=True)
    assert done.stdout.splitlines()[-1] == b"False False"


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "validate" in out
    assert "runs" in out


def test_summary_shows_markup_in_the_file_as_text(tmp_path: Path) -> None:
    """Custom ids, deployments and the file's name reach rich as text, not markup."""
    path = tmp_path / "odd [bold]b[x].jsonl"
    line = {
        "custom_id": "[/x]",
        "method": "POST",
        "url": "/chat/completions",
        "body": {"model": "[bold]m[/x]", "messages": [{"role": "user", "content": "hi"}]},
    }
    path.write_bytes(orjson.dumps(line) + b"\n" + orjson.dumps({"custom_id": "[/y]"}) + b"\n")
    done = subprocess.run(
        [sys.executable, "-m", "batchctl", "validate", str(path)],
        cwd=ROOT,
        env={**os.environ, "COLUMNS": "250", "NO_COLOR": "1"},
        capture_output=True,
        check=False,
    )
    out = done.stdout.decode()
    assert done.returncode == 1, done.stderr.decode()
    assert b"Traceback" not in done.stderr
    assert "[bold]m[/x]" in out and "[/y]" in out and "odd [bold]b[x].jsonl" in out


def test_tokens_are_approximate_unless_counted(capsys: pytest.CaptureFixture[str]) -> None:
    """By default no tokenizer: the estimate says so; --count-tokens gives the pipeline's count.
    The rest of the report is the same."""
    assert main(["validate", "--json", str(SAMPLE)]) == 0
    approximate = orjson.loads(capsys.readouterr().out)
    assert main(["validate", "--json", "--count-tokens", str(SAMPLE)]) == 0
    counted = orjson.loads(capsys.readouterr().out)
    assert approximate.pop("tokens")["method"] == "approximate"
    tokens = counted.pop("tokens")
    assert approximate == counted
    from batching.jsonlines import read_blocks
    from batching.validation.validator import ValidationOptions, validate

    options = ValidationOptions(max_requests_per_batch=100_000, max_bytes_per_batch=200_000_000)
    pipeline = validate(read_blocks(SAMPLE), options).tokens
    assert pipeline is not None
    assert tokens == pipeline.to_dict()
    assert tokens["method"] == "exact"


def test_readable_summary_of_counted_tokens(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "--count-tokens", str(SAMPLE)]) == 0
    out = capsys.readouterr().out
    assert "o200k_base, exact" in out
    assert "approximate" not in out


def test_limits_default_to_the_app_settings_defaults() -> None:
    """batchctl validate reads the defaults without importing the app's settings; they are the
    same values."""
    from batchctl.validate import DEFAULTS
    from batching.settings import SETTINGS

    declared = {s.name: s.default for s in SETTINGS}
    assert {name: str(value) for name, value in DEFAULTS.items()} == {
        name: declared[name] for name in DEFAULTS
    }


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "1000000000"),  # blob mode, the default: 1 GB a batch file
        ({"MAX_BYTES_PER_BATCH": "0"}, "1000000000"),
        ({"AZURE_OPENAI_BATCH_MODE": "files"}, "200000000"),  # 200 MB uploaded
        ({"AZURE_OPENAI_BATCH_MODE": "files", "MAX_BYTES_PER_BATCH": "5000"}, "5000"),
    ],
)
def test_the_byte_limit_defaults_to_the_batch_modes_as_in_the_app(monkeypatch, env, expected):
    from batchctl.validate import _setting

    for name in ("MAX_BYTES_PER_BATCH", "AZURE_OPENAI_BATCH_MODE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert _setting("MAX_BYTES_PER_BATCH") == expected


def test_a_large_report_is_written_whole_before_the_quick_exit(tmp_path: Path) -> None:
    """`validate` exits without the interpreter's teardown: its buffered output (here a report
    of about 150 KB, many times the buffer) must still arrive whole, with the exit status, with
    --count-tokens too (the counting child of a large file is reaped first)."""
    path = tmp_path / "many-problems.jsonl"
    path.write_bytes(b"".join(b'{"custom_id": "c%d"}\n' % i for i in range(1000)))
    for options in ((), ("--count-tokens",)):
        done = _run("--json", *options, str(path))
        assert done.returncode == 1, done.stderr.decode()
        report = orjson.loads(done.stdout)
        assert len(report["problems"]) == 1000
        assert report["problems"][-1]["custom_id"] == "c999"
        assert done.stderr == b""


def test_a_reader_that_goes_away_ends_validate_with_status_120(tmp_path: Path) -> None:
    """Output that cannot be flushed at exit gives the interpreter's own status, 120, not a
    silent success."""
    path = tmp_path / "many-problems.jsonl"
    path.write_bytes(b"".join(b'{"custom_id": "c%d"}\n' % i for i in range(1000)))
    read, write = os.pipe()
    os.close(read)  # nobody reads: the flush at exit fails with EPIPE
    try:
        done = subprocess.run(
            [sys.executable, "-m", "batchctl", "validate", "--json", str(path)],
            cwd=ROOT,
            stdout=write,
            stderr=subprocess.PIPE,
            check=False,
        )
    finally:
        os.close(write)
    assert done.returncode == 120, done.stderr.decode()


@pytest.mark.parametrize("columns", [None, "50", "0", "-3", "wide", "250"])
def test_help_is_as_wide_as_shutil_would_make_it(
    columns: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """batchctl finds the terminal's width without importing shutil; it must find what
    `shutil.get_terminal_size` (argparse's own way) finds."""
    import shutil

    from batchctl.__main__ import terminal_columns

    if columns is None:
        monkeypatch.delenv("COLUMNS", raising=False)
    else:
        monkeypatch.setenv("COLUMNS", columns)
    monkeypatch.delenv("LINES", raising=False)
    assert terminal_columns() == shutil.get_terminal_size().columns
