"""Azure OpenAI Batch API calls, each safe to repeat after a crash.

What a run creates is recorded in its ledger (`batching.service.ledger`), so an activity that ran
but whose result was lost finds it again without listing; the `*_since` lookups (by file name, by a
key in the batch metadata) are the recovery path when a create's id was never recorded. Objects are
normalised into plain dicts that tolerate what the service has been seen to return ("" ids, null
counts, null errors)."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any, cast

import openai
from openai import AzureOpenAI, OpenAI

from batching.settings import V1_API, Settings
from batching.statuses import BATCH_TERMINAL

TERMINAL = BATCH_TERMINAL
LIST_PAGE = 100
COGNITIVE_SCOPE = "https://cognitiveservices.azure.com/.default"


class QuotaExceeded(Exception):
    """The deployment's enqueued-token quota is full (`token_limit_exceeded`)."""


def is_quota_error(text: str) -> bool:
    return "token_limit_exceeded" in text


@functools.lru_cache(maxsize=4)
def _client(endpoint: str, api_key: str | None, api_version: str, client_id: str | None) -> OpenAI:
    auth: Any = api_key
    if not api_key:
        from azure.identity import DefaultAzureCredential, get_bearer_token_provider

        auth = get_bearer_token_provider(
            DefaultAzureCredential(managed_identity_client_id=client_id), COGNITIVE_SCOPE
        )
    if api_version == V1_API:
        # The v1 API is the plain OpenAI client at /openai/v1/; an Entra token provider (or the
        # key) is its api_key. A key also goes as `api-key`, the header Azure checks keys in.
        return OpenAI(
            base_url=f"{endpoint}/openai/v1/",
            api_key=auth,
            default_headers={"api-key": api_key} if api_key else None,
            max_retries=5,
        )
    if api_key:
        return AzureOpenAI(
            azure_endpoint=endpoint, api_key=api_key, api_version=api_version, max_retries=5
        )
    return AzureOpenAI(
        azure_endpoint=endpoint,
        azure_ad_token_provider=auth,
        api_version=api_version,
        max_retries=5,
    )


def client(settings: Settings) -> OpenAI:
    """The client: the v1 API unless a dated api-version is set; the API key when one is set
    (local), otherwise Entra ID (managed identity)."""
    return _client(
        settings.openai_endpoint,
        settings.openai_api_key,
        settings.openai_api_version,
        settings.client_id,
    )


def find_file_since(c: OpenAI, filename: str, since: int) -> dict[str, Any] | None:
    """Recovery only: an upload of ours by its (unique) file name, unless it failed processing,
    listing newest first and stopping at the first file created before `since` (Unix time)."""
    page = c.files.list(purpose="batch", order="desc", limit=LIST_PAGE)
    while True:
        for f in page.data:
            if int(f.created_at or 0) < since:
                return None
            if f.filename == filename and f.status != "error":
                return f.model_dump()
        if not page.has_next_page():
            return None
        page = page.get_next_page()


def upload(c: OpenAI, filename: str, body: IO[bytes], expiry_seconds: int) -> dict[str, Any]:
    """Upload a batch input (streamed from `body`), expiring so failed cleanups do not pile up."""
    kwargs: dict[str, Any] = {}
    if expiry_seconds:
        kwargs["expires_after"] = {"anchor": "created_at", "seconds": expiry_seconds}
    f = c.files.create(file=(filename, body, "application/jsonl"), purpose="batch", **kwargs)
    return f.model_dump()


def get_file(c: OpenAI, file_id: str) -> dict[str, Any]:
    return c.files.retrieve(file_id).model_dump()


def find_batch_since(c: OpenAI, key: str, since: int) -> dict[str, Any] | None:
    """Recovery only: a batch we created for `key` (in its metadata), listing newest first and
    stopping at the first batch created before `since` (Unix time)."""
    return _find_batch(c, since, lambda b: (b.get("metadata") or {}).get("key") == key)


def find_blob_batch_since(c: OpenAI, output_folder: str, since: int) -> dict[str, Any] | None:
    """Recovery only, blob mode (no metadata there): the batch whose output folder is
    `output_folder` (one per attempt, so it names the create), back to `since`."""
    return _find_batch(c, since, lambda b: _folder_url(b) == output_folder)


def _find_batch(
    c: OpenAI, since: int, match: Callable[[dict[str, Any]], bool]
) -> dict[str, Any] | None:
    page = c.batches.list(limit=LIST_PAGE)
    while True:
        for b in page.data:
            if int(b.created_at or 0) < since:
                return None
            raw = b.model_dump()
            if match(raw):
                return normalize_batch(raw)
        if not page.has_next_page():
            return None
        page = page.get_next_page()


