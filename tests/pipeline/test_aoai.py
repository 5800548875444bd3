"""The Azure OpenAI lookups (batching/service/aoai.py) against the emulator, via the openai SDK."""

from __future__ import annotations

import io
import itertools
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import orjson
import pytest
from openai import AzureOpenAI, OpenAI

from batching.service import aoai
from batching.settings import Settings
from devstack import services

LINE = orjson.dumps(
    {
        "custom_id": "r1",
        "method": "POST",
        "url": "/chat/completions",
        "body": {"model": "gpt-4o-batch", "messages": [{"role": "user", "content": "hi"}]},
    }
)


@pytest.fixture(scope="module")
def em(tmp_path_factory: pytest.TempPathFactory) -> Iterator[services.Emulator]:
    """An emulator of this module's own whose batches stay in progress (no work in between)."""
    with services.emulator(
        None,
        batch_duration=3600.0,
        log_path=tmp_path_factory.mktemp("aoai") / "emulator.log",
    ) as running:
        yield running


@pytest.fixture(scope="module", params=["v1", "2025-04-01-preview"])
def c(em: services.Emulator, request: pytest.FixtureRequest) -> OpenAI:
    """The app's client on the v1 API (its default) and on the dated api-version path."""
    settings = Settings.from_env(
        {
            "AZURE_OPENAI_ENDPOINT": em.endpoint,
            "AZURE_OPENAI_API_KEY": "k",
            "AZURE_OPENAI_API_VERSION": request.param,
            "BATCH_STORAGE": "UseDevelopmentStorage=true",
        }
    )
    return aoai.client(settings)


def _scenario(em: services.Emulator, **changes: object) -> None:
    httpx.post(f"{em.endpoint}/_emulator/scenario", json=changes).raise_for_status()


def _processed_upload(c: OpenAI, name: str) -> str:
    uploaded = aoai.upload(c, name, io.BytesIO(LINE + b"\n"), 0)
    for _ in itertools.count():
        if aoai.get_file(c, uploaded["id"])["status"] == "processed":
            return str(uploaded["id"])
    raise AssertionError("unreachable")


@pytest.fixture(scope="module")
def input_file(c: OpenAI) -> str:
    return _processed_upload(c, "aoai-test-input.jsonl")


def _create(c: OpenAI, file_id: str, key: str) -> dict[str, object]:
    return aoai.create_batch(
        c, aoai.BatchInput(file_id=file_id), "/chat/completions", {"key": key}, 0
    )


def test_find_batch_since_reads_past_the_first_page_of_100(c: OpenAI, input_file: str) -> None:
    """The recovery lookup: the batch of a key, listing newest first across pages."""
    oldest = _create(c, input_file, "paging-oldest")
    for i in range(150):  # the list is newest first: the oldest ends up on page 2
        _create(c, input_file, f"paging-{i}")
    found = aoai.find_batch_since(c, "paging-oldest", since=0)
    assert found is not None
    assert found["id"] == oldest["id"]
    assert found["metadata"] == {"key": "paging-oldest"}
    newest = aoai.find_batch_since(c, "paging-149", since=0)
    assert newest is not None and newest["metadata"] == {"key": "paging-149"}
    assert aoai.find_batch_since(c, "paging-never-created", since=0) is None


def test_find_batch_since_stops_at_the_first_batch_older_than_since(
    c: OpenAI, input_file: str
) -> None:
    made = _create(c, input_file, "since-stop")
    created = int(aoai.get_batch(c, str(made["id"]))["created_at"])
    assert aoai.find_batch_since(c, "since-stop", since=created) is not None
    # Every batch in the account is older than this: the first item ends the listing.
    assert aoai.find_batch_since(c, "since-stop", since=created + 3600) is None


