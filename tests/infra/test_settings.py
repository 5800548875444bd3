"""Settings: one typed place, clear errors naming the setting."""

from __future__ import annotations

import pytest

from batching.settings import SETTINGS, Settings, SettingsError

BASE = {
    "AZURE_OPENAI_ENDPOINT": "https://x.openai.azure.com/",
    "BATCH_STORAGE": "UseDevelopmentStorage=true",
}


def test_defaults_apply():
    s = Settings.from_env(BASE)
    assert s.openai_endpoint == "https://x.openai.azure.com"
    assert s.input_container == "batch-input"
    assert s.max_requests_per_batch == 100_000
    assert s.invalid_lines == "reject"
    assert s.openai_api_key is None
    assert s.model_prices["gpt-4o"]["input"] == 2.5


def test_missing_endpoint_is_named():
    with pytest.raises(SettingsError, match="AZURE_OPENAI_ENDPOINT"):
        Settings.from_env({"BATCH_STORAGE": "x"})


def test_storage_needs_connection_or_identity_uri():
    with pytest.raises(SettingsError, match="BATCH_STORAGE__blobServiceUri"):
        Settings.from_env({"AZURE_OPENAI_ENDPOINT": "https://x"})
    identity = {
        "AZURE_OPENAI_ENDPOINT": "https://x",
        "BATCH_STORAGE__blobServiceUri": "https://a.blob.core.windows.net",
        "AZURE_CLIENT_ID": "cid",
    }
    # the runs table holds the ledgers, without which no batch is created
    with pytest.raises(SettingsError, match="BATCH_STORAGE__tableServiceUri must be set"):
        Settings.from_env(identity)
    s = Settings.from_env(
        {**identity, "BATCH_STORAGE__tableServiceUri": "https://a.table.core.windows.net"}
    )
    assert s.storage.connection_string is None
    assert s.storage.client_id == "cid"


@pytest.mark.parametrize(
    ("name", "value", "match"),
    [
        ("POLL_INITIAL_SECONDS", "soon", "whole number"),
        ("POLL_MAX_SECONDS", "0", "at least 1"),
        ("QUOTA_RETRY_ATTEMPTS", "51", "at most 50, not 51"),
        ("INVALID_LINES", "ignore", "reject' or 'skip"),
        ("BATCH_DISCOUNT", "2", "between 0 and 1"),
        ("MODEL_PRICES", "{not json", "MODEL_PRICES must be JSON"),
        ("STORAGE_HIERARCHICAL_NAMESPACE", "maybe", "true or false"),
    ],
)
def test_malformed_values_are_named(name, value, match):
    with pytest.raises(SettingsError, match=match) as info:
        Settings.from_env({**BASE, name: value})
    assert name in str(info.value)


def test_poll_cap_not_below_initial():
    with pytest.raises(SettingsError, match="POLL_MAX_SECONDS"):
        Settings.from_env({**BASE, "POLL_INITIAL_SECONDS": "100", "POLL_MAX_SECONDS": "10"})


def test_model_prices_extend_defaults():
    s = Settings.from_env({**BASE, "MODEL_PRICES": '{"my-model": {"input": 1, "output": 2}}'})
    assert s.model_prices["my-model"] == {"input": 1.0, "output": 2.0}
    assert "gpt-4o" in s.model_prices


def test_every_setting_is_documented_and_unique():
    names = [s.name for s in SETTINGS]
    assert len(names) == len(set(names))
    assert all(s.help for s in SETTINGS)


def test_local_settings_example_lists_every_app_setting():
    import json
    from pathlib import Path

    example = Path(__file__).resolve().parents[2] / "local.settings.json.example"
    values = json.loads(example.read_text())["Values"]
    identity_only = {
        "AZURE_CLIENT_ID",
        "BATCH_STORAGE__blobServiceUri",
        "BATCH_STORAGE__dfsServiceUri",
        "BATCH_STORAGE__tableServiceUri",
        "BATCH_STORAGE__credential",
        "BATCH_STORAGE__clientId",
        "MODEL_PRICES",
    }
    missing = {s.name for s in SETTINGS} - set(values) - identity_only
    assert not missing, f"local.settings.json.example lacks {sorted(missing)}"
    Settings.from_env(values)  # and its values are valid


