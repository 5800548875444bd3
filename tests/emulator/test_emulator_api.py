"""The emulator's files and batches routes, through the real `openai` SDK."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from devstack import services
from tests.support.emulator import (
    API_VERSION,
    azure,
    chat_file,
    chat_line,
    control,
    create_batch,
    jsonl,
    read_jsonl,
    reset,
    run_batch,
    scenario,
    upload,
    v1,
    wait_batch,
)

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
BATCH_VERSIONS = [
    "2024-07-01-preview",
    "2024-10-01-preview",
    "2024-10-21",
    "2025-03-01-preview",
    "2025-04-01-preview",
]


@pytest.fixture(autouse=True)
def _clean(emulator: services.Emulator) -> Iterator[None]:
    yield from reset(emulator)


def test_upload_retrieve_list_content_delete(emulator: services.Emulator) -> None:
    client = azure(emulator)
    data = chat_file(3)
    created = client.files.create(
        file=("mine.jsonl", data),
        purpose="batch",
        expires_after={"anchor": "created_at", "seconds": 1_209_600},
    )
    assert created.object == "file"
    assert created.status in ("pending", "processed")
    assert (created.bytes, created.filename, created.purpose) == (len(data), "mine.jsonl", "batch")
    assert created.expires_at == created.created_at + 1_209_600

    processed = upload(client, data)  # polls until `processed`
    assert processed.status == "processed"
    assert client.files.content(created.id).read() == data

    listed = {f.id for f in client.files.list()}
    assert {created.id, processed.id} <= listed
    assert created.id in {f.id for f in client.files.list(purpose="batch")}
    assert created.id not in {f.id for f in client.files.list(purpose="fine-tune")}

    deleted = client.files.delete(created.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (created.id, "file", True)
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(created.id)
    assert created.id not in {f.id for f in client.files.list()}


def test_expires_after_dotted_form_and_range(emulator: services.Emulator) -> None:
    client = azure(emulator)
    dotted = client.files.create(
        file=("dotted.jsonl", chat_file(1)),
        purpose="batch",
        extra_body={"expires_after.anchor": "created_at", "expires_after.seconds": "2592000"},
    )
    assert dotted.expires_at == dotted.created_at + 2_592_000
    assert (
        client.files.create(file=("plain.jsonl", chat_file(1)), purpose="batch").expires_at is None
    )
    for seconds in (1_209_599, 2_592_001):
        with pytest.raises(openai.BadRequestError, match="expires_after"):
            client.files.create(
                file=("x.jsonl", chat_file(1)),
                purpose="batch",
                expires_after={"anchor": "created_at", "seconds": seconds},
            )


def test_expired_input_files_disappear(fresh_emulator: services.Emulator) -> None:
    client = azure(fresh_emulator)
    kept = client.files.create(file=("kept.jsonl", chat_file(1)), purpose="batch")
    gone = client.files.create(
        file=("gone.jsonl", chat_file(1)),
        purpose="batch",
        expires_after={"anchor": "created_at", "seconds": 1_209_600},
    )
    control(fresh_emulator, "clock", {"offset_seconds": 1_209_600 + 60})
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(gone.id)
    assert [f.id for f in client.files.list()] == [kept.id]


def test_only_batch_purpose_and_a_file_part_are_accepted(emulator: services.Emulator) -> None:
    client = azure(emulator)
    with pytest.raises(openai.BadRequestError, match="purpose"):
        client.files.create(file=("x.jsonl", chat_file(1)), purpose="fine-tune")
    # The SDK always sends a file part: without one, straight over HTTP.
    url = f"{emulator.endpoint}/openai/files?api-version={API_VERSION}"
    headers = {"api-key": "any-key"}
    no_file = httpx.post(url, headers=headers, files={"purpose": (None, b"batch")})
    assert no_file.status_code == 400
    assert no_file.json()["error"]["param"] == "file"
    accepted = client.files.create(file=("x.jsonl", chat_file(1)), purpose="batch")
    assert accepted.purpose == "batch"


@pytest.mark.parametrize("version", BATCH_VERSIONS)
def test_batch_api_versions_are_served(emulator: services.Emulator, version: str) -> None:
    client = azure(emulator, api_version=version)
    assert client.batches.list(limit=1).object == "list"


def test_other_or_missing_api_version_is_resource_not_found(emulator: services.Emulator) -> None:
    for client in (
        azure(emulator, api_version="2024-02-01"),
        openai.OpenAI(base_url=f"{emulator.endpoint}/openai/", api_key="k"),  # no api-version
    ):
        with pytest.raises(openai.NotFoundError) as caught:
            client.files.list()
        assert caught.value.body == {"code": "404", "message": "Resource not found"}


def test_v1_surface_runs_a_batch(emulator: services.Emulator) -> None:
    client = v1(emulator)
    scenario(emulator, batch_duration=0.6)
    batch = run_batch(client, chat_file(4), endpoint="/v1/chat/completions")
    assert batch.status == "completed"
    assert batch.endpoint == "/v1/chat/completions"
    assert len(read_jsonl(client, batch.output_file_id)) == 4
    assert batch.id in {b.id for b in client.batches.list(limit=100)}
    assert client.files.delete(batch.input_file_id).deleted


def test_batch_needs_a_processed_file(emulator: services.Emulator) -> None:
    client = azure(emulator)
    scenario(emulator, batch_duration=5)  # the file stays `pending` for 0.5 s
    pending = client.files.create(file=("p.jsonl", chat_file(1)), purpose="batch")
    with pytest.raises(
        openai.BadRequestError, match="Only files with status 'Processed' are accepted"
    ):
        create_batch(client, pending.id)


def test_batch_create_rejections(emulator: services.Emulator) -> None:
    client = azure(emulator)
    with pytest.raises(openai.NotFoundError):
        create_batch(client, "file-does-not-exist")
    ready = upload(client, chat_file(1))
    with pytest.raises(openai.BadRequestError, match="endpoint"):
        create_batch(client, ready.id, endpoint="/v1/embeddings")
    with pytest.raises(openai.BadRequestError, match="completion_window"):
        client.batches.create(
            input_file_id=ready.id,
            endpoint="/v1/chat/completions",
            completion_window="48h",  # type: ignore[arg-type]
        )
    with pytest.raises(openai.NotFoundError):
        client.batches.retrieve("batch_missing")


def test_completed_batch_results(emulator: services.Emulator) -> None:
    client = azure(emulator)
    scenario(emulator, batch_duration=0.8)
    data = (SAMPLES / "quickstart.jsonl").read_bytes() + chat_file(30, prefix="q")
    batch = run_batch(client, data, metadata={"job": "quickstart", "owner": "tests"})
    assert batch.status == "completed"
    assert batch.metadata == {"job": "quickstart", "owner": "tests"}
    assert batch.errors is None
    counts = batch.request_counts
    assert counts is not None
    assert (counts.total, counts.completed, counts.failed) == (32, 32, 0)

    lines = read_jsonl(client, batch.output_file_id)
    ids = [line["custom_id"] for line in lines]
    input_order = ["task-0", "task-1", *(f"q-{i}" for i in range(30))]
    assert sorted(ids) == sorted(input_order)
    assert ids != input_order, "results come back in another order than the input"
    first = next(line for line in lines if line["custom_id"] == "task-0")
    assert set(first) == {"id", "custom_id", "response", "error"}
    assert first["error"] is None
    response = first["response"]
    assert response["status_code"] == 200
    assert response["request_id"]
    body = response["body"]
    assert body["object"] == "chat.completion"
    assert body["model"] == "gpt-4o"
    content = body["choices"][0]["message"]["content"]
    assert "Microsoft" in content
    usage = body["usage"]
    assert usage["prompt_tokens"] >= 10
    assert usage["completion_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]

    assert batch.error_file_id, "a completed batch always has an error file"
    assert client.files.content(batch.error_file_id).read() == b""
    output = client.files.retrieve(batch.output_file_id or "")
    assert output.purpose == "batch_output"

    again = run_batch(client, (SAMPLES / "quickstart.jsonl").read_bytes())
    repeat = {x["custom_id"]: x for x in read_jsonl(client, again.output_file_id)}
    answer = repeat["task-0"]["response"]["body"]["choices"][0]["message"]["content"]
    assert answer == content, "answers are deterministic"


def test_list_batches_pages(fresh_emulator: services.Emulator) -> None:
    client = azure(fresh_emulator)
    source = upload(client, chat_file(1))
    created = [create_batch(client, source.id).id for _ in range(5)]
    newest_first = list(reversed(created))

    page = client.batches.list(limit=2)
    assert [b.id for b in page.data] == newest_first[:2]
    assert page.has_more is True
    raw = page.model_dump()
    assert (raw["first_id"], raw["last_id"]) == (newest_first[0], newest_first[1])
    second = client.batches.list(limit=2, after=newest_first[1])
    assert [b.id for b in second.data] == newest_first[2:4]
    last = client.batches.list(limit=2, after=newest_first[3])
    assert ([b.id for b in last.data], last.has_more) == (newest_first[4:], False)

    assert [b.id for b in client.batches.list()] == newest_first  # default limit 20
    assert [b.id for b in client.batches.list(limit=2)] == newest_first  # the SDK follows pages
    for batch_id in created:
        wait_batch(client, batch_id)


def test_state_counts_requests_by_route_template(fresh_emulator: services.Emulator) -> None:
    classic, general = azure(fresh_emulator), v1(fresh_emulator)
    first = upload(classic, chat_file(2))
    second = upload(general, chat_file(2))
    batch = create_batch(general, second.id, endpoint="/v1/chat/completions")
    classic.batches.retrieve(batch.id)
    general.batches.retrieve(batch.id)
    classic.files.delete(first.id)

    state = control(fresh_emulator, "state")
    requests = state["requests"]
    assert requests["POST /openai/files"] == 2
    assert requests["DELETE /openai/files/{file_id}"] == 1
    assert requests["POST /openai/batches"] == 1
    assert requests["GET /openai/batches/{batch_id}"] == 2
    assert requests["GET /openai/files/{file_id}"] >= 2
    assert state["files"] == 1
    assert sum(state["batches"].values()) == 1
    assert set(state["enqueued_tokens"]) == {"gpt-4o-batch"}
    done = wait_batch(classic, batch.id)
    state = control(fresh_emulator, "state")
    assert state["batches"] == {done.status: 1}
    assert state["files"] == 3  # input, output and error file


def test_deleting_the_input_file_does_not_hurt_its_batch(emulator: services.Emulator) -> None:
    client = azure(emulator)
    scenario(emulator, batch_duration=0.6)
    batch = create_batch(client, upload(client, chat_file(10)).id)
    client.files.delete(batch.input_file_id)
    done = wait_batch(client, batch.id)
    assert done.status == "completed"
    assert len(read_jsonl(client, done.output_file_id)) == 10


def test_settings_from_environment_variables(tmp_path: Path) -> None:
    port = services.free_port()
    env = {
        "EMULATOR_HOST": "127.0.0.1",
        "EMULATOR_PORT": str(port),
        "EMULATOR_API_KEY": "from-env",
        "EMULATOR_DEPLOYMENTS": "small=gpt-4o:1500,mini-batch=gpt-4o-mini",
        "EMULATOR_BATCH_DURATION": "0.5",
        "EMULATOR_DATA_DIR": str(tmp_path / "data"),
    }
    em = services.Emulator(port, "from-env")
    cmd = [sys.executable, "-m", "emulator"]
    with services.child(
        cmd, "emulator", f"{em.endpoint}/_emulator/state", tmp_path / "log", env=env
    ):
        with pytest.raises(openai.AuthenticationError):
            azure(em, api_key="wrong").files.list()
        client = azure(em)
        big = jsonl([chat_line("a", "hi", model="small", max_tokens=2000)])
        failed = run_batch(client, big)
        assert failed.errors is not None and failed.errors.data is not None
        assert failed.errors.data[0].code == "token_limit_exceeded"  # 2001 > 1500
        assert control(em, "state")["enqueued_tokens"] == {"small": 0, "mini-batch": 0}
    assert list((tmp_path / "data" / "files").glob("*.jsonl")), "EMULATOR_DATA_DIR was used"


def test_api_key_and_bearer_auth(tmp_path: Path) -> None:
    with services.emulator(None, api_key="s3cret", log_path=tmp_path / "emulator.log") as em:
        with pytest.raises(openai.AuthenticationError) as caught:
            azure(em, api_key="wrong").files.list()
        assert caught.value.body is not None
        assert caught.value.body["code"] == "401"  # type: ignore[index]
        assert azure(em, api_key="s3cret").files.list().data == []
        entra = openai.AzureOpenAI(
            azure_endpoint=em.endpoint, azure_ad_token="any-entra-token", api_version="2024-10-21"
        )
        assert entra.batches.list().data == []
        assert v1(em).files.list().data == []  # the v1 client sends its key as a Bearer token
