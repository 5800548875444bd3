"""The HTTP surface: the service's files and batches routes, and the `/_emulator/` control API.

The same routes answer under `/openai/...?api-version=V` (classic, versioned) and `/openai/v1/...`
(GA, no version). Every call is counted under its classic route template, e.g.
`GET /openai/batches/{batch_id}`, whichever surface it came through.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from emulator import uploads
from emulator.blobs import BlobUrl, Storage, parse_url
from emulator.clock import Clock
from emulator.config import Settings
from emulator.errors import ACCESS_DENIED, ApiError, bad_request, not_found
from emulator.lifecycle import Lifecycle
from emulator.scenario import Scenario
from emulator.store import TERMINAL, BatchRecord, FileRecord, Store
from emulator.validation import SUPPORTED_URLS, normalize_url

API_VERSIONS = frozenset(
    {
        "2024-07-01-preview",
        "2024-10-01-preview",
        "2024-10-21",
        "2025-03-01-preview",
        "2025-04-01-preview",
    }
)
# The dated versions that know `input_blob` / `output_folder` (and the v1 API does).
BLOB_API_VERSIONS = frozenset({"2025-04-01-preview"})
MAX_FILE_BYTES = 200 * 1024 * 1024
EXPIRES_AFTER_SECONDS = (1_209_600, 2_592_000)  # 14 to 30 days, as the service allows
FILE_PROCESSING_SHARE, FILE_PROCESSING_MAX = 0.1, 1.0
MAX_METADATA_KEYS, MAX_METADATA_KEY, MAX_METADATA_VALUE = 16, 64, 512
INJECTED_MESSAGES = {
    429: "Requests to the Batch API have exceeded the call rate limit. Please retry after 0 s.",
    500: "The server had an error while processing your request.",
    503: "The service is temporarily unavailable.",
}


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status, headers, media_type="application/json")


@dataclass
class Emulator:
    """Everything a request handler needs, created once per app."""

    settings: Settings
    store: Store
    clock: Clock
    lifecycle: Lifecycle
    storage: Storage
    scenario: Scenario = field(default_factory=Scenario)
    requests: Counter[str] = field(default_factory=Counter)

    def duration(self) -> float:
        return self.scenario.batch_duration or self.settings.batch_duration


def _em(request: Request) -> Emulator:
    em: Emulator = request.app.state.emulator
    return em


async def _drain(request: Request) -> None:
    """Read an unread body to its end so a refused upload still gets its answer delivered."""
    with contextlib.suppress(Exception):
        async for _ in request.stream():
            pass


async def gate(request: Request) -> None:
    """Count the call, then check api-version, auth and injected failures (before any effect)."""
    em = _em(request)
    em.requests[f"{request.method} /openai{request.scope['route'].path}"] += 1
    problem: ApiError | None = None
    classic = not request.url.path.startswith("/openai/v1/")
    if classic and request.query_params.get("api-version") not in API_VERSIONS:
        problem = not_found()
    elif not _authorized(request, em.settings.api_key):
        problem = ApiError(401, "401", ACCESS_DENIED)
    elif em.scenario.api_call_fails():
        status = em.scenario.api_failure_status
        message = INJECTED_MESSAGES.get(
            status, f"The emulator's scenario failed this call ({status})."
        )
        problem = ApiError(
            status,
            str(status),
            message,
            error_type="server_error" if status >= 500 else "requests",
            headers={"Retry-After": "0", "retry-after-ms": "10"},
        )
    if problem is not None:
        await _drain(request)
        raise problem


def _authorized(request: Request, api_key: str | None) -> bool:
    """With a key: `api-key` must match it; any Bearer token passes (it stands in for Entra ID)."""
    if api_key is None:
        return True
    given = request.headers.get("api-key")
    if given is not None:
        return hmac.compare_digest(given.encode(), api_key.encode())
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and bool(token.strip())


router = APIRouter(dependencies=[Depends(gate)])


# --- files ---------------------------------------------------------------------------------
def _expires_after(fields: dict[str, str]) -> int | None:
    """`expires_after[anchor]`/`[seconds]` (SDK form) or `expires_after.anchor`/`.seconds`."""
    anchor = fields.get("expires_after[anchor]", fields.get("expires_after.anchor"))
    seconds = fields.get("expires_after[seconds]", fields.get("expires_after.seconds"))
    if anchor is None and seconds is None:
        return None
    if anchor != "created_at":
        raise bad_request(
            "expires_after.anchor must be 'created_at'.", param="expires_after.anchor"
        )
    low, high = EXPIRES_AFTER_SECONDS
    try:
        value = int(seconds or "")
    except ValueError:
        value = -1
    if not low <= value <= high:
        raise bad_request(
            f"expires_after.seconds must be an integer between {low} and {high}.",
            param="expires_after.seconds",
        )
    return value


@router.post("/files")
async def upload_file(request: Request) -> Response:
    em = _em(request)
    dest = em.store.upload_path()
    upload = await uploads.receive(request, dest, MAX_FILE_BYTES)
    try:
        if upload.filename is None:
            raise bad_request("The request has no 'file' part.", param="file")
        if upload.too_large:
            raise bad_request(
                f"The file is too large: {upload.size:,} bytes. Batch input files may be at most "
                f"200 MB ({MAX_FILE_BYTES:,} bytes).",
                code="file_too_large",
                param="file",
            )
        purpose = upload.fields.get("purpose")
        if purpose != "batch":
            raise bad_request(
                f"Invalid purpose {purpose!r}: this emulator accepts only 'batch'.", param="purpose"
            )
        expires_after = _expires_after(upload.fields)
    except ApiError:
        dest.unlink(missing_ok=True)
        raise
    now = em.clock.now()
    # On a frozen clock no time passes during a call, so a file is processed at once.
    delay = (
        0.0 if em.clock.frozen else min(em.duration() * FILE_PROCESSING_SHARE, FILE_PROCESSING_MAX)
    )
    record = FileRecord(
        id=em.store.new_file_id(),
        filename=upload.filename or "upload.jsonl",
        purpose=purpose,
        bytes=upload.size,
        created_at=now,
        processed_at=now + delay,
        expires_at=None if expires_after is None else int(now) + expires_after,
    )
    em.store.add_file(record, dest)
    return json_response(record.view(now))


def _page(items: list[dict[str, Any]], after: str | None, limit: int) -> dict[str, Any]:
    """A cursor page: the items after the one with id `after`, at most `limit` of them."""
    if after is not None:
        ids = [i["id"] for i in items]
        items = items[ids.index(after) + 1 :] if after in ids else []
    data = items[:limit]
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": len(items) > limit,
    }


def _limit(request: Request, default: int, maximum: int) -> int:
    raw = request.query_params.get("limit")
    try:
        value = default if raw is None else int(raw)
    except ValueError:
        value = 0
    if not 1 <= value <= maximum:
        raise bad_request(f"limit must be an integer between 1 and {maximum}.", param="limit")
    return value


@router.get("/files")
async def list_files(request: Request) -> Response:
    em = _em(request)
    now = em.clock.now()
    purpose = request.query_params.get("purpose")
    order = request.query_params.get("order", "desc")
    if order not in ("asc", "desc"):
        raise bad_request("order must be 'asc' or 'desc'.", param="order")
    files = [f.view(now) for f in em.store.live_files(now) if purpose in (None, f.purpose)]
    if order == "desc":
        files.reverse()
    limit = _limit(request, 10_000, 10_000)
    return json_response(_page(files, request.query_params.get("after"), limit))


def _file(em: Emulator, file_id: str) -> FileRecord:
    record = em.store.live_file(file_id, em.clock.now())
    if record is None:
        raise not_found(f"File '{file_id}' not found.")
    return record


@router.get("/files/{file_id}")
async def get_file(request: Request, file_id: str) -> Response:
    em = _em(request)
    return json_response(_file(em, file_id).view(em.clock.now()))


@router.delete("/files/{file_id}")
async def delete_file(request: Request, file_id: str) -> Response:
    em = _em(request)
    em.store.delete_file(_file(em, file_id).id)
    return json_response({"id": file_id, "object": "file", "deleted": True})


@router.get("/files/{file_id}/content")
async def file_content(request: Request, file_id: str) -> Response:
    em = _em(request)
    record = _file(em, file_id)
    return FileResponse(em.store.content_path(record.id), media_type="application/octet-stream")


# --- batches -------------------------------------------------------------------------------
def _metadata(value: Any) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or len(value) > MAX_METADATA_KEYS:
        raise bad_request(f"metadata must be an object of at most {MAX_METADATA_KEYS} keys.")
    for key, item in value.items():
        if (
            len(key) > MAX_METADATA_KEY
            or not isinstance(item, str)
            or len(item) > MAX_METADATA_VALUE
        ):
            raise bad_request(
                f"metadata values must be strings; keys at most {MAX_METADATA_KEY} characters, "
                f"values at most {MAX_METADATA_VALUE}.",
                param="metadata",
            )
    return value


def _output_expiry(value: Any) -> int | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise bad_request("output_expires_after must be an object.", param="output_expires_after")
    fields = {f"expires_after.{k}": str(v) for k, v in value.items()}
    return _expires_after(fields)


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        raise bad_request("The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object.")
    return body


def _upload_mode_input(em: Emulator, body: dict[str, Any]) -> str:
    """The `input_file_id` of an upload-mode batch, which must be a processed batch file."""
    input_file_id = body.get("input_file_id")
    if not isinstance(input_file_id, str) or not input_file_id:
        raise bad_request("input_file_id is required.", param="input_file_id")
    source = _file(em, input_file_id)
    if source.purpose != "batch":
        raise bad_request("The input file's purpose must be 'batch'.", param="input_file_id")
    if source.view(em.clock.now())["status"] != "processed":
        raise bad_request(
            "Only files with status 'Processed' are accepted. Wait until the file is processed.",
            param="input_file_id",
        )
    return input_file_id


def _blob_mode(request: Request, body: dict[str, Any]) -> tuple[BlobUrl, BlobUrl]:
    """Check a bring-your-own-storage create: `input_blob` and `output_folder.url`."""
    version = request.query_params.get("api-version")
    if not request.url.path.startswith("/openai/v1/") and version not in BLOB_API_VERSIONS:
        raise bad_request(
            f"input_blob and output_folder are not supported in api-version {version}: use "
            f"{', '.join(sorted(BLOB_API_VERSIONS))} or the v1 API (/openai/v1/).",
            param="input_blob",
        )
    if body.get("input_file_id") is not None:
        raise bad_request(
            "Give either input_file_id or input_blob, not both.", param="input_file_id"
        )
    if body.get("metadata") is not None:
        raise bad_request(
            "metadata is not supported for batches with input_blob and output_folder.",
            param="metadata",
        )
    raw_input, raw_folder = body.get("input_blob"), body.get("output_folder")
    if not isinstance(raw_input, str) or not raw_input:
        raise bad_request("input_blob must be the URL of a blob.", param="input_blob")
    if not isinstance(raw_folder, dict) or not isinstance(raw_folder.get("url"), str):
        raise bad_request(
            'output_folder is required with input_blob: {"url": "https://ACCOUNT.blob.core.'
            'windows.net/CONTAINER/FOLDER"}.',
            param="output_folder",
        )
    try:
        blob_input = parse_url(raw_input, folder=False)
    except ValueError as exc:
        raise bad_request(f"input_blob {exc}.", param="input_blob") from None
    try:
        folder = parse_url(raw_folder["url"], folder=True)
    except ValueError as exc:
        raise bad_request(f"output_folder.url {exc}.", param="output_folder") from None
    return blob_input, folder


@router.post("/batches")
async def create_batch(request: Request) -> Response:
    em = _em(request)
    body = await _json_body(request)
    endpoint = body.get("endpoint")
    if not isinstance(endpoint, str) or normalize_url(endpoint) not in SUPPORTED_URLS:
        raise bad_request(
            f"Unsupported endpoint {endpoint!r}: use /chat/completions or /responses "
            "(with or without /v1).",
            param="endpoint",
        )
    if body.get("completion_window") != "24h":
        raise bad_request("completion_window must be '24h'.", param="completion_window")
    blob_input: BlobUrl | None = None
    folder: BlobUrl | None = None
    if body.get("input_blob") is not None or body.get("output_folder") is not None:
        blob_input, folder = _blob_mode(request, body)
        metadata, output_expiry, input_file_id = None, None, None
        etag = None
        if em.scenario.blob_access != "none":
            etag = await asyncio.to_thread(em.storage.etag, blob_input)
    else:
        metadata = _metadata(body.get("metadata"))
        output_expiry = _output_expiry(body.get("output_expires_after"))
        input_file_id = _upload_mode_input(em, body)
    now = em.clock.now()
    outcome = em.scenario.take_outcome()
    if outcome == "token_limit_fail_fast":
        raise bad_request(
            "token_limit_exceeded: the enqueued token limit of the deployment has been reached. "
            "Retry later, with exponential backoff.",
            code="token_limit_exceeded",
        )
    record = BatchRecord(
        id=em.store.new_batch_id(),
        input_file_id=input_file_id,
        endpoint=endpoint,
        completion_window="24h",
        metadata=metadata,
        output_expires_after=output_expiry,
        created_at=now,
        duration=em.duration(),
        outcome=outcome,
        line_failure_rate=em.scenario.line_failure_rate,
        line_failure_status=em.scenario.line_failure_status,
        seed=em.scenario.batch_seed(),
    )
    if blob_input is not None and folder is not None:
        record.input_blob, record.input_etag = blob_input.url, etag
        record.output_folder, record.output_guid = folder.url, str(uuid.uuid4())
        record.blob_access = em.scenario.blob_access
    em.store.add_batch(record)
    em.lifecycle.start(record)
    return json_response(record.view())


def _batch(em: Emulator, batch_id: str) -> BatchRecord:
    record = em.store.batches.get(batch_id)
    if record is None:
        raise not_found(f"Batch '{batch_id}' not found.")
    return record


@router.get("/batches")
async def list_batches(request: Request) -> Response:
    em = _em(request)
    batches = [b.view() for b in reversed(em.store.batches.values())]
    limit = _limit(request, 20, 100)
    return json_response(_page(batches, request.query_params.get("after"), limit))


@router.get("/batches/{batch_id}")
async def get_batch(request: Request, batch_id: str) -> Response:
    return json_response(_batch(_em(request), batch_id).view())


@router.post("/batches/{batch_id}/cancel")
async def cancel_batch(request: Request, batch_id: str) -> Response:
    em = _em(request)
    record = _batch(em, batch_id)
    if record.status in TERMINAL:
        raise bad_request(f"Cannot cancel a batch whose status is '{record.status}'.")
    if record.status != "cancelling":
        em.lifecycle.cancel(record)
    return json_response(record.view())


# --- control API ---------------------------------------------------------------------------
control = APIRouter(prefix="/_emulator")


@control.get("/state")
async def state(request: Request) -> Response:
    em = _em(request)
    statuses = Counter(b.status for b in em.store.batches.values())
    return json_response(
        {
            "files": sum(1 for _ in em.store.live_files(em.clock.now())),
            "batches": dict(statuses),
            "requests": dict(em.requests),
            "enqueued_tokens": em.lifecycle.enqueued_tokens(),
        }
    )


@control.get("/scenario")
async def get_scenario(request: Request) -> Response:
    return json_response(_em(request).scenario.describe())


@control.post("/scenario")
async def set_scenario(request: Request) -> Response:
    em = _em(request)
    em.scenario.update(await _json_body(request))
    return json_response(em.scenario.describe())


@control.post("/reset")
async def reset(request: Request) -> Response:
    em = _em(request)
    em.scenario.reset()
    return json_response(em.scenario.describe())


@control.get("/storage")
async def get_storage(request: Request) -> Response:
    return json_response(_em(request).storage.describe())


@control.post("/storage")
async def add_storage(request: Request) -> Response:
    """`{"connection_string": CS}`: the service's identity can now reach that account."""
    em = _em(request)
    cs = (await _json_body(request)).get("connection_string")
    if not isinstance(cs, str):
        raise bad_request("connection_string must be a string.", param="connection_string")
    try:
        em.storage.add(cs)
    except ValueError as exc:
        raise bad_request(str(exc), param="connection_string") from None
    return json_response(em.storage.describe())


