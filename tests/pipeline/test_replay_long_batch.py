"""A batch that runs 24 hours, replayed on the host's virtual clock in seconds of wall time.

The emulator's clock is moved with the host's, so the batch really takes a virtual day. The
test pins down how many status checks that costs, that the orchestration's history stays
bounded (continue-as-new), and that completion is noticed within the interval cap.
"""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from devstack.durable.clock import VirtualClock
from tests.support.stack import local_stack, requests_file

DAY = 24 * 3600
CONFIG = {"poll_initial_seconds": 60, "poll_max_seconds": 600}


# Polling from 60 s, doubling to the 600 s cap: checks at 60, 180, 420, 900 s, then every 600 s,
# the n-th (n >= 4) at 900 + 600 (n - 4) s. The first at or after DAY = 86,400 s is n = 147
# (900 + 600 * 143 = 86,700 s): 147 checks, the end seen 300 s after it happened.
CHECKS_FOR_A_DAY = 147


@pytest.fixture
def day_stack(azurite, tmp_path):
    clock = VirtualClock(datetime.now(UTC))
    env = {"POLL_INITIAL_SECONDS": "60", "POLL_MAX_SECONDS": "600", "POLLS_PER_HISTORY": "20"}
    with local_stack(azurite, tmp_path, extra_env=env, clock=clock) as stack:
        stack.scenario(batch_duration=DAY)
        yield stack


def test_a_day_long_batch_is_watched_cheaply_and_noticed_promptly(day_stack):
    stack = day_stack
    stack.drop("long/day.jsonl", requests_file(25))
    (run_id,) = [r["instanceId"] for r in stack.runs()]
    longest_history = 0
    for _ in range(100):  # each step: at most 2 virtual hours
        stack.host.run_until_idle(timeout=120, max_virtual_seconds=2 * 3600)
        longest_history = max(longest_history, len(stack.host.history(run_id)))
        if stack.host.get_status(run_id)["runtimeStatus"] in ("Completed", "Failed"):
            break
    status = stack.host.get_status(run_id)
    assert status["runtimeStatus"] == "Completed", status
    output = (
        status["output"] if isinstance(status["output"], dict) else orjson.loads(status["output"])
    )
    assert output["status"] == "completed"

    calls = stack.host.activity_calls
    assert abs(calls["check_batch"] - CHECKS_FOR_A_DAY) <= 2, calls
    # Bounded history: with continue-as-new every 20 ticks, never more than a few hundred events,
    # although ~150 checks with their timers would be over 600 events in one history.
    assert longest_history <= 250, longest_history

    folder = f"long/day/{run_id}"
    meta = orjson.loads(stack.read("output", f"{folder}/metadata.json"))
    (batch,) = meta["batches"]
    finished = datetime.fromisoformat(meta["timestamps"]["finished"]).timestamp()
    # The batch completed DAY seconds after it was created; the run noticed it within the cap.
    created = _batch_created_at(stack, batch["id"])
    assert DAY <= finished - created <= DAY + CONFIG["poll_max_seconds"] + 30, finished - created


def _batch_created_at(stack, batch_id: str) -> float:
    from openai import AzureOpenAI

    client = AzureOpenAI(
        azure_endpoint=stack.emulator.endpoint, api_key="test-key", api_version="2024-10-21"
    )
    return float(client.batches.retrieve(batch_id).created_at)
