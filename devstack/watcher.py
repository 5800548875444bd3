"""Event Grid, locally: watch the input container and post BlobCreated events to a host.

Azurite does not emit events, so this polls the container listing and, for every JSONL blob
version (name + ETag) not seen before, posts an Event Grid-schema BlobCreated event to the
Functions webhook, the same URL `func start` exposes. Delivery is at-least-once and concurrent,
in no set order, as in Azure: after a restart every blob still present is posted again, which
the app must (and does) absorb.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
from azure.storage.blob import BlobProperties, ContainerClient

log = logging.getLogger("devstack.watcher")
# Event Grid delivers each event as it comes, not one after another: up to this many at once.
DELIVERY_CONCURRENCY = 8

TOPIC = (
    "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/local"
    "/providers/Microsoft.Storage/storageAccounts/devstoreaccount1"
)


@dataclass(frozen=True)
class Listed:
    """What an event tells of a blob, as a container listing gives it."""

    name: str
    etag: str
    size: int | None
    content_type: str | None
    last_modified: datetime | None

    @classmethod
    def of(cls, blob: BlobProperties) -> Listed:
        settings = blob.content_settings
        return cls(
            blob.name,
            str(blob.etag),
            blob.size,
            settings.content_type if settings else None,
            blob.last_modified,
        )


def list_blobs(container: ContainerClient, per_page: int | None = None) -> Iterator[Listed]:
    """Every blob in `container`, read from the listing's XML. The SDK's `list_blobs` builds a
    full BlobProperties of every entry: ~110 ms of CPU a listing at 500 blobs, most of the
    watcher's cost, where `list_blob_names` takes ~18 ms. Both send the same request, whose
    response holds the properties; the names' pager keeps it as parsed XML (`_response`, not
    public API: tests/host/test_watcher.py compares what is read here with `list_blobs`)."""
    pages = container.list_blob_names(results_per_page=per_page).by_page()
    for _ in pages:
        for blob in pages._response.iterfind("Blobs/Blob"):  # type: ignore[attr-defined]
            properties = blob.find("Properties")
            field = properties.findtext if properties is not None else blob.findtext
            modified = field("Last-Modified")
            size = field("Content-Length")
            yield Listed(
                name=blob.findtext("Name") or "",
                etag=field("Etag") or "",
                size=int(size) if size else None,
                content_type=field("Content-Type") or None,
                last_modified=parsedate_to_datetime(modified) if modified else None,
            )


def blob_created_event(container: ContainerClient, blob: Listed | BlobProperties) -> dict[str, Any]:
    """An event shaped like the one Event Grid delivers for a new block blob."""
    if isinstance(blob, BlobProperties):
        blob = Listed.of(blob)
    etag = blob.etag.strip('"')
    return {
        "id": str(uuid.uuid4()),
        "topic": TOPIC,
        "subject": f"/blobServices/default/containers/{container.container_name}/blobs/{blob.name}",
        "eventType": "Microsoft.Storage.BlobCreated",
        "eventTime": (blob.last_modified or datetime.now(UTC)).isoformat(),
        "dataVersion": "",
        "metadataVersion": "1",
        "data": {
            "api": "PutBlockList",
            "clientRequestId": str(uuid.uuid4()),
            "requestId": str(uuid.uuid4()),
            "eTag": etag,
            "contentType": blob.content_type or "application/octet-stream",
            "contentLength": blob.size,
            "blobType": "BlockBlob",
            "url": f"{container.url}/{blob.name}",
            "sequencer": etag,
            "storageDiagnostics": {"batchId": str(uuid.uuid4())},
        },
    }


class Watcher:
    """Polls `container` every `interval` seconds and posts new blobs' events to `webhook`.

    While polls find nothing new the interval doubles, up to `max_interval` (default the larger
    of `interval` and 2 s): a listing of a full container is most of the watcher's cost, and it
    shares the machine with what it feeds. A new blob is still delivered within `max_interval`.
    """

    def __init__(
        self,
        container: ContainerClient,
        webhook: str,
        interval: float = 1.0,
        suffix: str = ".jsonl",
        max_interval: float | None = None,
    ) -> None:
        self._container = container
        self._webhook = webhook
        self._interval = interval
        self._max_interval = max(interval, 2.0) if max_interval is None else max_interval
        self._suffix = suffix
        self._seen: set[tuple[str, str]] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # One client for every delivery: a client per event built a TLS context each time.
        self._http = httpx.Client(timeout=30.0, headers={"aeg-event-type": "Notification"})
        self._pool = ThreadPoolExecutor(DELIVERY_CONCURRENCY, thread_name_prefix="event-delivery")
        self.delivered = 0

    def poll_once(self) -> int:
        """Post an event for each new blob version; returns how many were delivered."""
        events = []
        for blob in list_blobs(self._container):
            key = (blob.name, blob.etag)
            if key in self._seen or not blob.name.lower().endswith(self._suffix):
                continue
            events.append((key, blob_created_event(self._container, blob)))
        delivered = list(self._pool.map(self._deliver, [event for _, event in events]))
        self._seen.update(key for (key, _), ok in zip(events, delivered, strict=True) if ok)
        posted = sum(delivered)
        self.delivered += posted
        return posted

    def _deliver(self, event: dict[str, Any]) -> bool:
        try:
            response = self._http.post(self._webhook, json=[event])
            response.raise_for_status()
        except httpx.HTTPError as e:
            log.warning("event delivery failed, will retry: %s", e)
            return False  # not marked seen: retried on the next poll, as Event Grid retries
        return True

    def _loop(self) -> None:
        pause = self._interval
        while not self._stop.is_set():
            try:
                found = self.poll_once()
            except Exception:
                log.exception("watcher poll failed")
                found = 0
            pause = self._interval if found else min(pause * 2, self._max_interval)
            self._stop.wait(pause)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="blob-watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._pool.shutdown()
        self._http.close()


def main(argv: list[str] | None = None) -> int:
    """`python -m devstack.watcher`: feed BlobCreated events to any host, `func start` included."""
    import argparse
    import os

    from azure.storage.blob import BlobServiceClient

    parser = argparse.ArgumentParser(prog="python -m devstack.watcher", description=main.__doc__)
    parser.add_argument(
        "--connection", default=os.environ.get("BATCH_STORAGE", "UseDevelopmentStorage=true")
    )
    parser.add_argument("--container", default=os.environ.get("INPUT_CONTAINER", "batch-input"))
    parser.add_argument(
        "--webhook",
        default="http://127.0.0.1:7071/runtime/webhooks/eventgrid?functionName=on_blob_created",
    )
    parser.add_argument("--interval", type=float, default=1.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    service = BlobServiceClient.from_connection_string(args.connection)
    watcher = Watcher(service.get_container_client(args.container), args.webhook, args.interval)
    log.info("watching %s, posting to %s", args.container, args.webhook)
    try:
        while True:
            if watcher.poll_once():
                log.info("delivered %d events so far", watcher.delivered)
            threading.Event().wait(args.interval)
    except KeyboardInterrupt:
        return 0
    finally:
        watcher.stop()


if __name__ == "__main__":
    raise SystemExit(main())
