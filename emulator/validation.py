"""The `validating` step: one streaming pass over an input file.

It checks every line with the service's error codes, counts the requests and their estimated
tokens, and records where each line starts (offsets.bin) so that processing can later read the
lines in any order without holding the file in memory.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from emulator import tokens

MAX_REQUESTS = 100_000
MAX_REPORTED_ERRORS = 1_000
BOM = b"\xef\xbb\xbf"
SUPPORTED_URLS = ("/chat/completions", "/responses")


def normalize_url(url: str) -> str:
    """`/v1/chat/completions` and `/chat/completions` name the same endpoint."""
    return url.removeprefix("/v1") if url.startswith("/v1/") else url


def error(code: str, message: str, line: int | None) -> dict[str, Any]:
    return {"code": code, "message": message, "param": None, "line": line}


@dataclass
class ScanResult:
    total: int = 0
    deployment: str | None = None
    estimated_tokens: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)

    def add(self, code: str, message: str, line: int | None) -> None:
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append(error(code, message, line))


class _LineChecker:
    def __init__(self, endpoint: str, deployments: frozenset[str], result: ScanResult) -> None:
        self.endpoint = normalize_url(endpoint)
        self.deployments = deployments
        self.result = result
        self.custom_ids: set[str] = set()

    def check(self, raw: bytes, n: int) -> None:
        try:
            line = orjson.loads(raw)
        except orjson.JSONDecodeError:
            self.result.add("invalid_json_line", f"Line {n} is not valid JSON.", n)
            return
        if not isinstance(line, dict):
            self.result.add("invalid_request", f"Line {n} is not a JSON object.", n)
            return
        custom_id, method, url, body = (line.get(k) for k in ("custom_id", "method", "url", "body"))
        if not isinstance(custom_id, str) or not custom_id:
            self.result.add("invalid_request", f"Line {n} has no 'custom_id' string.", n)
        elif custom_id in self.custom_ids:
            self.result.add(
                "duplicate_custom_id", f"The custom_id '{custom_id}' on line {n} is not unique.", n
            )
        else:
            self.custom_ids.add(custom_id)
        if method != "POST":
            self.result.add("invalid_request", f"Line {n}: 'method' must be 'POST'.", n)
        if not isinstance(url, str):
            self.result.add("invalid_request", f"Line {n} has no 'url'.", n)
        elif normalize_url(url) != self.endpoint:
            self.result.add(
                "url_mismatch",
                f"The url '{url}' on line {n} does not match the batch endpoint '{self.endpoint}'.",
                n,
            )
        if not isinstance(body, dict):
            self.result.add("invalid_request", f"Line {n} has no 'body' object.", n)
            return
        self._check_model(body, n)
        self.result.estimated_tokens += tokens.enqueued_estimate(body)

    def _check_model(self, body: dict[str, Any], n: int) -> None:
        model = body.get("model")
        if not isinstance(model, str) or not model:
            self.result.add("invalid_request", f"Line {n}: 'body.model' is required.", n)
        elif model not in self.deployments:
            self.result.add(
                "model_not_found", f"The deployment '{model}' on line {n} does not exist.", n
            )
        elif self.result.deployment is None:
            self.result.deployment = model
        elif model != self.result.deployment:
            self.result.add(
                "model_mismatch",
                f"Line {n} uses deployment '{model}' but earlier lines use "
                f"'{self.result.deployment}': all requests must use the same deployment.",
                n,
            )


def scan(path: Path, offsets_path: Path, endpoint: str, deployments: frozenset[str]) -> ScanResult:
    """Validate `path`; write the request lines' start offsets to `offsets_path`."""
    result = ScanResult()
    checker = _LineChecker(endpoint, deployments, result)
    offsets = array("Q")
    with path.open("rb") as f:
        if f.read(len(BOM)) == BOM:
            result.add(
                "invalid_json_line",
                "The file starts with a UTF-8 byte-order mark (BOM): save it as UTF-8 without BOM.",
                1,
            )
            return result
        f.seek(0)
        position = 0
        for n, raw in enumerate(f, start=1):
            start, position = position, position + len(raw)
            if not raw.strip():
                continue  # blank lines (e.g. a trailing one) carry no request
            if len(offsets) == MAX_REQUESTS:
                result.add(
                    "too_many_tasks",
                    f"The file has more than {MAX_REQUESTS:,} requests (line {n}).",
                    n,
                )
                return result
            offsets.append(start)
            checker.check(raw, n)
    if not offsets:
        result.add("empty_file", "The input file is empty.", None)
    result.total = len(offsets)
    with offsets_path.open("wb") as out:
        offsets.tofile(out)
    return result


def load_offsets(offsets_path: Path) -> array[int]:
    offsets = array("Q")
    with offsets_path.open("rb") as f:
        offsets.frombytes(f.read())
    return offsets
