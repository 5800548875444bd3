"""Streamed blob access: range reads that seek like a file, block writes committed at close."""

from __future__ import annotations

import io
import os

import pytest
from azure.core.exceptions import HttpResponseError

from batching.settings import StorageConfig
from batching.storage import blobs as storage
from tests.support.stack import storage_requests


@pytest.fixture
def container(blob_service):
    name = f"st-{os.urandom(4).hex()}"
    blob_service.create_container(name)
    return blob_service.get_container_client(name)


def test_reader_streams_seeks_and_rereads(container, monkeypatch):
    data = os.urandom(3 * 1024 * 1024 + 17)
    client = container.get_blob_client("big.bin")
    client.upload_blob(data)
    client._config.max_chunk_get_size = 256 * 1024  # many range reads
    reader = storage.BlobReader(client, len(data))
    assert reader.seek(0, io.SEEK_END) == len(data)  # how httpx learns Content-Length
    assert reader.seek(0) == 0
    first = reader.read(1000)
    assert first == data[:1000]
    reader.seek(len(data) - 10)
    assert reader.read() == data[-10:]
    reader.seek(0)  # how the SDK rewinds for a retry
    assert b"".join(iter(lambda: reader.read(65536), b"")) == data


def test_writer_commits_blocks_only_at_close(container, monkeypatch):
    monkeypatch.setattr(storage, "BLOCK_SIZE", 1024)
    client = container.get_blob_client("out.jsonl")
    writer = storage.BlobWriter(client)
    payload = b"".join(f'{{"n": {i}}}\n'.encode() for i in range(2000))
    for i in range(0, len(payload), 700):
        writer.write(payload[i : i + 700])
    assert not client.exists()  # staged blocks are invisible
    writer.close()
    assert client.download_blob().readall() == payload
    assert len(client.get_block_list()[0]) > 10


def test_writer_with_nothing_written_makes_an_empty_blob(container):
    client = container.get_blob_client("empty.jsonl")
    with storage.BlobWriter(client):
        pass
    assert client.download_blob().readall() == b""


@pytest.mark.parametrize("size", [10, 5000], ids=["one-request", "blocks"])
def test_a_create_only_writer_never_replaces_a_blob(container, monkeypatch, size):
    """A chunk the service may be reading (blob mode) is written once: a step run again keeps
    the first blob and its ETag (else the batch would fail with `input_modified`)."""
    monkeypatch.setattr(storage, "BLOCK_SIZE", 1024)
    client = container.get_blob_client("chunk.jsonl")
    with storage.BlobWriter(client, create_only=True) as first:
        first.write(b"a" * size)
    etag = client.get_blob_properties().etag
    with storage.BlobWriter(client, create_only=True) as again:
        again.write(b"b" * size)
    assert client.download_blob().readall() == b"a" * size
    assert client.get_blob_properties().etag == etag
    with storage.BlobWriter(client) as plain:  # an ordinary writer replaces it
        plain.write(b"c")
    assert client.download_blob().readall() == b"c"


def test_writer_discards_on_error(container):
    client = container.get_blob_client("partial.jsonl")
    with pytest.raises(RuntimeError), storage.BlobWriter(client) as w:
        w.write(b"half")
        raise RuntimeError("boom")
    assert not client.exists()


def test_delete_prefix_and_conditional_delete(container):
    for name in ("run/a", "run/b/c", "other"):
        container.upload_blob(name, b"x")
    assert storage.delete_prefix(container, "run/") == 2
    assert [b.name for b in container.list_blobs()] == ["other"]
    client = container.get_blob_client("other")
    old = client.get_blob_properties().etag
    client.upload_blob(b"new", overwrite=True)
    from azure.core.exceptions import ResourceModifiedError

    with pytest.raises(ResourceModifiedError):
        storage.delete_if_exists(client, old)
    storage.delete_if_exists(client, client.get_blob_properties().etag)
    assert not client.exists()
    storage.delete_if_exists(client)  # already gone: fine


def test_stage_copy_takes_exactly_the_named_version_once(container, monkeypatch):
    from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError

    source = container.get_blob_client("in/a.jsonl")
    snapshot = container.get_blob_client("work/a.jsonl")
    etag = source.upload_blob(b"one\n")["etag"]
    made = storage_requests(monkeypatch)
    storage.stage_copy(source, snapshot, etag)
    # the usual case: one conditional copy, no look first
    assert [method for method, _ in made] == ["PUT"]
    source.upload_blob(b"two\n", overwrite=True)  # the user overwrites the original
    storage.stage_copy(source, snapshot, etag)  # a repeat keeps the copy it made
    assert snapshot.download_blob().readall() == b"one\n"
    late = container.get_blob_client("work/late.jsonl")
    with pytest.raises(ResourceModifiedError):  # too late: that version is gone
        storage.stage_copy(source, late, etag)
    source.delete_blob()
    with pytest.raises(ResourceNotFoundError):
        storage.stage_copy(source, late, etag)


def test_delete_unchanged_leaves_a_newer_upload(container):
    client = container.get_blob_client("in/b.jsonl")
    etag = client.upload_blob(b"one\n")["etag"]
    newer = client.upload_blob(b"two\n", overwrite=True)["etag"]
    assert storage.delete_unchanged(client, etag) is False
    assert client.download_blob().readall() == b"two\n"
    assert storage.delete_unchanged(client, None) is False
    assert storage.delete_unchanged(client, newer) is True
    assert not client.exists()
    assert storage.delete_unchanged(client, newer) is False  # already gone: nothing to do


def test_clients_take_nothing_from_the_environment_per_request_unless_a_proxy_is_set(
    azurite, container, monkeypatch, tmp_path
):
    """Trusting the environment, `requests` scans it on every request and takes basic auth from
    a .netrc, which replaces the SDK's own Authorization header: the request is then refused."""
    from batching.storage.refs import client_options

    for name in list(os.environ):
        if name.lower().endswith("_proxy"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/a-bundle.pem")
    assert client_options() == {
        "use_env_settings": False,
        "connection_verify": "/etc/ssl/a-bundle.pem",
    }
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login someone password wrong\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    storage.blob_service.cache_clear()
    try:
        ours = storage.blob_service(
            StorageConfig(
                connection_string=azurite.connection_string,
                blob_service_uri=None,
                dfs_service_uri=None,
                table_service_uri=None,
                client_id=None,
                hierarchical_namespace=False,
            )
        )
        ours.get_container_client(container.container_name).upload_blob("n.jsonl", b"{}\n")
        assert ours.get_blob_client(container.container_name, "n.jsonl").exists()
        with pytest.raises(HttpResponseError, match="failed to authenticate"):
            container.download_blob("n.jsonl")  # a client with the SDK's defaults

        monkeypatch.setenv("https_proxy", "http://127.0.0.1:9")  # as the SDK always did
        assert client_options() == {}
    finally:
        storage.blob_service.cache_clear()
