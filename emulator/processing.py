"""Running the requests of a batch: synthesized (default) or answered by an upstream server.

Lines are run in a deterministic shuffled order (seeded per batch), so output files are not in
input order, as on the service. Each line's fate (an injected failure or not) depends only on the
batch seed and the line number, so a run resumed after a restart gives the same results.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson

from emulator import responses
from emulator.validation import normalize_url

UPSTREAM_CONCURRENCY = 16
MASK64 = (1 << 64) - 1


def _mix(seed: int, n: int) -> int:
    """splitmix64 of (seed, n): a cheap, stable per-line random number."""
    z = (seed * 0x9E3779B97F4A7C15 + n + 1) & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def processing_order(total: int, seed: int) -> list[int]:
    order = list(range(total))
    random.Random(seed).shuffle(order)  # noqa: S311 - repeatable order, not security
    return order


def read_lines(input_path: Path, offsets: array[int], indices: Sequence[int]) -> list[bytes]:
    with input_path.open("rb") as f:
        lines = []
        for i in indices:
            f.seek(offsets[i])
            lines.append(f.readline())
        return lines


@dataclass
class Chunk:
    """What a run of lines produced: bytes for the output and error files, and counts."""

    output: bytes = b""
    errors: bytes = b""
    completed: int = 0
    failed: int = 0


@dataclass(frozen=True)
class LineRunner:
    input_path: Path
    offsets: array[int]
    seed: int
    endpoint: str
    model: str
    failure_rate: float
    failure_status: int

    def _ids(self, index: int) -> tuple[str, str]:
        """Stable ids for a line: the output line's `id` and the `request_id`."""
        a, b = _mix(self.seed, 2 * index), _mix(self.seed, 2 * index + 1)
        return f"batch_req_{a:016x}{b:016x}", str(uuid.UUID(int=(a << 64) | b, version=4))

    def _injected_failure(self, index: int) -> bool:
        return (
            self.failure_rate > 0 and _mix(~self.seed & MASK64, index) / MASK64 < self.failure_rate
        )

    def _line(self, index: int, custom_id: str, status: int, body: Any, request_id: str) -> bytes:
        line_id, default_request_id = self._ids(index)
        return orjson.dumps(
            {
                "id": line_id,
                "custom_id": custom_id,
                "response": {
                    "status_code": status,
                    "request_id": request_id or default_request_id,
                    "body": body,
                },
                "error": None,
            }
        )

    def _synthesize(self, index: int, request: dict[str, Any], now: float) -> tuple[int, Any]:
        if self._injected_failure(index):
            return self.failure_status, responses.error_body(
                self.failure_status, "The emulator's scenario failed this request."
            )
        ident = self._ids(index)[0].removeprefix("batch_req_")[:24]
        if normalize_url(self.endpoint) == "/responses":
            return 200, responses.response(request["body"], self.model, ident, now)
        return 200, responses.chat_completion(request["body"], self.model, ident, now)

    def synthesize(self, indices: Sequence[int], now: float) -> Chunk:
        """Answer lines locally (CPU work: run it in a thread)."""
        chunk = Chunk()
        out, err = bytearray(), bytearray()
        for index, raw in zip(
            indices, read_lines(self.input_path, self.offsets, indices), strict=True
        ):
            request = orjson.loads(raw)
            status, body = self._synthesize(index, request, now)
            line = self._line(index, request["custom_id"], status, body, "") + b"\n"
            if status == 200:
                out += line
                chunk.completed += 1
            else:
                err += line
                chunk.failed += 1
        chunk.output, chunk.errors = bytes(out), bytes(err)
        return chunk

    async def forward(self, indices: Sequence[int], client: httpx.AsyncClient, base: str) -> Chunk:
        """Send each line's body to `{base}{url}` and record the real answer."""
        raws = await asyncio.to_thread(read_lines, self.input_path, self.offsets, indices)
        limit = asyncio.Semaphore(UPSTREAM_CONCURRENCY)

        async def one(index: int, raw: bytes) -> tuple[int, bytes]:
            request = orjson.loads(raw)
            if self._injected_failure(index):
                status, body = self._synthesize(index, request, 0.0)
                return status, self._line(index, request["custom_id"], status, body, "")
            async with limit:
                status, body, request_id = await _post(client, base, request)
            return status, self._line(index, request["custom_id"], status, body, request_id)

        results = await asyncio.gather(*(one(i, r) for i, r in zip(indices, raws, strict=True)))
        chunk = Chunk()
        chunk.output = b"".join(line + b"\n" for status, line in results if 200 <= status < 300)
        chunk.errors = b"".join(line + b"\n" for status, line in results if not 200 <= status < 300)
        chunk.completed = sum(1 for status, _ in results if 200 <= status < 300)
        chunk.failed = len(results) - chunk.completed
        return chunk

    def expired_lines(self, indices: Sequence[int]) -> bytes:
        """Error lines for requests the completion window left unrun (CPU work: use a thread)."""
        out = bytearray()
        for index, raw in zip(
            indices, read_lines(self.input_path, self.offsets, indices), strict=True
        ):
            line = {
                "id": self._ids(index)[0],
                "custom_id": orjson.loads(raw)["custom_id"],
                "response": None,
                "error": {
                    "code": "batch_expired",
                    "message": "This request could not be executed before the completion "
                    "window expired.",
                },
            }
            out += orjson.dumps(line) + b"\n"
        return bytes(out)


async def _post(
    client: httpx.AsyncClient, base: str, request: dict[str, Any]
) -> tuple[int, Any, str]:
    url = f"{base}{normalize_url(request['url'])}"
    try:
        reply = await client.post(url, json=request["body"])
    except httpx.HTTPError as exc:
        return 502, responses.error_body(502, f"Upstream {url} failed: {exc!r}"), ""
    request_id = reply.headers.get("x-request-id", "")
    try:
        return reply.status_code, reply.json(), request_id
    except ValueError:
        status = reply.status_code if reply.status_code >= 400 else 502
        return (
            status,
            responses.error_body(status, f"Upstream answered: {reply.text[:500]}"),
            request_id,
        )