def test_the_docs_settings_table_is_the_one_the_rows_generate():
    from pathlib import Path

    from batching.settings import markdown_table

    docs = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text()
    assert markdown_table() in docs, "regenerate it: python -m batching.settings"
    assert all(f"| `{s.name}` |" in docs for s in SETTINGS)


def test_orchestrators_get_exactly_the_run_config_rows():
    from batching.settings import RunConfig

    config = Settings.from_env({**BASE, "RESUBMIT_ROUNDS": "4"}).orchestration_config()
    assert config["resubmit_rounds"] == 4
    assert RunConfig.from_json(config).resubmit_rounds == 4
    assert set(config) == {
        "poll_initial_seconds",
        "poll_max_seconds",
        "polls_per_history",
        "quota_retry_initial_seconds",
        "quota_retry_max_seconds",
        "quota_retry_attempts",
        "max_active_batches",
        "max_enqueued_tokens",
        "admission_wait_seconds",
        "resubmit_rounds",
        "activity_retry_attempts",
        "activity_retry_seconds",
    }


DEFAULT_PRICE_NAMES = [
    "gpt-4o",
    "gpt-4o-mini",
    "gpt-4.1",
    "gpt-4.1-mini",
    "gpt-4.1-nano",
    "o3-mini",
    "o4-mini",
    "gpt-5",
    "gpt-5-mini",
]


def test_every_default_by_hand():
    s = Settings.from_env(BASE)
    assert s.openai_api_version == "v1"
    assert s.batch_mode == "blob"
    assert s.deployments == ()
    assert s.client_id is None
    assert (
        s.storage.connection_string,
        s.storage.blob_service_uri,
        s.storage.dfs_service_uri,
        s.storage.client_id,
        s.storage.hierarchical_namespace,
    ) == ("UseDevelopmentStorage=true", None, None, None, False)
    assert s.containers == (
        "batch-input",
        "batch-output",
        "batch-errors",
        "batch-work",
        "batch-service-output",
    )
    assert s.max_bytes_per_batch == 1_000_000_000  # blob mode's service limit
    assert s.file_expiry_seconds == 1_209_600
    assert s.reconcile_grace_seconds == 300
    assert s.batch_discount == 0.5
    assert list(s.model_prices) == DEFAULT_PRICE_NAMES
    assert s.model_prices["gpt-4o-mini"] == {"input": 0.15, "output": 0.6}
    assert s.orchestration_config() == {
        "poll_initial_seconds": 60,
        "poll_max_seconds": 600,
        "polls_per_history": 1,
        "quota_retry_initial_seconds": 300,
        "quota_retry_max_seconds": 3600,
        "quota_retry_attempts": 12,
        "max_active_batches": 0,
        "max_enqueued_tokens": 0,
        "admission_wait_seconds": 60,
        "resubmit_rounds": 2,
        "activity_retry_attempts": 5,
        "activity_retry_seconds": 5,
    }


