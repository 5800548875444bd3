"""`batchctl validate FILE`: check a batch input file before uploading it.

Exit status 0 when the file is valid, 1 when it is not, 2 on a usage error, 120 when the report
could not be written (its reader went away). `--json` prints the report the pipeline writes;
without it, a readable summary. The token estimate is approximate
(UTF-8 bytes / 4, no tokenizer) unless `--count-tokens` asks for the pipeline's count with the
model's tokenizer, which takes about 0.3 s of CPU more; the verdict and the split plan are the
same either way.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from batching.validation import limits

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: batchctl start-up
if TYPE_CHECKING:
    from typing import Any

    from rich.console import Console

    from batching.validation.validator import ValidationReport

SHOWN_PROBLEMS = 50


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


# The app settings these options default to, with the app's defaults (batching.settings takes
# them from the same module; importing the settings themselves would slow the start-up).
DEFAULTS: dict[str, object] = {
    "MAX_REQUESTS_PER_BATCH": limits.MAX_REQUESTS_PER_BATCH,
    "MAX_BYTES_PER_BATCH": 0,  # the batch mode's limit
    "MAX_LINE_BYTES": limits.MAX_LINE_BYTES,
    "INVALID_LINES": limits.INVALID_LINES,
}


def _setting(name: str) -> str:
    """The environment's value of a setting, else its default (as the app would read it).
    MAX_BYTES_PER_BATCH of 0 is the limit of AZURE_OPENAI_BATCH_MODE (default blob), as in the
    app."""
    value = os.environ.get(name, "").strip() or str(DEFAULTS[name])
    if name == "MAX_BYTES_PER_BATCH" and value == "0":
        mode = os.environ.get("AZURE_OPENAI_BATCH_MODE", "").strip() or "blob"
        return str(limits.MODE_MAX_BYTES.get(mode, limits.MAX_BYTES_PER_BATCH))
    return value


def register(commands: Any) -> None:
    """Add the `validate` subcommand to an argparse subparsers object."""
    parser = commands.add_parser(
        "validate", help="check a batch input file (.jsonl)", description=__doc__
    )
    parser.add_argument("file", type=Path, metavar="FILE")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument(
        "--count-tokens",
        action="store_true",
        help="count tokens with the model's tokenizer as the pipeline does (slower), instead of "
        "the approximate estimate",
    )
    parser.add_argument(
        "--deployment",
        action="append",
        default=[],
        metavar="NAME",
        help="a deployment the file may use (repeatable); others are model_not_found",
    )
    parser.add_argument(
        "--max-requests",
        type=_positive,
        default=_setting("MAX_REQUESTS_PER_BATCH"),
        help="split above this many requests (default: MAX_REQUESTS_PER_BATCH or %(default)s)",
    )
    parser.add_argument(
        "--max-bytes",
        type=_positive,
        default=_setting("MAX_BYTES_PER_BATCH"),
        help="split above this many bytes (default: MAX_BYTES_PER_BATCH or %(default)s)",
    )
    parser.add_argument(
        "--max-line-bytes",
        type=_positive,
        default=_setting("MAX_LINE_BYTES"),
        help="reject longer lines (default: MAX_LINE_BYTES or %(default)s)",
    )
    parser.add_argument(
        "--invalid-lines",
        choices=("reject", "skip"),
        default=_setting("INVALID_LINES"),
        help="reject the file or skip invalid lines (default: INVALID_LINES or %(default)s)",
    )
    parser.set_defaults(run=run, exit_at_once=True)


def run(args: argparse.Namespace) -> int:
    path: Path = args.file
    if not path.is_file():
        print(f"batchctl validate: {path}: no such file", file=sys.stderr)
        return 2
    size = path.stat().st_size
    counter = None
    if args.count_tokens:
        from batching.tokens.child import early_counter

        # A large file's token counter starts first, so it loads while the validator is imported.
        counter = early_counter(size)
    from batching.jsonlines import read_blocks
    from batching.validation.validator import ValidationOptions, validate

    options = ValidationOptions(
        max_requests_per_batch=args.max_requests,
        max_bytes_per_batch=args.max_bytes,
        max_line_bytes=args.max_line_bytes,
        deployments=tuple(args.deployment),
        invalid_lines=args.invalid_lines,
    )
    report = validate(
        read_blocks(path),
        options,
        size_hint=size,
        counter=counter,
        count_tokens=args.count_tokens,
    )
    if args.json:
        import orjson

        sys.stdout.buffer.write(orjson.dumps(report.to_dict(), option=orjson.OPT_INDENT_2))
        sys.stdout.buffer.write(b"\n")
    else:
        from rich.console import Console

        _summary(Console(highlight=False), path, report)
    return 0 if report.valid else 1


def _summary(console: Console, path: Path, report: ValidationReport) -> None:
    """The report for a person: verdict, figures, split plan, problems.

    Everything from the file (custom ids, names, messages quoting it) is printed as text, never
    as rich markup.
    """
    from rich.table import Table
    from rich.text import Text

    verdict = Text(f"{path}: ")
    verdict.append(*(("valid", "green") if report.valid else ("INVALID", "red")))
    console.print(verdict)
    facts = Table.grid(padding=(0, 2))
    facts.add_row("requests", f"{report.requests:,} on {report.lines:,} lines, {report.bytes:,} B")
    if report.blank_lines:
        facts.add_row("blank lines", f"{report.blank_lines:,} skipped (not an error)")
    if report.invalid_lines:
        action = "skipped" if report.options.invalid_lines == "skip" else "reject the file"
        facts.add_row("invalid lines", f"{report.invalid_lines:,} ({action})")
    facts.add_row("endpoint", Text(report.endpoint or "-"))
    facts.add_row("deployment", Text(f"{report.deployment or '-'} (family {report.model_family})"))
    if report.tokens:
        t = report.tokens
        about = "~" if t.method == "approximate" else ""
        facts.add_row(
            "tokens",
            f"{about}{t.total:,} = {about}{t.prompt:,} prompt + {t.completion_budget:,} "
            "completion budget",
        )
        if about:
            facts.add_row("", f"approximate, 4 bytes a token; --count-tokens: {t.encoding}")
        else:
            facts.add_row("", f"{t.encoding}, {t.method}")
    if report.table_columns:
        facts.add_row("table columns", Text(", ".join(report.table_columns)))
    console.print(facts)
    if len(report.split) > 1:
        plan = Table("chunk", "lines", "requests", "bytes", title="split plan")
        for c in report.split:
            lines = f"{c.first_line}-{c.last_line}"
            plan.add_row(str(c.index), lines, f"{c.requests:,}", f"{c.bytes:,}")
        console.print(plan)
    if report.problems:
        problems = Table("line", "code", "custom_id", "message", title="problems")
        for p in report.problems[:SHOWN_PROBLEMS]:
            problems.add_row(str(p.line), Text(p.code), Text(p.custom_id or ""), Text(p.message))
        console.print(problems)
        counts = ", ".join(f"{code} {n:,}" for code, n in sorted(report.problem_counts.items()))
        more = sum(report.problem_counts.values()) - min(len(report.problems), SHOWN_PROBLEMS)
        console.print(
            Text(f"problems by code: {counts}" + (f"; {more:,} more with --json" if more else ""))
        )
