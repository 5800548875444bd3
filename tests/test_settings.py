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
    s = Settings.from_env(
        {
            "AZURE_OPENAI_ENDPOINT": "https://x",
            "BATCH_STORAGE__blobServiceUri": "https://a.blob.core.windows.net",
            "AZURE_CLIENT_ID": "cid",
        }
    )
    assert s.storage.connection_string is None
    assert s.storage.client_id == "cid"


@pytest.mark.parametrize(
    ("name", "value", "match"),
    [
        ("POLL_INITIAL_SECONDS", "soon", "whole number"),
        ("POLL_MAX_SECONDS", "0", "at least 1"),
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

    values = json.loads((Path(__file__).parent.parent / "local.settings.json.example").read_text())[
        "Values"
    ]
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

    docs = (Path(__file__).parent.parent / "docs" / "configuration.md").read_text()
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