EVERYTHING = {
    "AZURE_OPENAI_ENDPOINT": " https://y.openai.azure.com// ",
    "AZURE_OPENAI_API_KEY": " key ",
    "AZURE_OPENAI_API_VERSION": "2024-10-21",
    "AZURE_OPENAI_BATCH_MODE": "files",
    "AZURE_OPENAI_DEPLOYMENTS": " a , b,, c ,",
    "AZURE_CLIENT_ID": "app-id",
    "BATCH_STORAGE": "conn",
    "BATCH_STORAGE__blobServiceUri": "https://acct.blob.core.windows.net",
    "BATCH_STORAGE__dfsServiceUri": "https://acct.dfs.core.windows.net",
    "BATCH_STORAGE__clientId": "storage-id",
    "STORAGE_HIERARCHICAL_NAMESPACE": "Yes",
    "INPUT_CONTAINER": "in",
    "OUTPUT_CONTAINER": "out",
    "ERROR_CONTAINER": "err",
    "WORK_CONTAINER": "work",
    "SERVICE_OUTPUT_CONTAINER": "svc",
    "POLL_INITIAL_SECONDS": "7",
    "POLL_MAX_SECONDS": "8",
    "POLLS_PER_HISTORY": "9",
    "MAX_REQUESTS_PER_BATCH": "10",
    "MAX_BYTES_PER_BATCH": "1024",
    "INVALID_LINES": "skip",
    "FILE_EXPIRY_SECONDS": "0",
    "QUOTA_RETRY_INITIAL_SECONDS": "11",
    "QUOTA_RETRY_MAX_SECONDS": "12",
    "QUOTA_RETRY_ATTEMPTS": "0",
    "MAX_ACTIVE_BATCHES": "13",
    "MAX_ENQUEUED_TOKENS": "14",
    "ADMISSION_WAIT_SECONDS": "15",
    "RESUBMIT_ROUNDS": "0",
    "ACTIVITY_RETRY_ATTEMPTS": "16",
    "ACTIVITY_RETRY_SECONDS": "17",
    "RECONCILE_GRACE_SECONDS": "0",
    "MODEL_PRICES": '{"gpt-4o": {"input": 3, "output": "4.5"}, "mine": {"input": 0, "output": 1}}',
    "BATCH_DISCOUNT": "1",
}


def test_every_setting_is_read_stripped_and_converted():
    s = Settings.from_env(EVERYTHING)
    assert s.openai_endpoint == "https://y.openai.azure.com"
    assert s.openai_api_key == "key"
    assert s.openai_api_version == "2024-10-21"
    assert s.deployments == ("a", "b", "c")
    assert s.client_id == "app-id"
    assert (
        s.storage.connection_string,
        s.storage.blob_service_uri,
        s.storage.dfs_service_uri,
        s.storage.client_id,
        s.storage.hierarchical_namespace,
    ) == (
        "conn",
        "https://acct.blob.core.windows.net",
        "https://acct.dfs.core.windows.net",
        "storage-id",
        True,
    )
    assert (s.batch_mode, s.service_output_container) == ("files", "svc")
    assert s.containers == ("in", "out", "err", "work")  # files mode: no service output
    assert (s.max_requests_per_batch, s.max_bytes_per_batch) == (10, 1024)
    assert s.invalid_lines == "skip"
    assert (s.file_expiry_seconds, s.reconcile_grace_seconds) == (0, 0)
    assert s.batch_discount == 1.0
    assert s.model_prices["gpt-4o"] == {"input": 3.0, "output": 4.5}
    assert s.model_prices["mine"] == {"input": 0.0, "output": 1.0}
    assert s.model_prices["gpt-5"] == {"input": 1.25, "output": 10.0}
    assert s.orchestration_config() == {
        "poll_initial_seconds": 7,
        "poll_max_seconds": 8,
        "polls_per_history": 9,
        "quota_retry_initial_seconds": 11,
        "quota_retry_max_seconds": 12,
        "quota_retry_attempts": 0,
        "max_active_batches": 13,
        "max_enqueued_tokens": 14,
        "admission_wait_seconds": 15,
        "resubmit_rounds": 0,
        "activity_retry_attempts": 16,
        "activity_retry_seconds": 17,
    }


MINIMUMS = {
    "POLL_INITIAL_SECONDS": 1,
    "POLL_MAX_SECONDS": 1,
    "POLLS_PER_HISTORY": 1,
    "MAX_REQUESTS_PER_BATCH": 1,
    "FILE_EXPIRY_SECONDS": 0,
    "QUOTA_RETRY_INITIAL_SECONDS": 1,
    "QUOTA_RETRY_MAX_SECONDS": 1,
    "QUOTA_RETRY_ATTEMPTS": 0,
    "MAX_ACTIVE_BATCHES": 0,
    "MAX_ENQUEUED_TOKENS": 0,
    "ADMISSION_WAIT_SECONDS": 1,
    "RESUBMIT_ROUNDS": 0,
    "ACTIVITY_RETRY_ATTEMPTS": 1,
    "ACTIVITY_RETRY_SECONDS": 1,
    "RECONCILE_GRACE_SECONDS": 0,
}