def _clock_view(em: Emulator) -> dict[str, Any]:
    return {
        "now": em.clock.now(),
        "offset_seconds": em.clock.offset_seconds,
        "frozen": em.clock.frozen,
    }


@control.get("/clock")
async def get_clock(request: Request) -> Response:
    return json_response(_clock_view(_em(request)))


@control.post("/clock")
async def set_clock(request: Request) -> Response:
    """`{"offset_seconds": s}`: real time plus s; `{"frozen_at": t}`: stop at epoch t (not back)."""
    em = _em(request)
    body = await _json_body(request)
    offset, frozen_at = body.get("offset_seconds"), body.get("frozen_at")
    if frozen_at is not None:
        if isinstance(frozen_at, bool) or not isinstance(frozen_at, int | float):
            raise bad_request("frozen_at must be a number (epoch seconds).", param="frozen_at")
        em.clock.freeze(float(frozen_at))
    else:
        if isinstance(offset, bool) or not isinstance(offset, int | float):
            raise bad_request("offset_seconds must be a number.", param="offset_seconds")
        em.clock.set_offset(float(offset))
    em.store.save_clock(em.clock.offset_seconds)
    # Answer once every batch has caught up with the new time, so that the next status read
    # already shows it: callers wait on this answer, never on a real-time pause.
    em.lifecycle.clock_moved()
    settled = await em.lifecycle.settled()
    return json_response({**_clock_view(em), "settled": settled})


# --- the app -------------------------------------------------------------------------------
def create_app(settings: Settings) -> FastAPI:
    """Build the app; batches left unfinished in `settings.data_dir` resume when it starts."""
    store = Store(settings.data_dir)
    clock = Clock(store.clock_offset)
    storage = Storage(settings.storage_connection_strings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        upstream = httpx.AsyncClient(timeout=120.0) if settings.upstream else None
        lifecycle = Lifecycle(store, settings, clock, upstream, storage)
        app.state.emulator = Emulator(settings, store, clock, lifecycle, storage)
        lifecycle.resume_all()
        try:
            yield
        finally:
            await lifecycle.stop()
            if upstream is not None:
                await upstream.aclose()
            store.close()

    app = FastAPI(
        title="Azure OpenAI Batch API emulator",
        lifespan=lifespan,
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    app.include_router(router, prefix="/openai")
    app.include_router(router, prefix="/openai/v1")
    app.include_router(control)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> Response:
        return json_response(exc.body(), exc.status, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            return json_response(not_found().body(), 404)
        return json_response(
            ApiError(exc.status_code, str(exc.status_code), str(exc.detail)).body(), exc.status_code
        )

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        return json_response(bad_request(str(exc.errors())).body(), 400)

    return app
