"""Shared fixtures: Azurite and the emulator on free loopback ports, stopped after use."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.storage.blob import BlobServiceClient

from devstack import services


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