@pytest.mark.parametrize(("name", "minimum"), sorted(MINIMUMS.items()))
def test_whole_numbers_are_accepted_at_their_minimum_and_refused_one_under(name, minimum):
    # The poll cap may not be under the initial wait: both at 1 when one of them is tested.
    base = {**BASE, "POLL_INITIAL_SECONDS": "1"} if name == "POLL_MAX_SECONDS" else BASE
    at = Settings.from_env({**base, name: str(minimum)})
    field = name.lower()
    assert getattr(at.run if hasattr(at.run, field) else at, field) == minimum
    with pytest.raises(SettingsError) as info:
        Settings.from_env({**base, name: str(minimum - 1)})
    assert str(info.value) == f"{name} must be at least {minimum}, not {minimum - 1}"
    with pytest.raises(SettingsError) as info:
        Settings.from_env({**base, name: "1.5"})
    assert str(info.value) == f"{name} must be a whole number, not '1.5'"


def test_poll_cap_equal_to_the_initial_wait_is_fine():
    s = Settings.from_env({**BASE, "POLL_INITIAL_SECONDS": "10", "POLL_MAX_SECONDS": "10"})
    assert (s.run.poll_initial_seconds, s.run.poll_max_seconds) == (10, 10)
    with pytest.raises(SettingsError) as info:
        Settings.from_env({**BASE, "POLL_INITIAL_SECONDS": "11", "POLL_MAX_SECONDS": "10"})
    assert str(info.value) == "POLL_MAX_SECONDS must be at least POLL_INITIAL_SECONDS"


@pytest.mark.parametrize(
    ("value", "expected"), [("0", 0.0), ("1", 1.0), ("0.25", 0.25), (" 1.0 ", 1.0)]
)
def test_batch_discount_accepts_zero_to_one(value, expected):
    assert Settings.from_env({**BASE, "BATCH_DISCOUNT": value}).batch_discount == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("-0.01", "BATCH_DISCOUNT must be between 0 and 1, not -0.01"),
        ("1.01", "BATCH_DISCOUNT must be between 0 and 1, not 1.01"),
        ("half", "BATCH_DISCOUNT must be a number, not 'half'"),
    ],
)
def test_batch_discount_outside_zero_to_one_is_refused(value, message):
    with pytest.raises(SettingsError) as info:
        Settings.from_env({**BASE, "BATCH_DISCOUNT": value})
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("true", True),
        ("TRUE", True),
        ("1", True),
        ("yes", True),
        ("false", False),
        ("False", False),
        ("0", False),
        ("no", False),
        ("", False),
        ("   ", False),
    ],
)
def test_hierarchical_namespace_reads_the_usual_booleans(value, expected):
    s = Settings.from_env({**BASE, "STORAGE_HIERARCHICAL_NAMESPACE": value})
    assert s.storage.hierarchical_namespace is expected


def test_a_boolean_that_is_neither_is_refused_with_its_value():
    with pytest.raises(SettingsError) as info:
        Settings.from_env({**BASE, "STORAGE_HIERARCHICAL_NAMESPACE": "Maybe"})
    assert str(info.value) == "STORAGE_HIERARCHICAL_NAMESPACE must be true or false, not 'maybe'"


@pytest.mark.parametrize(
    "value",
    [
        "{not json",
        "[1, 2]",  # not an object
        '{"m": {"input": 1}}',  # no output price
        '{"m": 5}',  # not an object per model
        '{"m": {"input": "cheap", "output": 1}}',  # not a number
        '{"m": {"input": null, "output": 1}}',
    ],
)
def test_malformed_model_prices_are_refused(value):
    with pytest.raises(SettingsError) as info:
        Settings.from_env({**BASE, "MODEL_PRICES": value})
    assert str(info.value) == (
        'MODEL_PRICES must be JSON like {"gpt-4o": {"input": 2.5, "output": 10}}'
    )


def test_blank_values_fall_back_to_defaults_and_blank_required_ones_are_missing():
    s = Settings.from_env({**BASE, "INPUT_CONTAINER": "  ", "AZURE_OPENAI_API_KEY": ""})
    assert s.input_container == "batch-input"
    assert s.openai_api_key is None
    with pytest.raises(SettingsError) as info:
        Settings.from_env({**BASE, "AZURE_OPENAI_ENDPOINT": "  "})
    assert str(info.value) == (
        "AZURE_OPENAI_ENDPOINT must be set: Azure OpenAI endpoint, https://NAME.openai.azure.com"
    )


