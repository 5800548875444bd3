"""The orchestration's pure decisions: backoff, polling intervals, final status."""

from __future__ import annotations

from orchestrators import policy

CONFIG = {
    "quota_retry_initial_seconds": 300,
    "quota_retry_max_seconds": 3600,
    "poll_initial_seconds": 60,
    "poll_max_seconds": 600,
}


def test_quota_backoff_grows_is_capped_and_jittered():
    waits = [policy.quota_backoff(CONFIG, a, "run/c0") for a in range(1, 8)]
    assert 225 <= waits[0] <= 375
    assert waits[3] > waits[0]
    assert all(w <= 3600 * 1.25 for w in waits)
    assert policy.quota_backoff(CONFIG, 2, "run/c0") == policy.quota_backoff(CONFIG, 2, "run/c0")
    assert len({policy.quota_backoff(CONFIG, 2, f"run{i}/c0") for i in range(20)}) > 5


def test_poll_interval_doubles_to_cap():
    seq, cur = [], 60
    for _ in range(6):
        cur = policy.next_poll_interval(CONFIG, cur)
        seq.append(cur)
    assert seq == [120, 240, 480, 600, 600, 600]


def test_final_status_prefers_failure_then_expiry():
    from batching.statuses import ChunkState
    from orchestrators.state import Chunk, final_status

    def ends(*statuses):
        return [Chunk(i, {}, 1, ChunkState.DONE, end=s) for i, s in enumerate(statuses)]

    assert final_status(ends("completed"), False) == "completed"
    assert final_status(ends("completed", "expired"), False) == "expired"
    assert final_status(ends("expired", "failed"), False) == "failed"
    assert final_status(ends("completed"), True) == "cancelled"
