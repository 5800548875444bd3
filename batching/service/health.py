"""Readiness: can the app reach its storage and Azure OpenAI right now?

The health route is anonymous, so its deep check is cached: within CACHE_SECONDS of the last
check every caller gets that answer and no upstream call is made. Concurrent callers after
expiry share one check (the others wait for it), so no rate of hits drives more than one
storage call and one Azure OpenAI call per CACHE_SECONDS.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from batching.service import aoai
from batching.settings import Settings, SettingsError
from batching.storage import blobs as storage

CACHE_SECONDS = 30.0
log = logging.getLogger("batching.health")

_lock = threading.Lock()
# The last check per configuration (what the environment's settings point at), once made.
_cached: dict[str, tuple[float, bool, dict[str, Any]]] = {}


def check(settings_env: Any = None) -> tuple[bool, dict[str, Any]]:
    """(healthy, details): each dependency's state, with the reason when it is unreachable."""
    try:
        settings = Settings.from_env(settings_env)
    except SettingsError:
        log.exception("health: settings are invalid")
        return False, {"settings": "invalid (the logs say which)"}
    details: dict[str, Any] = {"settings": "ok"}
    try:
        service = storage.blob_service(settings.storage)
        service.get_container_client(settings.input_container).get_container_properties()
        details["storage"] = "ok"
    except Exception as e:
        log.warning("health: storage unreachable", exc_info=True)
        details["storage"] = f"unreachable: {type(e).__name__}"
    try:
        aoai.client(settings).with_options(max_retries=0, timeout=10).batches.list(limit=1)
        details["azure_openai"] = "ok"
    except Exception as e:
        log.warning("health: Azure OpenAI unreachable", exc_info=True)
        details["azure_openai"] = f"unreachable: {type(e).__name__}"
    healthy = all(v == "ok" for v in details.values())
    return healthy, details


def cached_check(
    max_age: float = CACHE_SECONDS, clock: Callable[[], float] = time.monotonic
) -> tuple[bool, dict[str, Any]]:
    """check(), at most once per `max_age` seconds; details say how old it is."""
    try:
        key = repr(Settings.from_env())
    except SettingsError:
        key = ""  # check() says why
    with _lock:
        now = clock()
        last = _cached.get(key)
        if last is None or now - last[0] >= max_age:
            healthy, details = check()
            last = _cached[key] = (clock(), healthy, details)
            now = last[0]
        made, healthy, details = last
    return healthy, {**details, "checked_seconds_ago": round(now - made, 1)}