def test_find_file_since_matches_by_name(c: OpenAI) -> None:
    first = _processed_upload(c, "named/run-7/c0.jsonl")
    _processed_upload(c, "named/run-7/c1.jsonl")
    found = aoai.find_file_since(c, "named/run-7/c0.jsonl", since=0)
    assert found is not None and found["id"] == first
    assert aoai.find_file_since(c, "named/run-7/c9.jsonl", since=0) is None
    assert (
        aoai.find_file_since(c, "named/run-7/c0.jsonl", since=int(found["created_at"]) + 3600)
        is None
    )
    aoai.delete_file(c, first)
    aoai.delete_file(c, first)  # already gone: not an error
    assert aoai.find_file_since(c, "named/run-7/c0.jsonl", since=0) is None


def test_upload_with_an_expiry_sets_expires_at(c: OpenAI) -> None:
    with_expiry = aoai.upload(c, "expiring.jsonl", io.BytesIO(LINE + b"\n"), 1_209_600)
    assert with_expiry["expires_at"] == with_expiry["created_at"] + 1_209_600
    without = aoai.upload(c, "not-expiring.jsonl", io.BytesIO(LINE + b"\n"), 0)
    assert without["expires_at"] is None


def test_create_batch_sends_the_output_expiry_only_when_set(c: OpenAI, input_file: str) -> None:
    # The service accepts 14 to 30 days: an expiry of 1 s that reached it would be refused.
    with pytest.raises(openai.BadRequestError, match=r"expires_after\.seconds"):
        aoai.create_batch(
            c, aoai.BatchInput(file_id=input_file), "/chat/completions", {"key": "short"}, 1
        )
    assert aoai.create_batch(
        c, aoai.BatchInput(file_id=input_file), "/chat/completions", {"key": "none"}, 0
    )["id"]
    b = aoai.create_batch(
        c, aoai.BatchInput(file_id=input_file), "/chat/completions", {"key": "expiry"}, 1_209_600
    )
    assert b["metadata"] == {"key": "expiry"}
    assert b["input_file_id"] == input_file
    assert aoai.get_batch(c, str(b["id"]))["id"] == b["id"]


def test_create_batch_raises_quota_exceeded_on_token_limit(
    c: OpenAI, input_file: str, em: services.Emulator
) -> None:
    _scenario(em, next_batches=["token_limit_fail_fast"])
    with pytest.raises(aoai.QuotaExceeded, match="token_limit_exceeded"):
        _create(c, input_file, "quota")


