"""The local host enforces the real backends' limits (sources in devstack/durable/limits.py).

Each limit is tested at the boundary: the largest accepted value and the smallest refused one.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from batching.layout import run_id_for
from devstack.durable.engine import DurableError
from devstack.durable.limits import check_instance_id
from devstack.host.host import FunctionHost

# The extension fails when int(UTF-16 bytes / 1024) > 16: 17 KB = 17,408 bytes is the first
# refused size. `{"text":"…"}` adds 11 characters of JSON around the text.
STATUS_JSON_OVERHEAD = len('{"text":""}')
LAST_ACCEPTED_STATUS_CHARS = (17 * 1024) // 2 - 1 - STATUS_JSON_OVERHEAD
MIB = 1024 * 1024


def run(host: FunctionHost, name: str, payload: Any, instance_id: str | None = None) -> Any:
    iid = host.start_new(name, instance_id, payload)
    host.run_until_idle(timeout=30)
    status = host.get_status(iid)
    assert status is not None
    return status


def test_custom_status_at_16_kb_of_utf16_is_kept(host: FunctionHost) -> None:
    status = run(host, "with_status", "x" * LAST_ACCEPTED_STATUS_CHARS)
    assert status["runtimeStatus"] == "Completed"
    assert len(status["customStatus"]["text"]) == LAST_ACCEPTED_STATUS_CHARS


def test_custom_status_one_character_over_fails_the_orchestration(host: FunctionHost) -> None:
    status = run(host, "with_status", "x" * (LAST_ACCEPTED_STATUS_CHARS + 1))
    assert status["runtimeStatus"] == "Failed"
    assert (
        "The UTF-16 size of the JSON-serialized payload must not exceed 16 KB. "
        "The current payload size is 17 KB." in status["output"]
    )


def test_custom_status_counts_utf16_units_not_characters(host: FunctionHost) -> None:
    # An emoji is 2 UTF-16 units (4 bytes): half as many fit.
    status = run(host, "with_status", "😀" * (LAST_ACCEPTED_STATUS_CHARS // 2 + 8))
    assert status["runtimeStatus"] == "Failed"


def test_activity_input_up_to_one_mib_is_carried(host: FunctionHost) -> None:
    quoted = 2  # the JSON string's quotes
    assert run(host, "sends_text", MIB - quoted)["runtimeStatus"] == "Completed"


def test_activity_input_over_one_mib_fails_the_orchestration(host: FunctionHost) -> None:
    status = run(host, "sends_text", MIB - 1)
    assert status["runtimeStatus"] == "Failed"
    assert "input of activity 'text_length' is 1,048,577 bytes" in status["output"]
    assert host.activity_calls["text_length"] == 0


def test_activity_output_over_one_mib_fails_the_activity(host: FunctionHost) -> None:
    assert run(host, "receives_text", MIB - 2)["output"] == MIB - 2
    status = run(host, "receives_text", MIB - 1)
    assert status["runtimeStatus"] == "Failed"
    assert "output of activity 'make_text' is 1,048,577 bytes" in status["output"]


def test_orchestration_input_over_one_mib_is_refused_at_start(host: FunctionHost) -> None:
    with pytest.raises(DurableError, match="carries at most 1,048,576 bytes"):
        host.start_new("with_status", None, "x" * (MIB - 1))


@pytest.mark.parametrize(
    ("instance_id", "reason"),
    [
        ("a/b", "invalid characters"),
        ("a\\b", "invalid characters"),
        ("a#b", "invalid characters"),
        ("a?b", "invalid characters"),
        ("a\tb", "invalid characters"),
        ("a\x7fb", "invalid characters"),
        ("@entity", "must not start with @"),
        ("x" * 257, "between 1 and 256"),
    ],
)
def test_instance_ids_either_backend_refuses_are_refused(
    host: FunctionHost, instance_id: str, reason: str
) -> None:
    with pytest.raises(DurableError, match=reason):
        host.start_new("with_status", instance_id, "hi")


def test_the_longest_valid_instance_id_is_accepted(host: FunctionHost) -> None:
    iid = "r" * 256
    assert run(host, "with_status", "hi", instance_id=iid)["runtimeStatus"] == "Completed"


@given(
    container=st.text(min_size=1, max_size=63),
    path=st.text(min_size=1, max_size=1024),
    etag=st.text(max_size=40),
    attempt=st.integers(min_value=0, max_value=10**6),
)
def test_every_run_id_the_app_derives_is_a_valid_instance_id(
    container: str, path: str, etag: str, attempt: int
) -> None:
    check_instance_id(run_id_for(container, path, etag, attempt))