def test_storage_errors_and_invalid_lines_messages_are_exact():
    with pytest.raises(SettingsError) as info:
        Settings.from_env({"AZURE_OPENAI_ENDPOINT": "https://x", "BATCH_STORAGE": " "})
    assert str(info.value) == (
        "BATCH_STORAGE (a connection string) or BATCH_STORAGE__blobServiceUri (identity-based) "
        "must be set"
    )
    with pytest.raises(SettingsError) as info:
        Settings.from_env({**BASE, "INVALID_LINES": "Skip"})
    assert str(info.value) == "INVALID_LINES must be 'reject' or 'skip', not 'Skip'"
    assert Settings.from_env({**BASE, "INVALID_LINES": " skip "}).invalid_lines == "skip"


def test_storage_client_id_prefers_the_storage_specific_one():
    only_app = Settings.from_env({**BASE, "AZURE_CLIENT_ID": "app"})
    assert only_app.storage.client_id == "app"
    both = Settings.from_env({**BASE, "AZURE_CLIENT_ID": "app", "BATCH_STORAGE__clientId": "st"})
    assert both.storage.client_id == "st"
    assert both.client_id == "app"


def test_settings_are_read_from_the_process_environment_by_default(monkeypatch):
    for s in SETTINGS:
        monkeypatch.delenv(s.name, raising=False)
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", "https://env.openai.azure.com")
    monkeypatch.setenv("BATCH_STORAGE", "from-env")
    s = Settings.from_env()
    assert s.openai_endpoint == "https://env.openai.azure.com"
    assert s.storage.connection_string == "from-env"


def test_only_trailing_slashes_leave_the_endpoint():
    s = Settings.from_env({**BASE, "AZURE_OPENAI_ENDPOINT": "http://127.0.0.1:8080/BOX/"})
    assert s.openai_endpoint == "http://127.0.0.1:8080/BOX"


@pytest.mark.parametrize(("mode", "limit"), [("files", 200_000_000), ("blob", 1_000_000_000)])
def test_max_bytes_per_batch_defaults_to_the_mode_limit_and_may_not_pass_it(mode, limit):
    """The service takes 200 MB uploaded and 1 GB from a blob (batch how-to, blob storage
    page): 0 (the default) means that limit; more than it is refused, as is 1 to 1023
    (both ends)."""
    base = {**BASE, "AZURE_OPENAI_BATCH_MODE": mode}
    assert Settings.from_env(base).max_bytes_per_batch == limit
    assert Settings.from_env({**base, "MAX_BYTES_PER_BATCH": "0"}).max_bytes_per_batch == limit
    at = Settings.from_env({**base, "MAX_BYTES_PER_BATCH": str(limit)})
    assert at.max_bytes_per_batch == limit
    with pytest.raises(SettingsError) as info:
        Settings.from_env({**base, "MAX_BYTES_PER_BATCH": str(limit + 1)})
    assert str(info.value) == (
        f"MAX_BYTES_PER_BATCH must be at most {limit:,} in {mode} mode (the service's limit), "
        f"not {limit + 1:,}"
    )
    assert Settings.from_env({**base, "MAX_BYTES_PER_BATCH": "1024"}).max_bytes_per_batch == 1024
    with pytest.raises(SettingsError) as info:
        Settings.from_env({**base, "MAX_BYTES_PER_BATCH": "1023"})
    assert str(info.value) == "MAX_BYTES_PER_BATCH must be 0 or at least 1024, not 1023"
    with pytest.raises(SettingsError, match=r"must be 0 or at least 1024, not 1$"):
        Settings.from_env({**base, "MAX_BYTES_PER_BATCH": "1"})
    with pytest.raises(SettingsError, match="must be at least 0, not -1"):
        Settings.from_env({**base, "MAX_BYTES_PER_BATCH": "-1"})


