"""Bring-your-own-storage batches in the emulator (`input_blob`, `output_folder`), with Azurite.

Both surfaces are driven through the real `openai` SDK: `AzureOpenAI` with api-version
2025-04-01-preview and `OpenAI(base_url=.../openai/v1/)`; the blob fields go through
`extra_body`, as Microsoft's Python example does. Results are read back from Azurite.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from azure.storage.blob import BlobServiceClient, ContainerClient
from openai import AzureOpenAI, OpenAI
from openai.types import Batch

from devstack import services
from emulator import blobs
from emulator.config import parse_settings
from tests.support.emulator import (
    azure,
    chat_file,
    chat_line,
    control,
    jsonl,
    reset,
    scenario,
    v1,
    wait_batch,
)

BLOB_API_VERSION = "2025-04-01-preview"
ACCOUNT = services.AZURITE_ACCOUNT


@pytest.fixture(scope="module")
def blob_emulator(
    azurite: services.Azurite, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[services.Emulator]:
    """An emulator that reaches Azurite's account through `--storage-connection-string`."""
    with services.emulator(
        None,
        batch_duration=1.0,
        extra_args=["--storage-connection-string", azurite.connection_string],
        log_path=tmp_path_factory.mktemp("blob-emulator") / "emulator.log",
    ) as em:
        yield em


@pytest.fixture(autouse=True)
def _clean(blob_emulator: services.Emulator) -> Iterator[None]:
    yield from reset(blob_emulator)


@pytest.fixture
def container(blob_service: BlobServiceClient) -> Iterator[ContainerClient]:
    client = blob_service.create_container(f"byos-{uuid.uuid4().hex[:12]}")
    yield client
    client.delete_container()


def path_url(azurite: services.Azurite, container: ContainerClient, path: str) -> str:
    """Azurite's path-style URL: http://127.0.0.1:PORT/devstoreaccount1/CONTAINER/PATH."""
    return f"http://127.0.0.1:{azurite.blob_port}/{ACCOUNT}/{container.container_name}/{path}"


def azure_url(container: ContainerClient, path: str) -> str:
    """The service's form: https://ACCOUNT.blob.core.windows.net/CONTAINER/PATH."""
    return f"https://{ACCOUNT}.blob.core.windows.net/{container.container_name}/{path}"


def blob_client(em: services.Emulator) -> AzureOpenAI:
    return azure(em, api_version=BLOB_API_VERSION)


def create(client: AzureOpenAI | OpenAI, input_blob: str, folder: str, **extra: Any) -> Batch:
    return client.batches.create(
        input_file_id=None,  # type: ignore[arg-type]
        endpoint="/chat/completions",
        completion_window="24h",
        extra_body={"input_blob": input_blob, "output_folder": {"url": folder}, **extra},
    )


def fields(batch: Batch) -> dict[str, Any]:
    return batch.to_dict()


def blob_lines(container: ContainerClient, url: str) -> list[dict[str, Any]]:
    name = url.split(f"/{container.container_name}/", 1)[1]
    text = container.download_blob(name).readall().decode()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def exists(container: ContainerClient, url: str) -> bool:
    name = url.split(f"/{container.container_name}/", 1)[1]
    return bool(container.get_blob_client(name).exists())


def test_dated_api_reads_the_input_blob_and_writes_results(
    blob_emulator: services.Emulator, azurite: services.Azurite, container: ContainerClient
) -> None:
    container.upload_blob("in/requests.jsonl", chat_file(30))
    client = blob_client(blob_emulator)
    folder = path_url(azurite, container, "out")
    batch = create(client, path_url(azurite, container, "in/requests.jsonl"), folder)
    created = fields(batch)
    assert created["input_file_id"] is None
    assert created["input_blob"] == path_url(azurite, container, "in/requests.jsonl")
    assert created["output_folder"] == {"url": folder}
    assert (created["output_blob"], created["error_blob"]) == ("", "")
    assert created["metadata"] is None

    done = wait_batch(client, batch.id)
    assert done.status == "completed", done.errors
    assert (done.output_file_id, done.error_file_id) == (None, None)
    assert done.request_counts is not None and done.request_counts.completed == 30
    view = fields(done)
    guid = view["output_blob"].removeprefix(folder + "/").removesuffix("/results.jsonl")
    assert str(uuid.UUID(guid)) == guid
    assert view["output_blob"] == f"{folder}/{guid}/results.jsonl"
    assert view["error_blob"] == f"{folder}/{guid}/errors.jsonl"
    results = blob_lines(container, view["output_blob"])
    assert sorted(r["custom_id"] for r in results) == sorted(f"task-{i}" for i in range(30))
    assert all(r["response"]["status_code"] == 200 for r in results)
    # No request failed: error_blob is still returned, but the blob was not written.
    assert not exists(container, view["error_blob"])


