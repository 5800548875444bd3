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


def _sha_fraction(text: str) -> float:
    """The first 32 bits of SHA-256, as a fraction of 2**32 (the documented jitter)."""
    import hashlib

    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big") / 2**32


def test_jitter_is_the_first_32_bits_of_sha256_as_a_fraction():
    for key in ("", "run/c0#1", "another run/c7#12"):
        assert policy.jitter(key) == _sha_fraction(key)
    assert 0 <= policy.jitter("x") < 1


def test_quota_backoff_by_hand():
    # attempt a waits initial * 2^(a-1), capped, times 0.75 + 0.5 * jitter("key#a"), whole s.
    for attempt, base in [(1, 300), (2, 600), (3, 1200), (4, 2400), (5, 3600), (9, 3600)]:
        factor = 0.75 + 0.5 * _sha_fraction(f"run/c0#{attempt}")
        assert policy.quota_backoff(CONFIG, attempt, "run/c0") == int(base * factor)
    # attempt 0 (never asked for, but harmless): the initial wait
    factor = 0.75 + 0.5 * _sha_fraction("run/c0#0")
    assert policy.quota_backoff(CONFIG, 0, "run/c0") == int(300 * factor)


def test_quota_backoff_waits_at_least_a_second():
    tiny = {**CONFIG, "quota_retry_initial_seconds": 1, "quota_retry_max_seconds": 1}
    # 1 s times a factor in [0.75, 1.25): 0 or 1 whole seconds, never under 1
    assert {policy.quota_backoff(tiny, 1, f"k{i}") for i in range(40)} == {1}


def test_poll_interval_starts_at_the_initial_wait_and_stays_at_the_cap():
    assert policy.next_poll_interval(CONFIG, 0) == 60
    assert policy.next_poll_interval(CONFIG, 29) == 60
    assert policy.next_poll_interval(CONFIG, 30) == 60
    assert policy.next_poll_interval(CONFIG, 31) == 62
    assert policy.next_poll_interval(CONFIG, 299) == 598
    assert policy.next_poll_interval(CONFIG, 300) == 600
    assert policy.next_poll_interval(CONFIG, 301) == 600
    assert policy.next_poll_interval({**CONFIG, "poll_max_seconds": "90"}, 60) == 90


def test_the_policy_reads_a_run_config_object_as_it_reads_its_json():
    """Orchestrators pass a RunConfig (attributes), tests above a mapping: both are read."""
    from batching.settings import RunConfig

    config = RunConfig.from_json(
        {
            "poll_initial_seconds": 45,
            "poll_max_seconds": 500,
            "polls_per_history": 20,
            "quota_retry_initial_seconds": 200,
            "quota_retry_max_seconds": 700,
            "quota_retry_attempts": 12,
            "max_active_batches": 0,
            "max_enqueued_tokens": 0,
            "admission_wait_seconds": 60,
            "resubmit_rounds": 2,
            "activity_retry_attempts": 5,
            "activity_retry_seconds": 5,
        }
    )
    assert policy.next_poll_interval(config, 10) == 45
    assert policy.next_poll_interval(config, 100) == 200
    assert policy.next_poll_interval(config, 300) == 500
    for attempt, base in [(1, 200), (2, 400), (3, 700)]:
        factor = 0.75 + 0.5 * _sha_fraction(f"run/c0#{attempt}")
        assert policy.quota_backoff(config, attempt, "run/c0") == int(base * factor)


def _typed(chunks):
    """Chunks as the orchestration holds them (orchestrators.state.Chunk), from their JSON."""
    from orchestrators.state import Chunk

    return [
        Chunk.from_json({"index": i, "input": {}, "requests": 1, "state": "done", **c})
        for i, c in enumerate(chunks)
    ]


def test_final_status_of_each_ending():
    from orchestrators.state import final_status

    def chunks(*ends):
        return _typed([{"end": e} for e in ends])

    assert final_status(chunks("cancelled", "completed"), False) == "cancelled"
    assert final_status(chunks("cancelled", "expired"), False) == "expired"
    assert final_status(chunks("failed", "cancelled", "expired"), False) == "failed"
    assert final_status(chunks("failed"), True) == "cancelled"
    assert final_status(_typed([{}]), False) == "completed"
    assert final_status([], False) == "completed"


def test_request_counts_by_hand():
    from orchestrators.state import request_counts

    chunks = [
        {
            "state": "done",
            "succeeded": 5,
            "failed": 1,
            "batch": {"request_counts": {"completed": 9}},
        },
        {
            "state": "running",
            "succeeded": 2,
            "failed": 3,
            "batch": {"request_counts": {"completed": 4}},
        },
        {"state": "running", "succeeded": 0, "failed": 0, "batch": {"request_counts": None}},
        {"state": "running", "succeeded": 0, "failed": 0, "batch": None},
        {
            "state": "running",
            "succeeded": 1,
            "failed": 0,
            "batch": {"request_counts": {"completed": None}},
        },
        {"state": "admission", "succeeded": 0, "failed": 0},
    ]
    # succeeded: 5 + 2 + 1 finished, plus 4 live in the running batch; failed: 1 + 3
    assert request_counts(30, _typed(chunks)) == {
        "total": 30,
        "succeeded": 12,
        "failed": 4,
        "pending": 14,
    }


def test_request_counts_pending_never_goes_negative():
    from orchestrators.state import request_counts

    chunks = [
        {
            "state": "running",
            "succeeded": 3,
            "failed": 0,
            "batch": {"request_counts": {"completed": "2"}},
        }
    ]
    assert request_counts(5, _typed(chunks)) == {
        "total": 5,
        "succeeded": 5,
        "failed": 0,
        "pending": 0,
    }
    assert request_counts(4, _typed(chunks))["pending"] == 0
    assert request_counts(6, _typed(chunks))["pending"] == 1
