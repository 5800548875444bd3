"""Where batchctl talks to: the app's runs API and the storage account.

Defaults reach the local stack (`make run`); for Azure give the app's URL and function key, and
the storage account's blob URL (signed in with `az login` / DefaultAzureCredential).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported where used: `batchctl --help` and `validate` start without them
    from azure.storage.blob import BlobServiceClient

LOCAL_API = "http://127.0.0.1:7071/api"
LOCAL_STORAGE = "UseDevelopmentStorage=true"


class ApiError(Exception):
    """The runs API answered with an error; the message is its own."""


@dataclass(frozen=True)
class Target:
    api: str
    key: str | None
    storage_connection: str | None
    account_url: str | None
    input_container: str
    output_container: str

    @classmethod
    def from_args(cls, args: Any) -> Target:
        account_url = args.account_url or os.environ.get("BATCHCTL_ACCOUNT_URL")
        connection = args.storage_connection or os.environ.get("BATCHCTL_STORAGE")
        if not account_url and not connection:
            connection = LOCAL_STORAGE
        return cls(
            api=(args.api or os.environ.get("BATCHCTL_API") or LOCAL_API).rstrip("/"),
            key=args.key or os.environ.get("BATCHCTL_KEY"),
            storage_connection=connection,
            account_url=account_url,
            input_container=args.input_container,
            output_container=args.output_container,
        )

    def blobs(self) -> BlobServiceClient:
        from azure.storage.blob import BlobServiceClient

        if self.storage_connection:
            return BlobServiceClient.from_connection_string(self.storage_connection)
        from azure.identity import DefaultAzureCredential

        assert self.account_url
        return BlobServiceClient(self.account_url, credential=DefaultAzureCredential())

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """Call the runs API; raises ApiError with the API's own message on failure."""
        import httpx

        headers = {"x-functions-key": self.key} if self.key else {}
        try:
            response = httpx.request(
                method, f"{self.api}/{path}", headers=headers, timeout=60.0, **kwargs
            )
        except httpx.HTTPError as e:
            raise ApiError(f"cannot reach {self.api}: {e} (is `make run` running?)") from e
        if response.status_code >= 400:
            try:
                answer = response.json()
            except ValueError:
                answer = None
            error = answer.get("error") if isinstance(answer, dict) else None
            message = str(error) if error else response.text.strip()[:500] or response.reason_phrase
            code = answer.get("code") if isinstance(answer, dict) else None
            raise ApiError(f"{response.status_code}: {message}" + (f" ({code})" if code else ""))
        try:
            return response.json()
        except ValueError:
            raise ApiError(f"{self.api} did not answer JSON (is it the runs API?)") from None
