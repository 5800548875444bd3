"""What names a blob and how its ETag is written: shared by the Blob and Data Lake clients."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class BlobRef:
    """A blob by container and name; JSON-able through `to_dict`/`from_dict`."""

    container: str
    path: str

    def to_dict(self) -> dict[str, str]:
        return {"container": self.container, "path": self.path}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BlobRef:
        return cls(str(d["container"]), str(d["path"]))


def credential(client_id: str | None) -> Any:
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential(managed_identity_client_id=client_id)


def quote_etag(etag: str) -> str:
    """Event Grid gives bare ETags, the SDK quoted ones; conditions need the quoted form."""
    bare = etag.strip('"')
    return f'"{bare}"'


def bare_etag(etag: str) -> str:
    return etag.strip('"')