def _folder_url(raw: dict[str, Any]) -> str | None:
    folder = raw.get("output_folder")
    return str(folder.get("url")) if isinstance(folder, dict) and folder.get("url") else None


@dataclass(frozen=True)
class BatchInput:
    """What a batch reads and where it writes: an uploaded file (files mode), or a blob and an
    output folder in the customer's storage (blob mode)."""

    file_id: str | None = None
    blob_url: str | None = None
    output_folder: str | None = None


def create_batch(
    c: OpenAI,
    source: BatchInput,
    endpoint: str,
    metadata: dict[str, str] | None,
    expiry_seconds: int,
) -> dict[str, Any]:
    """Create a batch; `QuotaExceeded` when the service refuses it for enqueued tokens.

    Blob mode sends `input_file_id: null` with `input_blob` and `output_folder` (the SDK does not
    know them: `extra_body`), and neither `metadata` nor `output_expires_after`, which the
    service does not support there."""
    extra: dict[str, Any] = {}
    kwargs: dict[str, Any] = {}
    if source.blob_url is not None:
        extra = {"input_blob": source.blob_url, "output_folder": {"url": source.output_folder}}
    else:
        if expiry_seconds:
            extra = {"output_expires_after": {"anchor": "created_at", "seconds": expiry_seconds}}
        if metadata:
            kwargs["metadata"] = metadata
    try:
        b = c.batches.create(
            input_file_id=cast(Any, source.file_id),
            endpoint=cast(Any, endpoint),
            completion_window="24h",
            extra_body=extra or None,
            **kwargs,
        )
    except openai.BadRequestError as e:
        if is_quota_error(str(e)):
            raise QuotaExceeded(str(e)) from e
        raise
    return normalize_batch(b.model_dump())


def get_batch(c: OpenAI, batch_id: str) -> dict[str, Any]:
    return normalize_batch(c.batches.retrieve(batch_id).model_dump())


def cancel_batch(c: OpenAI, batch_id: str) -> dict[str, Any]:
    """Ask the service to cancel; a batch that already ended is left as it is."""
    try:
        return normalize_batch(c.batches.cancel(batch_id).model_dump())
    except (openai.BadRequestError, openai.ConflictError):
        return get_batch(c, batch_id)


def file_content(c: OpenAI, file_id: str) -> Iterator[bytes]:
    """Stream a file's content (batch output or errors) without holding it in memory."""
    with c.files.with_streaming_response.content(file_id) as response:
        yield from response.iter_bytes(1024 * 1024)


def delete_file(c: OpenAI, file_id: str) -> None:
    with contextlib.suppress(openai.NotFoundError):
        c.files.delete(file_id)


def normalize_batch(raw: dict[str, Any]) -> dict[str, Any]:
    """The fields we use, with the service's quirks smoothed over."""
    counts = raw.get("request_counts") or {}
    errors = (raw.get("errors") or {}).get("data") or []
    return {
        "id": raw["id"],
        "status": raw.get("status") or "validating",
        "input_file_id": raw.get("input_file_id") or None,
        "output_file_id": raw.get("output_file_id") or None,
        "error_file_id": raw.get("error_file_id") or None,
        "request_counts": {
            "total": int(counts.get("total") or 0),
            "completed": int(counts.get("completed") or 0),
            "failed": int(counts.get("failed") or 0),
        },
        "errors": [
            {k: e.get(k) for k in ("code", "message", "line") if e.get(k) is not None}
            for e in errors
        ],
        "metadata": raw.get("metadata") or {},
        # blob mode: the service's output blobs ("" while it runs, named even when not written)
        "input_blob": raw.get("input_blob") or None,
        "output_folder": _folder_url(raw),
        "output_blob": raw.get("output_blob") or None,
        "error_blob": raw.get("error_blob") or None,
        "created_at": raw.get("created_at"),
        "completed_at": raw.get("completed_at"),
        "failed_at": raw.get("failed_at"),
        "expired_at": raw.get("expired_at"),
        "cancelled_at": raw.get("cancelled_at"),
    }


def quota_failure(batch: dict[str, Any]) -> str | None:
    """The message when a batch failed in validation for enqueued-token quota."""
    if batch["status"] != "failed":
        return None
    for e in batch["errors"]:
        if is_quota_error(f"{e.get('code')} {e.get('message')}"):
            return str(e.get("message") or e.get("code"))
    return None
