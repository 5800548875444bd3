"""Blob storage access: clients from settings, streamed reads and writes, safe moves.

Everything streams: inputs and outputs can be hundreds of megabytes, and an activity's memory
must not grow with them. Writes are block uploads committed at the end, so a crash never leaves
half a file behind and re-running a write simply replaces it.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import io
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.storage.blob import BlobClient, BlobServiceClient, ContainerClient

from batching.settings import StorageConfig
from batching.storage.refs import BlobRef, client_options, credential, quote_etag

BLOCK_SIZE = 8 * 1024 * 1024
GET_SIZE = 4 * 1024 * 1024  # bytes per download request
COPY_TIMEOUT_SECONDS = 600.0


@functools.lru_cache(maxsize=8)
def blob_service(cfg: StorageConfig) -> BlobServiceClient:
    """A client for the data account: connection string locally, managed identity in Azure."""
    # Downloads come in GET_SIZE pieces from the first one on: the SDK's first GET is 32 MiB by
    # default, which a streamed read of a large blob would hold (twice) besides what it reads.
    if cfg.connection_string:
        return BlobServiceClient.from_connection_string(
            cfg.connection_string,
            max_single_get_size=GET_SIZE,
            max_chunk_get_size=GET_SIZE,
            **client_options(),
        )
    assert cfg.blob_service_uri, "settings guarantee one of the two"
    return BlobServiceClient(
        cfg.blob_service_uri,
        credential=credential(cfg.client_id),
        max_single_get_size=GET_SIZE,
        max_chunk_get_size=GET_SIZE,
        **client_options(),
    )


def blob(cfg: StorageConfig, ref: BlobRef) -> BlobClient:
    return blob_service(cfg).get_blob_client(ref.container, ref.path)


def ensure_containers(cfg: StorageConfig, names: Iterable[str]) -> None:
    """Create the containers that do not exist yet (local stack and first start)."""
    service = blob_service(cfg)
    for name in names:
        with contextlib.suppress(ResourceExistsError):
            service.create_container(name)


def read_blocks(client: BlobClient) -> Iterator[bytes]:
    """Stream a blob's content in blocks."""
    yield from client.download_blob(max_concurrency=1).chunks()


class BlobReader(io.RawIOBase):
    """A seekable read-only stream over a blob, reading ranges on demand.

    The openai SDK takes it as an upload body: it seeks to the end to learn the length (so the
    upload has a Content-Length) and back to the start when it retries a request.
    """

    def __init__(self, client: BlobClient, size: int) -> None:
        super().__init__()
        self._client = client
        self._size = size
        self._pos = 0
        self._chunks: Iterator[bytes] | None = None
        self._buffer = b""
        self.name = os.path.basename(client.blob_name)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        target = max(0, min(self._size, base + offset))
        if target != self._pos:
            self._pos, self._chunks, self._buffer = target, None, b""
        return self._pos

    def readinto(self, b: Any) -> int:
        if self._pos >= self._size:
            return 0
        if not self._buffer:
            if self._chunks is None:
                download = self._client.download_blob(offset=self._pos, max_concurrency=1)
                self._chunks = download.chunks()
            self._buffer = next(self._chunks, b"")
            if not self._buffer:
                return 0
        n = min(len(b), len(self._buffer))
        b[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]
        self._pos += n
        return n


class BlobWriter:
    """A write-only stream into a block blob; nothing is visible until `close()` commits it."""

    def __init__(
        self,
        client: BlobClient,
        content_type: str = "application/jsonl",
        create_only: bool = False,
    ) -> None:
        self._client = client
        self._content_type = content_type
        # Commit only if the blob does not exist yet: a blob the service may be reading is
        # never replaced (it would fail the batch with `input_modified`).
        self._conditions: dict[str, Any] = {"if_none_match": "*"} if create_only else {}
        self._pending = bytearray()
        self._blocks: list[str] = []
        self.bytes_written = 0

    def write(self, data: bytes) -> int:
        self._pending += data
        self.bytes_written += len(data)
        if len(self._pending) >= BLOCK_SIZE:
            self._stage()
        return len(data)

    def _stage(self) -> None:
        block_id = base64.b64encode(f"{len(self._blocks):010d}".encode()).decode()
        self._client.stage_block(block_id, bytes(self._pending))
        self._blocks.append(block_id)
        self._pending.clear()

    def close(self) -> None:
        """Commit what was written (an empty blob when nothing was). Content under one block
        goes in one request (a single Put Blob, as atomic as a block list commit)."""
        from azure.storage.blob import BlobBlock, ContentSettings

        try:
            if not self._blocks:
                write_bytes(
                    self._client, bytes(self._pending), self._content_type, **self._conditions
                )
                self._pending.clear()
                return
            if self._pending:
                self._stage()
            self._client.commit_block_list(
                [BlobBlock(block_id=b) for b in self._blocks],
                content_settings=ContentSettings(content_type=self._content_type),
                **self._conditions,
            )
        except (ResourceExistsError, ResourceModifiedError):
            if not self._conditions:
                raise
            # create-only: an earlier execution of the same step committed it (the same
            # content: every step is deterministic in what it writes); keep that one. The
            # blocks staged meanwhile stay uncommitted and the service discards them.

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is None:
            self.close()


