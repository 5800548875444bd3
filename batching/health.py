"""Readiness: can the app reach its storage and Azure OpenAI right now?"""

from __future__ import annotations

from typing import Any

from batching import aoai, storage
from batching.settings import Settings, SettingsError


def check(settings_env: Any = None) -> tuple[bool, dict[str, Any]]:
    """(healthy, details): each dependency's state, with the reason when it is unreachable."""
    try:
        settings = Settings.from_env(settings_env)
    except SettingsError as e:
        return False, {"settings": f"invalid: {e}"}
    details: dict[str, Any] = {"settings": "ok"}
    try:
        service = storage.blob_service(settings.storage)
        service.get_container_client(settings.input_container).get_container_properties()
        details["storage"] = "ok"
    except Exception as e:
        details["storage"] = f"unreachable: {type(e).__name__}: {str(e).splitlines()[0][:200]}"
    try:
        aoai.client(settings).with_options(max_retries=0, timeout=10).batches.list(limit=1)
        details["azure_openai"] = "ok"
    except Exception as e:
        details["azure_openai"] = f"unreachable: {type(e).__name__}: {str(e).splitlines()[0][:200]}"
    healthy = all(v == "ok" for v in details.values())
    return healthy, details
