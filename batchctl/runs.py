"""batchctl's run commands, as the command line sees them: submit, runs, show, cancel, retry,
results. Only the argument definitions live here, so `batchctl COMMAND --help` loads nothing
heavy; the commands themselves are in batchctl/commands.py, imported when one runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from batchctl import TABLE_MIN_WIDTH


def add_target_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--api", help="runs API base URL (BATCHCTL_API; default the local stack)")
    p.add_argument("--key", help="function key for the API in Azure (BATCHCTL_KEY)")
    p.add_argument(
        "--account-url", help="storage blob URL, signed in with az login (BATCHCTL_ACCOUNT_URL)"
    )
    p.add_argument("--storage-connection", help="storage connection string (BATCHCTL_STORAGE)")
    p.add_argument("--input-container", default="batch-input")
    p.add_argument("--output-container", default="batch-output")


def _command(sub: Any, name: str, helptext: str, func: str) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(name, help=helptext)
    add_target_options(p)
    # `run` is what batchctl's main dispatches; it reports API errors as exit status 1.
    p.set_defaults(func=func, run=_run)
    return p


def _run(args: argparse.Namespace) -> int:
    from batchctl import commands

    return commands.run_command(getattr(commands, args.func), args)


def register(sub: Any) -> None:
    """Add the run commands to batchctl's subparsers."""
    p = _command(sub, "submit", "upload JSONL files into the input container", "submit")
    p.add_argument("files", nargs="+", type=Path)
    p.add_argument("--prefix", default="", help="folder inside the input container, e.g. team/q1/")
    p = _command(sub, "runs", "list runs with their progress", "list_runs")
    p.add_argument("--status")
    p.add_argument("--prefix")
    p.add_argument("--since", help="runs received at or after this ISO time")
    p.add_argument("--until", help="runs received before this ISO time")
    p.add_argument("--limit", type=int, default=50, help="runs per page (at most 200)")
    p.add_argument("--cursor", help="the page after a previous listing's `next`")
    p.add_argument("--all", action="store_true", help="follow `next` through every page")
    p.add_argument("--watch", action="store_true", help="refresh every 2 s until Ctrl-C")
    p.add_argument(
        "-o",
        "--output",
        choices=("table", "plain", "json"),
        help="table, plain (one run per line, id first) or json (the API's answer); default: "
        f"table on a terminal of {TABLE_MIN_WIDTH}+ columns, else plain",
    )
    _command(sub, "show", "a run's detail", "show").add_argument("run_id", metavar="RUN")
    _command(sub, "cancel", "cancel a running run", "cancel").add_argument("run_id", metavar="RUN")
    _command(sub, "retry", "reprocess a run that did not complete", "retry").add_argument(
        "run_id", metavar="RUN"
    )
    p = _command(sub, "results", "a run's results in input order, as JSONL or CSV", "results")
    p.add_argument("run_id", metavar="RUN")
    p.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    p.add_argument("-o", "--output", type=Path, help="file to write (default: standard output)")