def test_v1_api_with_service_urls_writes_errors_jsonl(
    blob_emulator: services.Emulator, container: ContainerClient
) -> None:
    container.upload_blob("batch.jsonl", chat_file(40))
    scenario(blob_emulator, line_failure_rate=0.5, seed=7)
    client = v1(blob_emulator)
    folder = azure_url(container, "results/run-1")
    batch = create(client, azure_url(container, "batch.jsonl"), folder)
    assert (fields(batch)["output_blob"], fields(batch)["error_blob"]) == ("", "")
    done = wait_batch(client, batch.id)
    assert done.status == "completed", done.errors
    counts = done.request_counts
    assert counts is not None and counts.failed > 0 and counts.completed > 0
    view = fields(done)
    assert view["output_blob"].startswith(folder + "/")
    assert view["output_blob"].endswith("/results.jsonl")
    results = blob_lines(container, view["output_blob"])
    errors = blob_lines(container, view["error_blob"])
    assert len(results) == counts.completed and len(errors) == counts.failed
    assert {e["response"]["status_code"] for e in errors} == {500}
    names = [b.name for b in container.list_blobs(name_starts_with="results/run-1/")]
    assert sorted(n.rsplit("/", 1)[1] for n in names) == ["errors.jsonl", "results.jsonl"]


def test_every_request_failing_leaves_only_errors_jsonl(
    blob_emulator: services.Emulator, container: ContainerClient
) -> None:
    container.upload_blob("in.jsonl", chat_file(5))
    scenario(blob_emulator, line_failure_rate=1.0, line_failure_status=400)
    client = v1(blob_emulator)
    done = wait_batch(
        client, create(client, azure_url(container, "in.jsonl"), azure_url(container, "o")).id
    )
    view = fields(done)
    assert done.status == "completed"
    assert view["output_blob"].endswith("/results.jsonl") and not exists(
        container, view["output_blob"]
    )
    assert len(blob_lines(container, view["error_blob"])) == 5


@pytest.mark.parametrize("surface", ["dated", "v1"])
def test_metadata_is_rejected_in_blob_mode(
    blob_emulator: services.Emulator, container: ContainerClient, surface: str
) -> None:
    container.upload_blob("in.jsonl", chat_file(1))
    client = blob_client(blob_emulator) if surface == "dated" else v1(blob_emulator)
    before = control(blob_emulator, "state")["batches"]
    with pytest.raises(openai.BadRequestError) as caught:
        client.batches.create(
            input_file_id=None,  # type: ignore[arg-type]
            endpoint="/chat/completions",
            completion_window="24h",
            metadata={"job": "x"},
            extra_body={
                "input_blob": azure_url(container, "in.jsonl"),
                "output_folder": {"url": azure_url(container, "out")},
            },
        )
    error = caught.value.body
    assert isinstance(error, dict)
    assert error["code"] == "invalid_request"
    assert error["type"] == "invalid_request_error"
    assert error["param"] == "metadata"
    assert control(blob_emulator, "state")["batches"] == before


def test_blob_fields_need_a_version_that_knows_them(
    blob_emulator: services.Emulator, container: ContainerClient
) -> None:
    client = azure(blob_emulator, api_version="2024-10-21")
    with pytest.raises(openai.BadRequestError, match="2025-04-01-preview"):
        create(client, azure_url(container, "in.jsonl"), azure_url(container, "out"))


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"input_blob": "not a url"}, "input_blob"),
        ({"input_blob": "https://acct.blob.core.windows.net/only-container"}, "input_blob"),
        ({"input_blob": "https://a.blob.core.windows.net/c/x.jsonl?sv=1&sig=2"}, "input_blob"),
        ({"output_folder": "https://a.blob.core.windows.net/c/out"}, "output_folder"),
        ({"output_folder": None}, "output_folder"),
        ({"input_file_id": "file-abc"}, "input_file_id"),
    ],
)
def test_malformed_blob_requests_are_400s(
    blob_emulator: services.Emulator, extra: dict[str, Any], param: str
) -> None:
    body: dict[str, Any] = {
        "input_file_id": None,
        "endpoint": "/chat/completions",
        "completion_window": "24h",
        "input_blob": "https://acct.blob.core.windows.net/c/in.jsonl",
        "output_folder": {"url": "https://acct.blob.core.windows.net/c/out"},
        **extra,
    }
    reply = httpx.post(f"{blob_emulator.endpoint}/openai/v1/batches", json=body)
    assert reply.status_code == 400
    assert reply.json()["error"]["param"] == param


