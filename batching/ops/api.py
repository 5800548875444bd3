"""What the runs API accepts and how it says no: request checks and public error answers.

Plain Python (no azure.functions): the HTTP triggers parse the request with these and turn a
`Problem` into its JSON answer. Every answer for bad input is a 4xx with a one-line `error`, a
stable `code` and, for a 400, the `field` that was wrong. Nothing here quotes a traceback, a
server path or a storage request id: those go to the logs, under the run id.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from batching.layout import is_input
from batching.ops import runindex
from batching.statuses import RunStatus
from batching.storage.blobpaths import BlobPathError, check_blob_path

MAX_BODY_BYTES = 16 * 1024  # POST /api/runs takes {"path": ...}: a 1,024-character name fits
MAX_LIMIT = 200
MAX_PREFIX_CHARS = 1024
# What `status=` may filter on: every status a run shows (batching.statuses).
STATUSES = tuple(s.value for s in RunStatus if s is not RunStatus.PENDING)
# Run ids are `<slug>-<16 hex>` (batching.layout.run_id_for); anything else names no run.
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
_WHOLE = re.compile(r"[0-9]{1,9}")


class Problem(Exception):
    """An answer other than success: HTTP status, stable code, one-line message, bad field."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field

    def body(self) -> dict[str, Any]:
        answer: dict[str, Any] = {"error": self.message, "code": self.code}
        if self.field:
            answer["field"] = self.field
        return answer


def bad(field: str, message: str) -> Problem:
    return Problem(400, "bad_request", f"{field}: {message}", field)


def not_allowed(method: str, allowed: tuple[str, ...]) -> Problem:
    shown = method if method.isascii() and method.isprintable() else "this method"
    return Problem(
        405, "method_not_allowed", f"{shown[:20]} is not allowed here; use {', '.join(allowed)}"
    )


def internal(reference: str) -> Problem:
    """An unexpected failure: the answer names only a reference the logs carry too."""
    return Problem(500, "internal_error", f"internal error; the logs have it under {reference}")


def unavailable(what: str) -> Problem:
    return Problem(503, "unavailable", f"{what} did not answer; try again shortly")


@dataclass(frozen=True)
class ListQuery:
    status: str | None
    prefix: str | None
    limit: int
    cursor: str | None  # the `next` of a previous page: a runs-index row key
    since: str | None  # ISO 8601 times bounding when the runs' uploads arrived
    until: str | None


def _whole(params: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    text = params.get(name)
    if text is None:
        return default
    if not _WHOLE.fullmatch(text) or not low <= int(text) <= high:
        raise bad(name, f"must be a whole number from {low:,} to {high:,}")
    return int(text)


def list_query(params: Mapping[str, str]) -> ListQuery:
    """GET /api/runs's query: status (one of STATUSES), prefix, limit (1-200), cursor (a
    previous page's `next`), since and until (ISO 8601).

    Other parameters (`code`, the function key in Azure) are ignored.
    """
    status = params.get("status") or None
    if status is not None and status not in STATUSES:
        raise bad("status", f"must be one of {', '.join(STATUSES)}")
    prefix = params.get("prefix") or None
    if prefix is not None and len(prefix) > MAX_PREFIX_CHARS:
        raise bad("prefix", f"is longer than {MAX_PREFIX_CHARS:,} characters")
    cursor = params.get("cursor") or None
    if cursor is not None and not runindex.CURSOR.fullmatch(cursor):
        raise bad("cursor", "must be the `next` of a previous page")
    times = {}
    for name in ("since", "until"):
        value = params.get(name) or None
        if value is not None:
            try:
                datetime.fromisoformat(value)
            except ValueError:
                raise bad(name, "must be an ISO 8601 time") from None
        times[name] = value
    return ListQuery(
        status,
        prefix,
        _whole(params, "limit", 50, 1, MAX_LIMIT),
        cursor,
        times["since"],
        times["until"],
    )


def check_body_size(body: bytes) -> None:
    if len(body) > MAX_BODY_BYTES:
        raise Problem(
            413, "too_large", f"the request body is over {MAX_BODY_BYTES:,} bytes", "body"
        )


def start_path(body: bytes) -> str:
    """The input path of POST /api/runs {"path": "<folder>/<file>.jsonl"}."""
    check_body_size(body)
    try:
        data = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        raise bad("body", 'is not JSON; send {"path": "<folder>/<file>.jsonl"}') from None
    if not isinstance(data, dict) or "path" not in data:
        raise bad("path", 'is missing; send {"path": "<folder>/<file>.jsonl"}')
    path = data["path"]
    if not isinstance(path, str):
        raise bad("path", "must be a string")
    try:
        check_blob_path(path)
    except BlobPathError as e:
        raise bad("path", str(e).removeprefix("path ")) from None
    if not is_input(path):
        raise bad("path", "must name a .jsonl file (not a hidden one)")
    return path


def run_id(value: str) -> str:
    """A run id from the route; 400 when it cannot be one."""
    if not _RUN_ID.fullmatch(value):
        raise bad("id", "is not a run id (letters, digits, '.', '_' and '-', at most 200)")
    return value


_ACTIVITY = re.compile(r"Activity function '(\w+)' failed")
_ERROR_TYPE = re.compile(r"\b([A-Z][A-Za-z0-9]*(?:Error|Exception|Exceeded|Timeout))\b")


def public_error(detail: Any) -> dict[str, str] | None:
    """A failed orchestration's output as clients may see it: a code and a one-line reason.

    The output itself (exception text, traceback, storage request ids) stays on the server.
    """
    if detail is None:
        return None
    text = detail if isinstance(detail, str) else orjson.dumps(detail).decode()
    activity = _ACTIVITY.search(text)
    kind = _ERROR_TYPE.search(text)
    where = f"step {activity.group(1)}" if activity else "the run"
    what = f" ({kind.group(1)})" if kind else ""
    return {
        "code": "internal_error",
        "reason": f"{where} failed on an unexpected error{what}; the logs have the detail",
    }
