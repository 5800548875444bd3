"""The run commands' work (batchctl/runs.py defines their arguments): submit, runs, show,
cancel, retry, results.

Names, ids and messages that come from storage or the service are printed as text, never as
rich markup: a blob named `[/x].jsonl` is shown as it is.
"""

from __future__ import annotations

import argparse
import codecs
import csv
import io
import posixpath
import sys
import time
from collections.abc import Iterator
from typing import IO, Any

import orjson
from rich import box
from rich.console import Console
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from batchctl import TABLE_MIN_WIDTH
from batchctl.client import ApiError, Target
from batching.layout import is_input, run_id_for
from batching.steps.tables import answer_text, csv_writer, safe_cell
from batching.storage.blobpaths import BlobPathError, check_blob_path

FULL_TABLE_WIDTH = 160  # below this, a compact table (source under the id)


def _blob_names(args: argparse.Namespace, console: Console) -> list[str] | None:
    """The blob name of each file, checked before anything is uploaded; None after an error."""
    prefix = args.prefix.strip("/")
    names = []
    for path in args.files:
        if not path.is_file():
            console.print(Text(f"{path}: no such file", style="red"))
            return None
        name = posixpath.join(prefix, path.name) if prefix else path.name
        try:
            check_blob_path(name, "blob name")
        except BlobPathError as e:
            console.print(Text(f"{path}: {e}", style="red"))
            return None
        if not is_input(name):
            console.print(Text(f"{path}: only .jsonl files start runs", style="red"))
            return None
        names.append(name)
    return names


def submit(args: argparse.Namespace, console: Console) -> int:
    names = _blob_names(args, console)
    if names is None:
        return 2
    target = Target.from_args(args)
    container = target.blobs().get_container_client(target.input_container)
    for path, name in zip(args.files, names, strict=True):
        with path.open("rb") as f:
            uploaded = container.get_blob_client(name).upload_blob(f, overwrite=True)
        run_id = run_id_for(target.input_container, name, str(uploaded["etag"]))
        line = Text(f"uploaded {target.input_container}/{name}  run ")
        line.append(run_id, style="bold")
        console.print(line)
    return 0


def _bar(run: dict[str, Any]) -> ProgressBar:
    q = run.get("requests") or {}
    total = int(q.get("total") or 0)
    done = int(q.get("succeeded") or 0) + int(q.get("failed") or 0)
    return ProgressBar(total=max(total, 1), completed=done if total else 0, width=12)


def _printable(value: Any) -> str:
    """A value as one line of text: control characters (a newline in a name) shown escaped."""
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in str(value or ""))


def _fields(r: dict[str, Any]) -> dict[str, str]:
    """A run's columns as plain text, for every layout."""
    q = r.get("requests") or {}
    cost = (r.get("cost") or {}).get("total")
    counts = f"{q.get('succeeded', 0)}/{q.get('failed', 0)}/{q.get('total', 0)}"
    if q.get("not_run"):
        counts += f" ({q['not_run']} not run)"
    return {
        "run": _printable(r.get("id")),
        "status": _printable(r.get("status")),
        "phase": _printable(r.get("phase")),
        "ok/failed/total": counts,
        "tokens": _printable((r.get("tokens") or {}).get("total") or "-"),
        "cost": f"${cost:.4f}" if isinstance(cost, int | float) else "-",
        "source": _printable(r.get("source")),
    }


def _table(data: dict[str, Any], width: int) -> Table:
    """The runs as a table: every column when `width` allows (FULL_TABLE_WIDTH), else compact.

    Ids never wrap. The compact table has two columns: the id with the source under it, and the
    status and phase with the counts under them; no progress bar, tokens or cost (`-o plain` and
    `-o json` have them).
    """
    rows = [_fields(r) for r in data["runs"]]
    longest_id = max((len(f["run"]) for f in rows), default=3)
    more = " (more: --all, or --cursor NEXT)" if data.get("next") else ""
    title = Text(f"{len(data['runs'])} runs, newest first{more}")
    caption = Text(f"next: {data['next']}") if data.get("next") else None
    if width < FULL_TABLE_WIDTH:
        table = Table(title=title, caption=caption, box=box.SIMPLE_HEAD, pad_edge=False)
        table.add_column("run / source", no_wrap=True, min_width=longest_id)
        table.add_column("status / ok/failed/total", overflow="fold")
        for f in rows:
            source = Text(f["source"], style="dim", overflow="fold", no_wrap=False)
            table.add_row(
                Text(f["run"]) + Text("\n") + source,
                Text(f"{f['status']} {f['phase']}".strip() + "\n" + f["ok/failed/total"]),
            )
        return table
    table = Table(title=title, caption=caption, expand=True)
    table.add_column("run", no_wrap=True, min_width=longest_id)
    table.add_column("source", overflow="fold", ratio=1)
    for col in ("status", "phase"):
        table.add_column(col, no_wrap=True)
    table.add_column("progress", no_wrap=True)
    for col in ("ok/failed/total", "tokens", "cost"):
        table.add_column(col, no_wrap=True, justify="right")
    for r, f in zip(data["runs"], rows, strict=True):
        table.add_row(
            Text(f["run"]),
            Text(f["source"]),
            Text(f["status"]),
            Text(f["phase"]),
            _bar(r),
            Text(f["ok/failed/total"]),
            Text(f["tokens"]),
            Text(f["cost"]),
        )
    return table


