"""The Event Grid stand-in delivers as Event Grid does: each event at once, concurrently, and an
event whose delivery failed again on the next poll (learn.microsoft.com/azure/event-grid/
delivery-and-retry: "tries to deliver each message at least once ... immediately", "doesn't
guarantee order")."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
import pytest
from azure.storage.blob import ContentSettings

from devstack.watcher import DELIVERY_CONCURRENCY, Listed, Watcher, list_blobs
from tests.support.httpserver import serving


class _Webhook(ThreadingHTTPServer):
    """Answers 200 only once `together` deliveries are in flight at the same time (else 503
    after a timeout), and records the blobs it was told of."""

    def __init__(self, together: int) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.barrier = threading.Barrier(together, timeout=5)
        self.subjects: list[str] = []
        self.lock = threading.Lock()


class _Handler(BaseHTTPRequestHandler):
    server: _Webhook

    def do_POST(self) -> None:
        body = orjson.loads(self.rfile.read(int(self.headers["Content-Length"])))
        try:
            self.server.barrier.wait()
        except threading.BrokenBarrierError:
            self.send_response(503)
        else:
            with self.server.lock:
                self.server.subjects.extend(e["subject"] for e in body)
            self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:  # quiet
        pass


@pytest.fixture
def webhook() -> Iterator[tuple[_Webhook, str]]:
    server = _Webhook(together=2)
    with serving(server) as url:
        yield server, f"{url}/runtime/webhooks/eventgrid"


def test_events_are_delivered_concurrently_and_retried_when_delivery_failed(
    blob_service: Any, webhook: tuple[_Webhook, str]
) -> None:
    assert DELIVERY_CONCURRENCY >= 2
    server, url = webhook
    container = blob_service.get_container_client(f"w{os.urandom(4).hex()}")
    container.create_container()
    watcher = Watcher(container, url)
    try:
        container.upload_blob("a/one.jsonl", b"{}\n")
        container.upload_blob("a/two.jsonl", b"{}\n")
        # each delivery waits for the other: delivered one after the other, both would fail
        assert watcher.poll_once() == 2
        assert sorted(s.rsplit("/", 1)[-1] for s in server.subjects) == ["one.jsonl", "two.jsonl"]

        container.upload_blob("b/alone.jsonl", b"{}\n")
        assert watcher.poll_once() == 0  # no second delivery to meet: it failed (503)
        server.barrier = threading.Barrier(1)
        assert watcher.poll_once() == 1  # not marked seen: delivered again on the next poll
        assert watcher.poll_once() == 0
    finally:
        watcher.stop()
        container.delete_container()


def test_the_listing_reads_what_the_sdk_reads_and_an_overwrite_is_a_new_event(
    blob_service: Any, webhook: tuple[_Webhook, str]
) -> None:
    """The watcher reads the listing's XML itself (the SDK's BlobProperties cost 6x the CPU):
    every field an event carries must be what `list_blobs` gives, over more than one page."""
    server, url = webhook
    server.barrier = threading.Barrier(1)
    container = blob_service.get_container_client(f"w{os.urandom(4).hex()}")
    container.create_container()
    watcher = Watcher(container, url)
    try:
        container.upload_blob(
            "a b/é 1%.jsonl", b"{}\n" * 3, content_settings=ContentSettings("x/y")
        )
        container.upload_blob("empty.jsonl", b"")
        for i in range(3):
            container.upload_blob(f"deep/{i}/{i}.jsonl", b"{}\n")
        expected = [Listed.of(p) for p in container.list_blobs()]
        assert list(list_blobs(container, per_page=2)) == expected
        assert {e.content_type for e in expected} == {"x/y", "application/octet-stream"}
        assert watcher.poll_once() == 5

        container.upload_blob("empty.jsonl", b"{}\n", overwrite=True)  # a new version: an event
        assert watcher.poll_once() == 1
        assert watcher.poll_once() == 0
    finally:
        watcher.stop()
        container.delete_container()
