"""The admission ledger against Azurite: slots, token budgets, and the queue in order of arrival."""

from __future__ import annotations

import os

import pytest

from batching.service import admission
from batching.settings import Settings
from batching.storage.blobs import ensure_containers

T0 = "2026-01-01T12:00:00+00:00"


def at(seconds: int) -> str:
    return f"2026-01-01T12:00:{seconds:02d}+00:00"


@pytest.fixture
def settings(azurite) -> Settings:
    s = Settings.from_env(
        {
            "AZURE_OPENAI_ENDPOINT": "http://127.0.0.1:9",
            "BATCH_STORAGE": azurite.connection_string,
            "WORK_CONTAINER": f"adm{os.urandom(3).hex()}",
            "MAX_ACTIVE_BATCHES": "1",
        }
    )
    ensure_containers(s.storage, [s.work_container])
    return s


def admit(
    settings: Settings,
    key: str,
    arrived: str,
    tokens: int = 10,
    max_active: int = 1,
    max_tokens: int = 0,
) -> dict:
    return admission.admit(settings, key, "gpt-4o-batch", tokens, max_active, max_tokens, arrived)


def test_queue_is_ordered_by_arrival_not_by_first_call(settings):
    assert admit(settings, "first", at(0))["granted"] is True
    # "late" asks first (its small file validated sooner), "early" arrived before it
    assert admit(settings, "late", at(20)) == {"granted": False, "position": 1}
    assert admit(settings, "early", at(10)) == {"granted": False, "position": 1}
    assert admit(settings, "late", at(20)) == {"granted": False, "position": 2}
    admission.release(settings, "first")
    assert admit(settings, "late", at(20)) == {"granted": False, "position": 1}
    assert admit(settings, "early", at(10))["granted"] is True
    admission.release(settings, "early")
    assert admit(settings, "late", at(20))["granted"] is True


def test_same_arrival_keeps_call_order_and_repeats_are_idempotent(settings):
    assert admit(settings, "run/c0/r0", T0)["granted"] is True
    assert admit(settings, "run/c1/r0", T0)["position"] == 1
    assert admit(settings, "run/c2/r0", T0)["position"] == 2
    assert admit(settings, "run/c1/r0", T0)["position"] == 1  # asking again keeps the place
    assert admit(settings, "run/c0/r0", T0)["granted"] is True  # a re-run after a crash


def test_token_budget_counts_per_deployment(settings):
    assert admit(settings, "a", at(0), tokens=60, max_active=0, max_tokens=100)["granted"]
    assert not admit(settings, "b", at(1), tokens=60, max_active=0, max_tokens=100)["granted"]
    # a chunk larger than the whole budget still runs once it is alone
    admission.release(settings, "a")
    assert admit(settings, "b", at(1), tokens=60, max_active=0, max_tokens=100)["granted"]
    assert not admit(settings, "huge", at(2), tokens=500, max_active=0, max_tokens=100)["granted"]
    admission.release(settings, "b")
    assert admit(settings, "huge", at(2), tokens=500, max_active=0, max_tokens=100)["granted"]