def _plain(data: dict[str, Any]) -> str:
    """One run per line, id first, columns aligned; the source (any length) last."""
    rows = [_fields(r) for r in data["runs"]]
    names = ["run", "status", "phase", "ok/failed/total", "tokens", "cost", "source"]
    widths = {n: max([len(n), *(len(f[n]) for f in rows)]) for n in names[:-1]}
    lines = []
    for f in [{n: n.upper() for n in names}, *rows]:
        cells = [f[n].ljust(widths[n]) for n in names[:-1]]
        lines.append("  ".join([*cells, f["source"]]).rstrip() + "\n")
    return "".join(lines)


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
        data = _pages(target, params, args.all)
        layout = args.output or (
            "table" if console.is_terminal and console.width >= TABLE_MIN_WIDTH else "plain"
        )
        if layout == "json":
            sys.stdout.buffer.write(orjson.dumps(data) + b"\n")
        elif layout == "plain":
            sys.stdout.write(_plain(data))
        else:
            console.print(_table(data, console.width))
        return 0
    from rich.live import Live

    with Live(_table(_pages(target, params, False), console.width), console=console) as live:
        try:
            while True:
                time.sleep(2)
                live.update(_table(_pages(target, params, False), console.width))
        except KeyboardInterrupt:
            return 0


def _quoted(run_id: str) -> str:
    """The id as one URL path segment: a `/`, `?` or `#` in it cannot reach another route."""
    from urllib.parse import quote

    return quote(run_id, safe="")


def show(args: argparse.Namespace, console: Console) -> int:
    detail = Target.from_args(args).call("GET", f"runs/{_quoted(args.run_id)}")
    console.print_json(orjson.dumps(detail).decode())
    return 0


def cancel(args: argparse.Namespace, console: Console) -> int:
    Target.from_args(args).call("POST", f"runs/{_quoted(args.run_id)}/cancel")
    console.print(Text(f"cancelling {args.run_id}: its finished results will be written"))
    return 0


def retry(args: argparse.Namespace, console: Console) -> int:
    answer = Target.from_args(args).call("POST", f"runs/{_quoted(args.run_id)}/retry")
    line = Text(f"retrying {args.run_id} as run ")
    line.append(str(answer["id"]), style="bold")
    console.print(line)
    return 0


def _blob_lines(target: Target, ref: dict[str, str]) -> Iterator[bytes]:
    from batching.jsonlines import iter_lines

    blob = target.blobs().get_blob_client(ref["container"], ref["path"])
    for _, line in iter_lines(blob.download_blob().chunks()):
        if line.strip():
            yield line


def results(args: argparse.Namespace, console: Console) -> int:
    target = Target.from_args(args)
    detail = target.call("GET", f"runs/{_quoted(args.run_id)}")
    ref = (detail.get("outputs") or {}).get("results")
    if not ref:
        console.print(
            Text(f"run {args.run_id} is {detail['status']}: no results written yet", "yellow")
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
    buffer = io.StringIO()
    writer = csv_writer(buffer)

    def emit(row: list[str]) -> None:
        # Spreadsheet-safe, as table.csv is written (and so also for a table.csv written before)
        writer.writerow([safe_cell(c) for c in row])
        out.write(buffer.getvalue().encode())
        buffer.seek(0)
        buffer.truncate()

    table = (detail.get("outputs") or {}).get("table")
    if table:
        blob = target.blobs().get_blob_client(table["container"], table["path"])
        for row in csv.reader(_text_lines(blob.download_blob().chunks())):
            emit(row)
        return
    emit(["custom_id", "content"])
    for line in _blob_lines(target, ref):
        parsed = orjson.loads(line)
        emit(
            [
                str(parsed.get("custom_id")),
                answer_text((parsed.get("response") or {}).get("body")) or "",
            ]
        )


def _text_lines(blocks: Iterator[bytes]) -> Iterator[str]:
    """UTF-8 text lines with their endings (a `\\r` inside a quoted cell is kept), for csv."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    rest = ""
    for block in blocks:
        rest += decoder.decode(block)
        *lines, rest = rest.split("\n")
        for line in lines:
            yield line + "\n"
    rest += decoder.decode(b"", final=True)
    if rest:
        yield rest


def run_command(func: Any, args: argparse.Namespace) -> int:
    from azure.core.exceptions import AzureError

    console = Console(highlight=False)
    try:
        code: int = func(args, console)
        return code
    except ApiError as e:
        console.print(Text(str(e), style="red"))
        return 1
    except AzureError as e:  # storage: a missing container or blob, a refused credential
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        console.print(Text(f"storage: {first}", style="red"))
        return 1
    except OSError as e:  # a file to write that cannot be: no such folder, no permission
        console.print(Text(f"{e.strerror or type(e).__name__}: {e.filename or ''}", style="red"))
        return 1
    except ValueError as e:  # a stored output that is not what the run writes (not JSON)
        console.print(Text(f"unreadable output: {str(e).splitlines()[0][:200]}", style="red"))
        return 1