@pytest.mark.parametrize("access", ["none", "read_only"])
def test_identity_without_access_fails_with_input_no_permissions(
    blob_emulator: services.Emulator, container: ContainerClient, access: str
) -> None:
    container.upload_blob("in.jsonl", chat_file(3))
    scenario(blob_emulator, blob_access=access)
    client = blob_client(blob_emulator)
    batch = create(client, azure_url(container, "in.jsonl"), azure_url(container, "out"))
    assert batch.status == "validating"  # accepted: the failure is the batch's, not the call's
    done = wait_batch(client, batch.id)
    assert done.status == "failed" and done.failed_at is not None
    assert done.errors is not None and done.errors.data is not None
    assert [e.code for e in done.errors.data] == ["input_no_permissions"]
    assert (fields(done)["output_blob"], fields(done)["error_blob"]) == ("", "")
    assert list(container.list_blobs(name_starts_with="out/")) == []


def test_an_unreachable_account_fails_with_input_no_permissions(
    blob_emulator: services.Emulator,
) -> None:
    client = v1(blob_emulator)
    batch = create(
        client,
        "https://elsewhere.blob.core.windows.net/c/in.jsonl",
        "https://elsewhere.blob.core.windows.net/c/out",
    )
    done = wait_batch(client, batch.id)
    assert done.status == "failed"
    assert done.errors is not None and done.errors.data is not None
    assert done.errors.data[0].code == "input_no_permissions"
    assert "elsewhere" in (done.errors.data[0].message or "")


def test_input_overwritten_before_processing_fails_with_input_modified(
    blob_emulator: services.Emulator, container: ContainerClient
) -> None:
    container.upload_blob("in.jsonl", chat_file(3))
    scenario(blob_emulator, batch_duration=3600)  # validation reads the blob at +360 s
    client = v1(blob_emulator)
    batch = create(client, azure_url(container, "in.jsonl"), azure_url(container, "out"))
    container.upload_blob("in.jsonl", chat_file(4), overwrite=True)
    offset = control(blob_emulator, "clock")["offset_seconds"]
    control(blob_emulator, "clock", {"offset_seconds": offset + 400})
    done = wait_batch(client, batch.id)
    assert done.status == "failed"
    assert done.errors is not None and done.errors.data is not None
    assert [e.code for e in done.errors.data] == ["input_modified"]


def test_unchanged_input_read_after_a_clock_jump_completes(
    blob_emulator: services.Emulator, container: ContainerClient
) -> None:
    container.upload_blob("in.jsonl", chat_file(3))
    scenario(blob_emulator, batch_duration=3600)
    client = v1(blob_emulator)
    batch = create(client, azure_url(container, "in.jsonl"), azure_url(container, "out"))
    assert client.batches.retrieve(batch.id).status == "validating"
    offset = control(blob_emulator, "clock")["offset_seconds"]
    control(blob_emulator, "clock", {"offset_seconds": offset + 3700})
    done = wait_batch(client, batch.id)
    assert done.status == "completed", done.errors
    assert len(blob_lines(container, fields(done)["output_blob"])) == 3


def test_validation_errors_of_the_blob_are_batch_errors(
    blob_emulator: services.Emulator, container: ContainerClient
) -> None:
    line = chat_line("a")
    container.upload_blob("in.jsonl", jsonl([line, line]))
    client = v1(blob_emulator)
    done = wait_batch(
        client, create(client, azure_url(container, "in.jsonl"), azure_url(container, "o")).id
    )
    assert done.status == "failed"
    assert done.errors is not None and done.errors.data is not None
    assert [e.code for e in done.errors.data] == ["duplicate_custom_id"]


def test_cancel_writes_the_finished_requests(
    blob_emulator: services.Emulator, container: ContainerClient
) -> None:
    container.upload_blob("in.jsonl", chat_file(10))
    scenario(blob_emulator, batch_duration=3600)
    client = v1(blob_emulator)
    batch = create(client, azure_url(container, "in.jsonl"), azure_url(container, "out"))
    client.batches.cancel(batch.id)
    offset = control(blob_emulator, "clock")["offset_seconds"]
    control(blob_emulator, "clock", {"offset_seconds": offset + 10})
    done = wait_batch(client, batch.id)
    assert done.status == "cancelled"
    view = fields(done)
    assert view["output_blob"].endswith("/results.jsonl")
    assert not exists(container, view["output_blob"])  # nothing had run yet


