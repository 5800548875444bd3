"""What tests ask the emulator to do next: batch outcomes, injected failures, seeded randomness."""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from emulator.errors import bad_request

Outcome = Literal["completed", "failed", "expired", "token_limit_fail_fast", "token_limit_failed"]
OUTCOMES: tuple[str, ...] = get_args(Outcome)
# What the service's managed identity may do in the customer's storage (blob mode).
BlobAccess = Literal["read_write", "read_only", "none"]
BLOB_ACCESS: tuple[str, ...] = get_args(BlobAccess)


def _rate(payload: dict[str, Any], key: str) -> float:
    value = payload[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise bad_request(f"{key} must be a number between 0 and 1", param=key)
    return float(value)


def _status(payload: dict[str, Any], key: str) -> int:
    value = payload[key]
    if isinstance(value, bool) or not isinstance(value, int) or not 400 <= value <= 599:
        raise bad_request(f"{key} must be an HTTP error status (400..599)", param=key)
    return value


def _seed(seed: Any) -> int | None:
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise bad_request("seed must be an integer or null", param="seed")
    return seed


def _blob_access(value: Any) -> BlobAccess:
    if value not in BLOB_ACCESS:
        raise bad_request(f"blob_access must be one of {list(BLOB_ACCESS)}", param="blob_access")
    access: BlobAccess = value
    return access


@dataclass
class Scenario:
    """Mutable test knobs; POST /_emulator/scenario sets the keys it names, reset clears all."""

    next_batches: deque[Outcome] = field(default_factory=deque)
    line_failure_rate: float = 0.0
    line_failure_status: int = 500
    api_failure_rate: float = 0.0
    api_failure_status: int = 429
    seed: int | None = None
    batch_duration: float | None = None
    blob_access: BlobAccess = "read_write"
    rng: random.Random = field(default_factory=random.Random)

    def update(self, payload: dict[str, Any]) -> None:
        """Validate everything first so a bad request changes nothing."""
        known = {
            "next_batches",
            "line_failure_rate",
            "line_failure_status",
            "api_failure_rate",
            "api_failure_status",
            "seed",
            "batch_duration",
            "blob_access",
        }
        unknown = set(payload) - known
        if unknown:
            raise bad_request(f"unknown scenario keys: {sorted(unknown)}")
        changes: dict[str, Any] = {}
        if "next_batches" in payload:
            outcomes = payload["next_batches"]
            if not isinstance(outcomes, list) or any(o not in OUTCOMES for o in outcomes):
                raise bad_request(f"next_batches must be a list of {list(OUTCOMES)}")
            changes["next_batches"] = deque(outcomes)
        for key in ("line_failure_rate", "api_failure_rate"):
            if key in payload:
                changes[key] = _rate(payload, key)
        for key in ("line_failure_status", "api_failure_status"):
            if key in payload:
                changes[key] = _status(payload, key)
        if "seed" in payload:
            changes["seed"] = seed = _seed(payload["seed"])
            changes["rng"] = random.Random(seed)  # noqa: S311 - repeatable tests, not security
        if "batch_duration" in payload:
            duration = payload["batch_duration"]
            if duration is not None and (
                isinstance(duration, bool) or not isinstance(duration, int | float) or duration <= 0
            ):
                raise bad_request("batch_duration must be a positive number of seconds or null")
            changes["batch_duration"] = None if duration is None else float(duration)
        if "blob_access" in payload:
            changes["blob_access"] = _blob_access(payload["blob_access"])
        for key, value in changes.items():
            setattr(self, key, value)

    def reset(self) -> None:
        fresh = Scenario()
        for key in fresh.__dataclass_fields__:
            setattr(self, key, getattr(fresh, key))

    def take_outcome(self) -> Outcome:
        return self.next_batches.popleft() if self.next_batches else "completed"

    def api_call_fails(self) -> bool:
        return self.api_failure_rate > 0 and self.rng.random() < self.api_failure_rate

    def batch_seed(self) -> int:
        """A per-batch seed: repeatable after POST {"seed": N}, so are line failures and order."""
        return self.rng.getrandbits(63)

    def describe(self) -> dict[str, Any]:
        return {
            "next_batches": list(self.next_batches),
            "line_failure_rate": self.line_failure_rate,
            "line_failure_status": self.line_failure_status,
            "api_failure_rate": self.api_failure_rate,
            "api_failure_status": self.api_failure_status,
            "seed": self.seed,
            "batch_duration": self.batch_duration,
            "blob_access": self.blob_access,
        }
