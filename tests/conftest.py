"""Shared fixtures: Azurite and the emulator on free loopback ports, stopped after use."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.storage.blob import BlobServiceClient
from hypothesis import HealthCheck, settings

from devstack import services

# Property tests of pure functions: "ci" (env CI set) runs 1,000 examples each, "dev" 200, and
# "mutation" (make mutation) a fixed, derandomized 100 so a mutant's verdict does not vary.
# HYPOTHESIS_PROFILE picks one by name. Tests that drive I/O set their own, smaller max_examples.
_PROFILE = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow]}
settings.register_profile("ci", max_examples=1000, **_PROFILE)
settings.register_profile("dev", max_examples=200, **_PROFILE)
settings.register_profile("mutation", max_examples=100, derandomize=True, **_PROFILE)
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev")
)


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[services.Azurite]:
    """One Azurite for the whole session; tests isolate themselves by container name."""
    with services.azurite(tmp_path_factory.mktemp("azurite")) as az:
        yield az


@pytest.fixture
def blob_service(azurite: services.Azurite) -> BlobServiceClient:
    return BlobServiceClient.from_connection_string(azurite.connection_string)


@pytest.fixture(scope="session")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[services.Emulator]:
    """A shared emulator (in-memory state, 2 s batches); tests reset its scenario as needed."""
    with services.emulator(
        None, batch_duration=2.0, log_path=tmp_path_factory.mktemp("emulator") / "emulator.log"
    ) as em:
        yield em


@pytest.fixture
def fresh_emulator(tmp_path: Path) -> Iterator[services.Emulator]:
    """An emulator of a test's own, for tests that need clean counters or a data dir."""
    with services.emulator(tmp_path / "emulator", batch_duration=1.0) as em:
        yield em