def test_storage_is_settable_through_the_control_api(
    emulator: services.Emulator, azurite: services.Azurite, container: ContainerClient
) -> None:
    """The shared emulator starts without storage; the control API introduces Azurite."""
    container.upload_blob("in.jsonl", chat_file(2))
    with pytest.raises(httpx.HTTPStatusError):
        control(emulator, "storage", {"connection_string": "BlobEndpoint=http://x"})
    assert (
        ACCOUNT
        in control(emulator, "storage", {"connection_string": azurite.connection_string})[
            "accounts"
        ]
    )
    assert ACCOUNT in control(emulator, "storage")["accounts"]
    client = v1(emulator)
    done = wait_batch(
        client,
        create(
            client, path_url(azurite, container, "in.jsonl"), path_url(azurite, container, "o")
        ).id,
    )
    assert done.status == "completed", done.errors
    assert len(blob_lines(container, fields(done)["output_blob"])) == 2


def test_blob_batch_resumes_after_a_restart(
    azurite: services.Azurite, container: ContainerClient, tmp_path: Path
) -> None:
    container.upload_blob("in.jsonl", chat_file(4))
    data = tmp_path / "emulator"
    args = ["--storage-connection-string", azurite.connection_string]
    with services.emulator(data, batch_duration=3600, extra_args=args) as em:
        client = v1(em)
        batch = create(client, azure_url(container, "in.jsonl"), azure_url(container, "out"))
    with services.emulator(data, batch_duration=3600, extra_args=args) as em:
        client = v1(em)
        control(em, "clock", {"offset_seconds": 3700})
        done = wait_batch(client, batch.id)
        assert done.status == "completed", done.errors
        assert len(blob_lines(container, fields(done)["output_blob"])) == 4


@pytest.mark.parametrize(
    ("url", "account", "container", "path"),
    [
        (
            "https://myacct.blob.core.windows.net/staged/run/chunk-0.jsonl",
            "myacct",
            "staged",
            "run/chunk-0.jsonl",
        ),
        (
            "http://127.0.0.1:10000/devstoreaccount1/staged/a%20b.jsonl",
            "devstoreaccount1",
            "staged",
            "a b.jsonl",
        ),
        (
            "http://localhost:10000/devstoreaccount1/staged/x.jsonl",
            "devstoreaccount1",
            "staged",
            "x.jsonl",
        ),
        ("https://MyAcct.blob.core.usgovcloudapi.net/c/x.jsonl", "myacct", "c", "x.jsonl"),
    ],
)
def test_both_url_forms_map_to_the_account(
    url: str, account: str, container: str, path: str
) -> None:
    parsed = blobs.parse_url(url, folder=False)
    assert (parsed.account, parsed.container, parsed.path) == (account, container, path)
    folder = blobs.parse_url(url.rsplit("/", 1)[0] + "/", folder=True)
    assert folder.child("g", "results.jsonl") == url.rsplit("/", 1)[0] + "/g/results.jsonl"


def test_storage_connection_strings_from_flags_and_environment(azurite: services.Azurite) -> None:
    cs = azurite.connection_string
    assert parse_settings(["--storage-connection-string", cs]).storage_connection_strings == (cs,)
    from_env = parse_settings([], {"EMULATOR_STORAGE_CONNECTION_STRING": cs})
    assert from_env.storage_connection_strings == (cs,)
    assert parse_settings([], {}).storage_connection_strings == ()
    assert blobs.account_name(cs) == ACCOUNT == blobs.account_name("UseDevelopmentStorage=true")
    with pytest.raises(SystemExit):
        parse_settings(["--storage-connection-string", "BlobEndpoint=http://x"])


def test_one_storage_client_per_account_is_kept(azurite: services.Azurite) -> None:
    """A client holds its connection pool: one built per call opened a new connection
    each time."""
    storage = blobs.Storage((azurite.connection_string,))
    where = blobs.parse_url(f"http://127.0.0.1/{ACCOUNT}/c/x.jsonl", folder=False)
    assert storage._client(where) is storage._client(where)
    storage.add(azurite.connection_string.replace("http://", "https://"))  # another way in
    assert storage._client(where).url.startswith("https://")
