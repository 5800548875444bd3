"""One run as an activity sees it: the settings, the run's id and input, and its layout.

An activity builds it once per invocation (`RunContext.of_request`) and hands it to the steps,
so the settings are read and the run's paths derived once, not again in every helper.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from batching.layout import RunLayout
from batching.settings import Settings
from batching.storage import blobs as storage
from batching.storage.refs import BlobRef

if TYPE_CHECKING:
    from azure.storage.blob import BlobClient

    from batching.requests import RunRequest


@dataclass(frozen=True)
class RunContext:
    settings: Settings
    run_id: str
    source: dict[str, Any]  # container, path, etag, size of the input blob
    layout: RunLayout

    @classmethod
    def of(cls, settings: Settings, run_id: str, source: dict[str, Any]) -> RunContext:
        return cls(settings, run_id, source, RunLayout.of(settings, source["path"], run_id))

    @classmethod
    def of_request(cls, request: RunRequest, settings: Settings | None = None) -> RunContext:
        """The context of an activity's request; the settings read from the environment."""
        return cls.of(settings or Settings.from_env(), request["run_id"], request["source"])

    def blob(self, ref: BlobRef) -> BlobClient:
        return storage.blob(self.settings.storage, ref)