def write_bytes(
    client: BlobClient, data: bytes, content_type: str, if_none_match: str | None = None
) -> None:
    """Put a small blob; with `if_none_match="*"` only if it does not exist yet."""
    from azure.storage.blob import ContentSettings

    client.upload_blob(
        data,
        overwrite=if_none_match is None,
        content_settings=ContentSettings(content_type=content_type),
    )


def exists(client: BlobClient) -> bool:
    return bool(client.exists())


def delete_if_exists(client: BlobClient, etag: str | None = None) -> None:
    """Delete a blob; with `etag`, only that version (a newer upload under the name survives)."""
    kwargs: dict[str, Any] = {"delete_snapshots": "include"}
    if etag:
        kwargs.update(etag=quote_etag(etag), match_condition=MatchConditions.IfNotModified)
    with contextlib.suppress(ResourceNotFoundError):
        client.delete_blob(**kwargs)


def delete_unchanged(client: BlobClient, etag: str | None) -> bool:
    """Delete exactly the version `etag` names; a newer upload under the name, or a blob already
    gone, is left alone. Without `etag` nothing is deleted. Returns whether it was deleted."""
    if not etag:
        return False
    try:
        client.delete_blob(
            delete_snapshots="include",
            etag=quote_etag(etag),
            match_condition=MatchConditions.IfNotModified,
        )
    except (ResourceNotFoundError, ResourceModifiedError):
        return False
    return True


def delete_prefix(container: ContainerClient, prefix: str) -> int:
    """Delete every blob under `prefix` (a few at a time); returns how many were deleted."""
    names = list(container.list_blob_names(name_starts_with=prefix))

    def delete(name: str) -> None:
        with contextlib.suppress(ResourceNotFoundError):
            container.delete_blob(name, delete_snapshots="include")

    parallel(delete, names)
    return len(names)


def parallel(func: Callable[[Any], object], items: Sequence[Any], workers: int = 8) -> None:
    """Run `func` on every item, `workers` at a time (I/O: round trips overlap); the first
    exception is raised once all have run."""
    if len(items) <= 1:
        for item in items:
            func(item)
        return
    with ThreadPoolExecutor(min(workers, len(items))) as pool:
        for future in [pool.submit(func, item) for item in items]:
            future.result()


def copy_blob(
    source: BlobClient,
    dest: BlobClient,
    source_etag: str | None = None,
    *,
    create_only: bool = False,
) -> None:
    """Server-side copy within the account, waiting until it has finished. `create_only`: only
    if `dest` does not exist (If-None-Match: *), else the service refuses the copy."""
    kwargs: dict[str, Any] = {"match_condition": MatchConditions.IfMissing} if create_only else {}
    if source_etag:
        kwargs.update(
            source_etag=quote_etag(source_etag),
            source_match_condition=MatchConditions.IfNotModified,
        )
    started = dest.start_copy_from_url(source.url, **kwargs)
    if started.get("copy_status") == "success":  # copied synchronously: nothing to wait for
        return
    deadline = time.monotonic() + COPY_TIMEOUT_SECONDS
    while True:
        props = dest.get_blob_properties()
        status = props.copy.status
        if status == "success" or status is None:
            return
        if status in ("failed", "aborted"):
            raise RuntimeError(
                f"copy of {source.blob_name} failed: {props.copy.status_description}"
            )
        if time.monotonic() > deadline:
            raise TimeoutError(f"copy of {source.blob_name} did not finish in time")
        time.sleep(0.5)


def stage_copy(source: BlobClient, dest: BlobClient, source_etag: str | None) -> None:
    """Copy exactly the version `source_etag` of `source` to `dest`, once: a finished copy from
    an earlier attempt is kept. Raises ResourceModifiedError / ResourceNotFoundError when that
    version is no longer there (replaced or deleted).

    The first attempt is one request, a copy only if `dest` is missing; when it is refused
    (`dest` exists, or the version is gone), `dest` decides what a repeat does."""
    try:
        copy_blob(source, dest, source_etag, create_only=True)
        return
    except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError):
        pass
    with contextlib.suppress(ResourceNotFoundError):
        if dest.get_blob_properties().copy.status in ("success", None):
            return
    copy_blob(source, dest, source_etag)


def move_blob(cfg: StorageConfig, source: BlobRef, dest: BlobRef, etag: str | None) -> None:
    """Move a blob, idempotently: the destination is written before the source is removed.

    On an account with a hierarchical namespace this is a Data Lake rename (atomic, whatever
    the size); otherwise a server-side copy and then a delete of exactly the copied version.
    Nothing is looked up first: when the source is missing, `dest` there means an earlier
    attempt moved it; neither there raises ResourceNotFoundError.
    """
    src, dst = blob(cfg, source), blob(cfg, dest)
    try:
        if cfg.hierarchical_namespace:
            from batching.storage.datalake import rename

            rename(cfg, source, dest, etag)
            return
        copy_blob(src, dst, etag)
    except ResourceNotFoundError:
        if exists(dst):
            return  # moved by an earlier attempt
        raise
    delete_if_exists(src, etag)
