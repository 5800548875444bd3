"""The toy app on a local host with a virtual clock: the fixtures of the host's own tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devstack.durable.clock import VirtualClock
from devstack.host.host import FunctionHost
from tests.support.toyapp import START, make_app, orchestrations


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock(START)


@pytest.fixture
def host(clock: VirtualClock) -> Iterator[FunctionHost]:
    """The toy app (tests/support/toyapp) on a fresh in-memory host; nothing runs until asked."""
    orchestrations.reset()
    with FunctionHost(make_app(), None, clock) as running:
        yield running