@pytest.mark.parametrize(
    ("mode", "version", "accepted"),
    [
        ("blob", "v1", True),
        ("blob", "2025-04-01-preview", True),  # the first dated version with input_blob
        ("blob", "2025-07-01-preview", True),
        ("blob", "2025-03-01-preview", False),
        ("blob", "2024-10-21", False),
        ("files", "2024-10-21", True),
        ("files", "v1", True),
    ],
)
def test_blob_mode_needs_the_v1_api_or_a_dated_version_that_knows_input_blob(
    mode, version, accepted
):
    env = {**BASE, "AZURE_OPENAI_BATCH_MODE": mode, "AZURE_OPENAI_API_VERSION": version}
    if accepted:
        assert Settings.from_env(env).openai_api_version == version
        return
    with pytest.raises(SettingsError) as info:
        Settings.from_env(env)
    assert str(info.value) == (
        "AZURE_OPENAI_API_VERSION must be 'v1' or 2025-04-01-preview or later in blob mode, "
        f"not {version!r}"
    )


@pytest.mark.parametrize("raw", ["v2", "latest", "2025-4-1", "2025-04-01-beta", "V1"])
def test_an_api_version_is_v1_or_a_dated_one(raw):
    with pytest.raises(SettingsError) as info:
        Settings.from_env({**BASE, "AZURE_OPENAI_API_VERSION": raw})
    assert str(info.value) == (
        "AZURE_OPENAI_API_VERSION must be 'v1' or a dated version like 2025-04-01-preview, "
        f"not {raw!r}"
    )


@pytest.mark.parametrize("raw", ["Blob", "file", "both", "upload"])
def test_the_batch_mode_is_blob_or_files(raw):
    with pytest.raises(SettingsError) as info:
        Settings.from_env({**BASE, "AZURE_OPENAI_BATCH_MODE": raw})
    assert str(info.value) == f"AZURE_OPENAI_BATCH_MODE must be 'blob' or 'files', not {raw!r}"


# The parser factories and the declaration helpers run at import, when `Settings` is
# declared; these call them again, so each is tested as it runs, not only through its
# results frozen at import.


def test_whole_accepts_its_minimum_and_refuses_one_under_and_what_is_not_a_whole_number():
    from batching.settings import whole

    parse = whole(3)
    assert parse("3") == 3
    assert parse("40") == 40
    with pytest.raises(ValueError) as info:
        parse("2")
    assert str(info.value) == "at least 3, not 2"
    with pytest.raises(ValueError) as info:
        parse("three")
    assert str(info.value) == "a whole number, not 'three'"


def test_choice_accepts_only_its_options_and_names_them_all_when_refusing():
    from batching.settings import choice

    parse = choice("reject", "skip")
    assert parse("reject") == "reject"
    assert parse("skip") == "skip"
    with pytest.raises(ValueError) as info:
        parse("Skip")
    assert str(info.value) == "'reject' or 'skip', not 'Skip'"


def test_declared_settings_are_listed_in_field_order_with_groups_inlined_and_read():
    from dataclasses import dataclass

    from batching.settings import _group, _read, _rows, _setting, whole

    @dataclass(frozen=True)
    class Inner:
        size: int = _setting("INNER_SIZE", "a size", "2", parse=whole(1))

    @dataclass(frozen=True)
    class Outer:
        name: str = _setting("OUTER_NAME", "a name", required=True)
        inner: Inner = _group(Inner)  # noqa: RUF009 (a field, as in batching/settings.py)
        key: str = _setting("OUTER_KEY", "a secret", secret=True)

    rows = _rows(Outer)
    assert [(r.name, r.help, r.default, r.required, r.secret) for r in rows] == [
        ("OUTER_NAME", "a name", None, True, False),
        ("INNER_SIZE", "a size", "2", False, False),
        ("OUTER_KEY", "a secret", None, False, True),
    ]
    assert rows[0].parse is None and rows[2].parse is None
    assert rows[1].parse is not None and rows[1].parse("5") == 5
    assert _read(Outer, {"OUTER_NAME": "n", "OUTER_KEY": "k"}) == Outer("n", Inner(2), "k")
    assert _read(Outer, {"OUTER_NAME": "n", "INNER_SIZE": "7"}) == Outer("n", Inner(7), None)
