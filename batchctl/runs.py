"""batchctl commands to operate runs: submit, runs, show, cancel, retry, results."""

from __future__ import annotations

import argparse
import csv
import io
import posixpath
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import orjson
from rich.console import Console
from rich.progress_bar import ProgressBar
from rich.table import Table

from batchctl.client import ApiError, Target
from batching.layout import run_id_for
from batching.tables import answer_text


def add_target_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--api", help="runs API base URL (BATCHCTL_API; default the local stack)")
    p.add_argument("--key", help="function key for the API in Azure (BATCHCTL_KEY)")
    p.add_argument(
        "--account-url", help="storage blob URL, signed in with az login (BATCHCTL_ACCOUNT_URL)"
    )
    p.add_argument("--storage-connection", help="storage connection string (BATCHCTL_STORAGE)")
    p.add_argument("--input-container", default="batch-input")
    p.add_argument("--output-container", default="batch-output")


def _command(sub: Any, name: str, helptext: str, func: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(name, help=helptext)
    add_target_options(p)
    # `run` is what batchctl's main dispatches; it reports API errors as exit status 1.
    p.set_defaults(func=func, run=lambda args: run_command(args.func, args))
    return p


def register(sub: Any) -> None:
    """Add the run commands to batchctl's subparsers."""
    p = _command(sub, "submit", "upload JSONL files into the input container", submit)
    p.add_argument("files", nargs="+", type=Path)
    p.add_argument("--prefix", default="", help="folder inside the input container, e.g. team/q1/")
    p = _command(sub, "runs", "list runs with their progress", list_runs)
    p.add_argument("--status")
    p.add_argument("--prefix")
    p.add_argument("--since", help="runs received at or after this ISO time")
    p.add_argument("--until", help="runs received before this ISO time")
    p.add_argument("--limit", type=int, default=50, help="runs per page (at most 200)")
    p.add_argument("--cursor", help="the page after a previous listing's `next`")
    p.add_argument("--all", action="store_true", help="follow `next` through every page")
    p.add_argument("--watch", action="store_true", help="refresh every 2 s until Ctrl-C")
    _command(sub, "show", "a run's detail", show).add_argument("run_id", metavar="RUN")
    _command(sub, "cancel", "cancel a running run", cancel).add_argument("run_id", metavar="RUN")
    _command(sub, "retry", "reprocess a run that did not complete", retry).add_argument(
        "run_id", metavar="RUN"
    )
    p = _command(sub, "results", "a run's results, as JSONL or CSV", results)
    p.add_argument("run_id", metavar="RUN")
    p.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    p.add_argument("-o", "--output", type=Path, help="file to write (default: standard output)")


def submit(args: argparse.Namespace, console: Console) -> int:
    target = Target.from_args(args)
    container = target.blobs().get_container_client(target.input_container)
    prefix = args.prefix.strip("/")
    for path in args.files:
        if not path.is_file():
            console.print(f"[red]{path}: no such file[/red]")
            return 2
        name = posixpath.join(prefix, path.name) if prefix else path.name
        with path.open("rb") as f:
            uploaded = container.get_blob_client(name).upload_blob(f, overwrite=True)
        run_id = run_id_for(target.input_container, name, str(uploaded["etag"]))
        console.print(f"uploaded {target.input_container}/{name}  run [bold]{run_id}[/bold]")
    return 0


def _bar(run: dict[str, Any]) -> ProgressBar:
    q = run.get("requests") or {}
    total = int(q.get("total") or 0)
    done = int(q.get("succeeded") or 0) + int(q.get("failed") or 0)
    return ProgressBar(total=max(total, 1), completed=done if total else 0, width=20)


def _table(data: dict[str, Any]) -> Table:
    more = " (more: --all, or --cursor NEXT)" if data.get("next") else ""
    title = f"{len(data['runs'])} runs, newest first{more}"
    table = Table(
        title=title, caption=f"next: {data['next']}" if data.get("next") else None, expand=True
    )
    for col in (
        "run",
        "source",
        "status",
        "phase",
        "progress",
        "ok/failed/total",
        "tokens",
        "cost",
    ):
        table.add_column(col, overflow="fold")
    for r in data["runs"]:
        q = r.get("requests") or {}
        cost = (r.get("cost") or {}).get("total")
        table.add_row(
            r["id"],
            str(r.get("source") or ""),
            r["status"],
            str(r.get("phase") or ""),
            _bar(r),
            f"{q.get('succeeded', 0)}/{q.get('failed', 0)}/{q.get('total', 0)}",
            str((r.get("tokens") or {}).get("total") or "-"),
            f"${cost:.4f}" if isinstance(cost, int | float) else "-",
        )
    return table


def _pages(target: Target, params: dict[str, str], every: bool) -> dict[str, Any]:
    """One page of the runs index, or with `every` all of them, following `next`."""
    data: dict[str, Any] = target.call("GET", "runs", params=params)
    runs = list(data["runs"])
    while every and data.get("next"):
        data = target.call("GET", "runs", params={**params, "cursor": data["next"]})
        runs.extend(data["runs"])
    return {"runs": runs, "next": data.get("next")}


def list_runs(args: argparse.Namespace, console: Console) -> int:
    target = Target.from_args(args)
    params = {
        k: v
        for k, v in {
            "status": args.status,
            "prefix": args.prefix,
            "since": args.since,
            "until": args.until,
            "cursor": args.cursor,
            "limit": str(args.limit),
        }.items()
        if v
    }
    if not args.watch:
        console.print(_table(_pages(target, params, args.all)))
        return 0
    from rich.live import Live

    with Live(_table(_pages(target, params, False)), console=console) as live:
        try:
            while True:
                time.sleep(2)
                live.update(_table(_pages(target, params, False)))
        except KeyboardInterrupt:
            return 0


def show(args: argparse.Namespace, console: Console) -> int:
    detail = Target.from_args(args).call("GET", f"runs/{args.run_id}")
    console.print_json(orjson.dumps(detail).decode())
    return 0


def cancel(args: argparse.Namespace, console: Console) -> int:
    Target.from_args(args).call("POST", f"runs/{args.run_id}/cancel")
    console.print(f"cancelling {args.run_id}: its finished results will be written")
    return 0


def retry(args: argparse.Namespace, console: Console) -> int:
    answer = Target.from_args(args).call("POST", f"runs/{args.run_id}/retry")
    console.print(f"retrying {args.run_id} as run [bold]{answer['id']}[/bold]")
    return 0


def _blob_lines(target: Target, ref: dict[str, str]) -> Iterator[bytes]:
    from batching.jsonlines import iter_lines

    blob = target.blobs().get_blob_client(ref["container"], ref["path"])
    for _, line in iter_lines(blob.download_blob().chunks()):
        if line.strip():
            yield line


def results(args: argparse.Namespace, console: Console) -> int:
    target = Target.from_args(args)
    detail = target.call("GET", f"runs/{args.run_id}")
    ref = (detail.get("outputs") or {}).get("results")
    if not ref:
        console.print(
            f"[yellow]run {args.run_id} is {detail['status']}: no results written yet[/yellow]"
        )
        return 1
    out: IO[bytes] = args.output.open("wb") if args.output else sys.stdout.buffer
    try:
        if args.format == "jsonl":
            for line in _blob_lines(target, ref):
                out.write(line + b"\n")
        else:
            _write_csv(target, detail, ref, out)
    finally:
        if args.output:
            out.close()
    return 0


def _write_csv(target: Target, detail: dict[str, Any], ref: dict[str, str], out: IO[bytes]) -> None:
    """table.csv when the run has one (structured outputs), else custom_id and answer text."""
    table = (detail.get("outputs") or {}).get("table")
    if table:
        blob = target.blobs().get_blob_client(table["container"], table["path"])
        for block in blob.download_blob().chunks():
            out.write(block)
        return
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["custom_id", "content"])
    for line in _blob_lines(target, ref):
        parsed = orjson.loads(line)
        writer.writerow(
            [parsed.get("custom_id"), answer_text((parsed.get("response") or {}).get("body")) or ""]
        )
        out.write(buffer.getvalue().encode())
        buffer.seek(0)
        buffer.truncate()
    out.write(buffer.getvalue().encode())


def run_command(func: Any, args: argparse.Namespace) -> int:
    from azure.core.exceptions import AzureError

    console = Console()
    try:
        code: int = func(args, console)
        return code
    except ApiError as e:
        console.print(f"[red]{e}[/red]")
        return 1
    except AzureError as e:  # storage: a missing container or blob, a refused credential
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        console.print(f"[red]storage: {first}[/red]")
        return 1