def test_other_bad_requests_are_not_quota(c: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        aoai.create_batch(
            c, aoai.BatchInput(file_id="file-missing"), "/embeddings", {"key": "bad"}, 0
        )
    assert not isinstance(caught.value, aoai.QuotaExceeded)


def test_cancel_batch_cancels_a_running_batch(c: OpenAI, input_file: str) -> None:
    b = _create(c, input_file, "to-cancel")
    assert aoai.cancel_batch(c, str(b["id"]))["status"] in ("cancelling", "cancelled")
    # Cancelling again (the service refuses: it is already cancelling) answers with the batch.
    again = aoai.cancel_batch(c, str(b["id"]))
    assert again["id"] == b["id"]
    assert again["status"] in ("cancelling", "cancelled")


def test_normalize_batch_smooths_the_service_quirks() -> None:
    raw = {
        "id": "batch_1",
        "status": "",
        "input_file_id": "",
        "output_file_id": None,
        "error_file_id": "file-e",
        "request_counts": None,
        "errors": {
            "data": [
                {"code": "token_limit_exceeded", "message": "full", "line": None},
                {"code": None, "message": "m", "line": 3},
            ]
        },
        "metadata": None,
        "created_at": 10,
        "completed_at": None,
        "failed_at": 11,
        "expired_at": None,
        "cancelled_at": None,
    }
    assert aoai.normalize_batch(raw) == {
        "id": "batch_1",
        "status": "validating",
        "input_file_id": None,
        "output_file_id": None,
        "error_file_id": "file-e",
        "request_counts": {"total": 0, "completed": 0, "failed": 0},
        "errors": [
            {"code": "token_limit_exceeded", "message": "full"},
            {"message": "m", "line": 3},
        ],
        "metadata": {},
        "created_at": 10,
        "completed_at": None,
        "failed_at": 11,
        "expired_at": None,
        "cancelled_at": None,
        "input_blob": None,
        "output_folder": None,
        "output_blob": None,
        "error_blob": None,
    }
    counts = {"total": "5", "completed": 3, "failed": None}
    assert aoai.normalize_batch({"id": "b", "request_counts": counts})["request_counts"] == {
        "total": 5,
        "completed": 3,
        "failed": 0,
    }
    assert aoai.normalize_batch({"id": "b", "errors": None})["errors"] == []


def test_quota_failure_reads_only_failed_batches() -> None:
    def batch(status: str, *errors: dict[str, str]) -> dict[str, object]:
        return {"status": status, "errors": list(errors)}

    quota = {"code": "token_limit_exceeded", "message": "Enqueued token limit reached"}
    assert aoai.quota_failure(batch("failed", quota)) == "Enqueued token limit reached"
    assert aoai.quota_failure(batch("failed", {"code": "token_limit_exceeded"})) == (
        "token_limit_exceeded"
    )
    assert aoai.quota_failure(batch("failed", {"message": "x token_limit_exceeded"})) == (
        "x token_limit_exceeded"
    )
    assert aoai.quota_failure(batch("failed", {"code": "invalid", "message": "m"})) is None
    assert aoai.quota_failure(batch("completed", quota)) is None
    assert aoai.is_quota_error("... token_limit_exceeded ...")
    assert not aoai.is_quota_error("token limit exceeded")


def test_terminal_statuses_are_the_four_ends() -> None:
    assert frozenset({"completed", "failed", "expired", "cancelled"}) == aoai.TERMINAL


def test_file_content_streams_the_upload(c: OpenAI, tmp_path: Path) -> None:
    file_id = _processed_upload(c, "content.jsonl")
    assert b"".join(aoai.file_content(c, file_id)) == LINE + b"\n"


def _ended_batch(c: OpenAI, em: services.Emulator, input_file: str, key: str) -> str:
    """A batch of a fraction of a second (this module's others last an hour), once it ended."""
    _scenario(em, batch_duration=0.2)
    try:
        batch_id = str(_create(c, input_file, key)["id"])
    finally:
        _scenario(em, batch_duration=None)
    for _ in itertools.count():
        if aoai.get_batch(c, batch_id)["status"] in aoai.TERMINAL:
            return batch_id
    raise AssertionError("unreachable")


def test_cancel_of_an_ended_batch_answers_with_the_batch(
    c: OpenAI, em: services.Emulator, input_file: str
) -> None:
    batch_id = _ended_batch(c, em, input_file, "ended-then-cancelled")
    answer = aoai.cancel_batch(c, batch_id)
    assert answer["id"] == batch_id
    assert answer["status"] == "completed"
    assert answer["output_file_id"] is not None
    assert answer["completed_at"] is not None
    assert answer["request_counts"] == {"total": 1, "completed": 1, "failed": 0}


def test_upload_lookups_see_only_batch_inputs_not_outputs(
    c: OpenAI, em: services.Emulator, input_file: str
) -> None:
    batch_id = _ended_batch(c, em, input_file, "outputs-are-not-uploads")
    output_id = aoai.get_batch(c, batch_id)["output_file_id"]
    output = c.files.retrieve(str(output_id))
    assert output.id in {f.id for f in c.files.list()}  # listed when no purpose is asked for
    assert aoai.find_file_since(c, str(output.filename), since=0) is None


def test_normalize_batch_keeps_every_field_the_service_set() -> None:
    raw = {
        "id": "batch_2",
        "status": "cancelled",
        "input_file_id": "file-in",
        "output_file_id": "file-out",
        "error_file_id": "file-err",
        "request_counts": {"total": 9, "completed": 5, "failed": 3},
        "errors": None,
        "metadata": {"key": "k"},
        "created_at": 1,
        "completed_at": 2,
        "failed_at": 3,
        "expired_at": 4,
        "cancelled_at": 5,
    }
    blob_fields = {
        "input_blob": None,
        "output_folder": None,
        "output_blob": None,
        "error_blob": None,
    }
    assert aoai.normalize_batch(raw) == {**raw, "errors": [], **blob_fields}


def test_normalize_batch_keeps_blob_mode_urls_and_drops_the_empty_ones_of_a_running_batch() -> None:
    account = "http://127.0.0.1:10000/devstoreaccount1"  # Azurite's path-style URLs
    folder = f"{account}/out/run/c0-r0-a0"
    running = {
        "id": "batch_3",
        "input_file_id": None,
        "input_blob": f"{account}/batch-work/run/input.jsonl",
        "output_folder": {"url": folder},
        "output_blob": "",
        "error_blob": "",
    }
    b = aoai.normalize_batch(running)
    assert (b["input_blob"], b["output_folder"]) == (running["input_blob"], folder)
    assert (b["output_blob"], b["error_blob"]) == (None, None)
    ended = {
        **running,
        "output_blob": f"{folder}/g/results.jsonl",
        "error_blob": f"{folder}/g/errors.jsonl",
    }
    b = aoai.normalize_batch(ended)
    assert (b["output_blob"], b["error_blob"]) == (ended["output_blob"], ended["error_blob"])


def test_the_client_is_one_per_endpoint_key_version_and_identity() -> None:
    def settings(client_id: str) -> Settings:
        return Settings.from_env(
            {
                "AZURE_OPENAI_ENDPOINT": "https://x.openai.azure.com",
                "BATCH_STORAGE": "UseDevelopmentStorage=true",
                "AZURE_CLIENT_ID": client_id,
            }
        )

    first, again, other = (aoai.client(settings(i)) for i in ("id-1", "id-1", "id-2"))
    assert first is again
    assert first is not other
    # the v1 API by default: the plain client at /openai/v1/, with no api-version
    assert type(first) is OpenAI
    assert str(first.base_url) == "https://x.openai.azure.com/openai/v1/"
    # no key: Entra ID tokens from the managed identity, as the api_key provider
    assert first._api_key_provider is not None
    assert "api-key" not in first.default_headers


def test_a_dated_api_version_selects_the_azure_client_and_a_key_goes_as_api_key() -> None:
    env = {
        "AZURE_OPENAI_ENDPOINT": "https://x.openai.azure.com",
        "BATCH_STORAGE": "UseDevelopmentStorage=true",
        "AZURE_OPENAI_API_KEY": "k-1",
    }
    v1 = aoai.client(Settings.from_env(env))
    assert type(v1) is OpenAI
    assert v1.default_headers["api-key"] == "k-1"
    dated = aoai.client(
        Settings.from_env({**env, "AZURE_OPENAI_API_VERSION": "2025-04-01-preview"})
    )
    assert isinstance(dated, AzureOpenAI)
    assert dated._custom_query == {"api-version": "2025-04-01-preview"}


class _Listing:
    """What `files.list` and `batches.list` yield, for shapes the emulator never produces (an
    upload whose processing failed, an object without `created_at`); the real SDK objects have
    these attributes. `asked` is what the last list call was asked for; `then` is the next page.
    """

    def __init__(self, *items: dict[str, object], then: _Listing | None = None) -> None:
        self.files = self.batches = self
        self.data = [type("F", (), {"model_dump": lambda self, i=i: i, **i})() for i in items]
        self.asked: dict[str, object] = {}
        self.then = then

    def list(self, **asked: object) -> _Listing:
        self.asked = asked
        return self

    def has_next_page(self) -> bool:
        return self.then is not None

    def get_next_page(self) -> _Listing:
        assert self.then is not None, "asked for a page after the last"
        return self.then


def _file(file_id: str, created_at: int | None, name: str = "run/c0.jsonl") -> dict[str, object]:
    return {"id": file_id, "filename": name, "status": "processed", "created_at": created_at}


def _batch(batch_id: str, created_at: int | None, key: str = "k") -> dict[str, object]:
    return {"id": batch_id, "metadata": {"key": key}, "created_at": created_at}


def test_an_upload_whose_processing_failed_is_not_found_again() -> None:
    listing = _Listing(
        {"id": "file-1", "filename": "run/c0.jsonl", "status": "error", "created_at": 20},
        {"id": "file-2", "filename": "run/c0.jsonl", "status": "processed", "created_at": 10},
    )
    found = aoai.find_file_since(listing, "run/c0.jsonl", since=0)  # type: ignore[arg-type]
    assert found is not None and found["id"] == "file-2"


def test_the_since_lookups_list_newest_first_in_pages_of_100() -> None:
    files = _Listing(_file("file-1", 10))
    assert aoai.find_file_since(files, "run/c0.jsonl", since=0) is not None  # type: ignore[arg-type]
    assert files.asked == {"purpose": "batch", "order": "desc", "limit": 100}
    batches = _Listing(_batch("batch-1", 10))
    assert aoai.find_batch_since(batches, "k", since=0) is not None  # type: ignore[arg-type]
    assert batches.asked == {"limit": 100}


def test_the_since_lookups_read_the_next_pages_until_found() -> None:
    files = _Listing(_file("file-3", 30, name="a.jsonl"), then=_Listing(_file("file-2", 20)))
    found_file = aoai.find_file_since(files, "run/c0.jsonl", since=0)  # type: ignore[arg-type]
    assert found_file is not None and found_file["id"] == "file-2"
    assert aoai.find_file_since(files, "other.jsonl", since=0) is None  # type: ignore[arg-type]
    batches = _Listing(_batch("batch-3", 30, key="a"), then=_Listing(_batch("batch-2", 20)))
    found_batch = aoai.find_batch_since(batches, "k", since=0)  # type: ignore[arg-type]
    assert found_batch is not None and found_batch["id"] == "batch-2"
    assert aoai.find_batch_since(batches, "other", since=0) is None  # type: ignore[arg-type]


def test_a_file_created_exactly_at_since_is_found_and_one_second_later_is_not() -> None:
    listing = _Listing(_file("file-3", 12, name="other.jsonl"), _file("file-2", 10))
    at = aoai.find_file_since(listing, "run/c0.jsonl", since=10)  # type: ignore[arg-type]
    assert at is not None and at["id"] == "file-2"
    assert aoai.find_file_since(listing, "run/c0.jsonl", since=11) is None  # type: ignore[arg-type]


def test_a_batch_created_exactly_at_since_is_found_and_one_second_later_is_not() -> None:
    listing = _Listing(_batch("batch-3", 12, key="other"), _batch("batch-2", 10))
    at = aoai.find_batch_since(listing, "k", since=10)  # type: ignore[arg-type]
    assert at is not None and at["id"] == "batch-2"
    assert aoai.find_batch_since(listing, "k", since=11) is None  # type: ignore[arg-type]


def test_a_missing_created_at_counts_as_the_epoch_in_the_since_lookups() -> None:
    """No created_at (the service's nulls): time 0, so older than any since > 0."""
    files = _Listing(_file("file-1", None))
    assert aoai.find_file_since(files, "run/c0.jsonl", since=1) is None  # type: ignore[arg-type]
    found_file = aoai.find_file_since(files, "run/c0.jsonl", since=0)  # type: ignore[arg-type]
    assert found_file is not None and found_file["id"] == "file-1"
    batches = _Listing(_batch("batch-1", None))
    assert aoai.find_batch_since(batches, "k", since=1) is None  # type: ignore[arg-type]
    found_batch = aoai.find_batch_since(batches, "k", since=0)  # type: ignore[arg-type]
    assert found_batch is not None and found_batch["id"] == "batch-1"
