"""Moves on hierarchical-namespace accounts use the Data Lake rename, checked at the HTTP level.

Azurite has no Data Lake (dfs) endpoint, so a recording stand-in answers the two calls a rename
makes; the real azure-storage-file-datalake SDK builds and signs them. The blob side (does the
source exist) is real Azurite.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar
from urllib.parse import parse_qs, unquote, urlparse

import pytest

from batching.settings import Settings
from batching.storage import blobs as storage
from batching.storage.refs import BlobRef
from tests.support.httpserver import serving


class Recorder(BaseHTTPRequestHandler):
    calls: ClassVar[list[tuple[str, str, dict[str, str], dict[str, list[str]]]]] = []

    def do_PUT(self) -> None:
        url = urlparse(self.path)
        Recorder.calls.append(
            (self.command, unquote(url.path), dict(self.headers), parse_qs(url.query))
        )
        self.send_response(201)
        self.send_header("ETag", '"0x1"')
        self.send_header("Last-Modified", "Sun, 22 Nov 2026 00:00:00 GMT")
        self.send_header("x-ms-request-id", "r")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def dfs() -> Iterator[str]:
    Recorder.calls = []
    with serving(ThreadingHTTPServer(("127.0.0.1", 0), Recorder)) as url:
        yield f"{url}/devstoreaccount1"


def test_move_on_hns_account_is_one_conditional_rename(azurite, blob_service, dfs):
    settings = Settings.from_env(
        {
            "AZURE_OPENAI_ENDPOINT": "http://x",
            "BATCH_STORAGE": azurite.connection_string,
            "BATCH_STORAGE__dfsServiceUri": dfs,
            "STORAGE_HIERARCHICAL_NAMESPACE": "true",
        }
    )
    blob_service.create_container("hns-in")
    uploaded = blob_service.get_blob_client("hns-in", "team/a.jsonl").upload_blob(b"{}\n")

    storage.move_blob(
        settings.storage,
        BlobRef("hns-in", "team/a.jsonl"),
        BlobRef("hns-out", "team/a/run-1/input.jsonl"),
        uploaded["etag"],
    )

    (d_method, d_path, _, d_query), (r_method, r_path, r_headers, _) = Recorder.calls
    assert (d_method, d_path, d_query["resource"]) == (
        "PUT",
        "/devstoreaccount1/hns-out/team/a/run-1",
        ["directory"],
    )
    assert (r_method, r_path) == ("PUT", "/devstoreaccount1/hns-out/team/a/run-1/input.jsonl")
    assert r_headers["x-ms-rename-source"].startswith("/hns-in/team/a.jsonl")
    assert r_headers["x-ms-source-if-match"] == uploaded["etag"]
    assert r_headers["Authorization"].startswith("SharedKey devstoreaccount1:")
    # No bytes were copied through the Blob API: the source is untouched by the blob side.
    assert blob_service.get_blob_client("hns-in", "team/a.jsonl").exists()


def test_flat_account_moves_by_copy_then_delete_of_that_version(azurite, blob_service):
    settings = Settings.from_env(
        {"AZURE_OPENAI_ENDPOINT": "http://x", "BATCH_STORAGE": azurite.connection_string}
    )
    blob_service.create_container("flat-in")
    blob_service.create_container("flat-out")
    src = blob_service.get_blob_client("flat-in", "x/b.jsonl")
    first = src.upload_blob(b"first\n")
    dest = BlobRef("flat-out", "x/b/run/input.jsonl")

    storage.move_blob(settings.storage, BlobRef("flat-in", "x/b.jsonl"), dest, first["etag"])
    assert not src.exists()
    assert storage.blob(settings.storage, dest).download_blob().readall() == b"first\n"
    # Idempotent: a second attempt (after a crash) finds the move done.
    storage.move_blob(settings.storage, BlobRef("flat-in", "x/b.jsonl"), dest, first["etag"])

    # A newer upload under the same name is never deleted by an older run's move.
    src.upload_blob(b"second\n", overwrite=True)
    from azure.core.exceptions import ResourceModifiedError

    with pytest.raises(ResourceModifiedError):
        storage.move_blob(
            settings.storage,
            BlobRef("flat-in", "x/b.jsonl"),
            BlobRef("flat-out", "x/b/run2/input.jsonl"),
            first["etag"],
        )
    assert src.download_blob().readall() == b"second\n"


def test_dfs_endpoint_is_derived_from_the_blob_endpoint():
    from batching.storage.datalake import dfs_uri

    cfg = Settings.from_env(
        {
            "AZURE_OPENAI_ENDPOINT": "http://x",
            "BATCH_STORAGE__blobServiceUri": "https://acct.blob.core.windows.net",
            "BATCH_STORAGE__tableServiceUri": "https://acct.table.core.windows.net",
        }
    ).storage
    assert dfs_uri(cfg) == "https://acct.dfs.core.windows.net"
    assert dfs_uri(replace(cfg, dfs_service_uri="https://other")) == "https://other"
