"""Run ids and paths: one orchestration per upload, folders mirroring the input's."""

from __future__ import annotations

from batching.layout import RunLayout, is_input, run_id_for
from batching.settings import Settings

SETTINGS = Settings.from_env(
    {"AZURE_OPENAI_ENDPOINT": "http://x", "BATCH_STORAGE": "UseDevelopmentStorage=true"}
)


def test_same_upload_same_id_new_upload_new_id():
    a = run_id_for("batch-input", "team/q1/data.jsonl", '"0x8DA1"')
    assert a == run_id_for("batch-input", "team/q1/data.jsonl", "0x8DA1")  # quoted or bare ETag
    assert a != run_id_for("batch-input", "team/q1/data.jsonl", "0x8DA2")
    assert a != run_id_for("batch-input", "team/q2/data.jsonl", "0x8DA1")
    assert a != run_id_for("batch-input", "team/q1/data.jsonl", "0x8DA1", attempt=1)
    assert a.startswith("data-") and len(a) <= 100
    assert "/" not in a


def test_id_is_safe_for_odd_names():
    rid = run_id_for("c", "x/Ünïcode name (1).JSONL", "e")
    assert rid.startswith("n-code-name-1-")
    assert run_id_for("c", "x/__.jsonl", "e").startswith("file-")


def test_only_jsonl_files_are_inputs():
    assert is_input("a/b/c.jsonl")
    assert is_input("C.JSONL")
    assert not is_input("a/b/c.json")
    assert not is_input("a/.hidden.jsonl")


def test_run_folder_mirrors_input_path():
    layout = RunLayout.of(SETTINGS, "team/q1/data.jsonl", "data-abc")
    assert layout.output("results.jsonl").path == "team/q1/data/data-abc/results.jsonl"
    assert layout.output("results.jsonl").container == "batch-output"
    assert layout.error("report.json").path == "team/q1/data/data-abc/report.json"
    assert layout.error("report.json").container == "batch-errors"
    assert layout.work("chunks/c0000.jsonl").path == "data-abc/chunks/c0000.jsonl"
    assert layout.source.container == "batch-input"
