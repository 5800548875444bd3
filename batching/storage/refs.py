"""What names a blob and how its ETag is written: shared by the Blob and Data Lake clients."""

from __future__ import annotations

import os
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


def client_options() -> dict[str, Any]:
    """Options for every Azure SDK client: the transport reads no settings from the environment
    on each request unless a proxy is set there. Trusting the environment, `requests` scans all of
    it for proxies (and reads a .netrc, whose basic auth would replace the SDK's own header) on
    every request: about 8% of a worker's CPU. A CA bundle it would have taken from
    REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE is given to it here instead, once."""
    if any(name.lower().endswith("_proxy") for name in os.environ):
        return {}  # proxies and their exceptions, read per request as the SDK always did
    options: dict[str, Any] = {"use_env_settings": False}
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle:
        options["connection_verify"] = bundle
    return options


def quote_etag(etag: str) -> str:
    """Event Grid gives bare ETags, the SDK quoted ones; conditions need the quoted form."""
    bare = etag.strip('"')
    return f'"{bare}"'


def bare_etag(etag: str) -> str:
    return etag.strip('"')
