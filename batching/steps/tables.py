"""table.csv: structured outputs flattened to one row per request.

When requests ask for a json_schema response, each answer is a JSON object with the schema's
properties; the table has `custom_id` and one column per property, which is what people build
by hand from the seeds' notebooks. Requests that failed get a row with empty cells. Rows follow
the input's order (the pipeline gives them merged by input position: `batching.steps.finalize`).

Cells are spreadsheet-safe (OWASP CSV injection): a cell a spreadsheet would read as a formula
(starting with `=`, `+`, `-`, `@`, tab or carriage return) gets a leading `'`, which
spreadsheets show as text. Plain numbers such as `-3.5` are left alone: they are not formulas.
"""

from __future__ import annotations

import csv
import io
import itertools
import re
from collections.abc import Iterable
from typing import Any

import orjson

from batching.jsonlines import iter_lines
from batching.steps.results import Sink


def answer_text(body: Any) -> str | None:
    """The model's text in a chat.completion or a Responses API object."""
    if not isinstance(body, dict):
        return None
    choices = body.get("choices")
    if isinstance(choices, list) and choices:
        content = (choices[0].get("message") or {}).get("content")
        return content if isinstance(content, str) else None
    for item in body.get("output") or []:
        for part in item.get("content") or [] if isinstance(item, dict) else []:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                return str(part["text"])
    return None


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def safe_cell(text: str) -> str:
    """The cell as a spreadsheet shows it as text: `'` before a would-be formula."""
    if text.startswith(FORMULA_START) and not _NUMBER.fullmatch(text):
        return "'" + text
    return text


def csv_writer(buffer: io.StringIO) -> Any:
    """The CSV dialect of table.csv and `batchctl results --format csv`."""
    return csv.writer(buffer, lineterminator="\n")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


def write_table(
    columns: list[str],
    results: Iterable[Iterable[bytes]],
    failures: Iterable[Iterable[bytes]],
    out: Sink,
) -> int:
    """The CSV of result lines, then failure lines, each given as byte blocks."""
    successes = (("results", raw) for blocks in results for _, raw in iter_lines(blocks))
    failed = (("failures", raw) for blocks in failures for _, raw in iter_lines(blocks))
    return write_rows(columns, itertools.chain(successes, failed), out)


def write_rows(columns: list[str], lines: Iterable[tuple[str, bytes]], out: Sink) -> int:
    """Write the CSV (header, then a row per request, in the order of `lines`: ("results" or
    "failures", line)); returns the number of rows."""
    buffer = io.StringIO()
    writer = csv_writer(buffer)

    def emit(row: list[str]) -> None:
        writer.writerow([safe_cell(c) for c in row])  # the header too: names come from a schema
        out.write(buffer.getvalue().encode())
        buffer.seek(0)
        buffer.truncate()

    emit(["custom_id", *columns])
    rows = 0
    for kind, raw in lines:
        if not raw.strip():
            continue
        line = orjson.loads(raw)
        if kind == "failures":
            emit([str(line.get("custom_id")), *([""] * len(columns))])
            rows += 1
            continue
        text = answer_text((line.get("response") or {}).get("body"))
        try:
            parsed = orjson.loads(text) if text else {}
        except orjson.JSONDecodeError:
            parsed = {}
        values = parsed if isinstance(parsed, dict) else {}
        emit([str(line.get("custom_id")), *(_cell(values.get(c)) for c in columns)])
        rows += 1
    return rows
