"""Bring-your-own-storage batches: the service reads `input_blob` and writes `output_folder`.

The real service reaches the customer's storage account with its system-assigned managed identity.
The emulator reaches it with a connection string per account name (`--storage-connection-string`
or `POST /_emulator/storage`), so `https://ACCOUNT.blob.core.windows.net/c/p` and Azurite's
path-style `http://127.0.0.1:PORT/ACCOUNT/c/p` both resolve to the account `ACCOUNT`.
Whether that identity holds its roles is the scenario's `blob_access`.

Everything here is blocking (the Azure SDK's sync client): call it in a thread.
"""

from __future__ import annotations

import ipaddress
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from azure.core import MatchConditions
from azure.core.exceptions import AzureError, HttpResponseError, ResourceNotFoundError
from azure.storage.blob import BlobServiceClient

RESULTS_NAME, ERRORS_NAME = "results.jsonl", "errors.jsonl"


class BlobProblem(Exception):
    """A batch error of blob mode: `code` is the service's (`input_no_permissions`, ...)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class BlobUrl:
    """An account, a container and a path inside it (empty for a container's root)."""

    url: str
    account: str
    container: str
    path: str

    def child(self, *names: str) -> str:
        """The URL of `names` below this folder, in the same form as the given URL."""
        return "/".join([self.url.rstrip("/"), *names])


def _path_style(host: str) -> bool:
    """Azurite and other emulators put the account in the path: an IP address or localhost."""
    if host in ("localhost", "host.docker.internal") or "." not in host:
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def parse_url(url: str, *, folder: bool) -> BlobUrl:
    """Split a blob (or, with `folder`, a folder) URL; ValueError says what is wrong."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an https:// URL of Azure Blob Storage")
    if parts.query or parts.fragment:
        raise ValueError("must not have a query string (no SAS tokens: access is by identity)")
    segments = [unquote(s) for s in parts.path.split("/") if s]
    if _path_style(parts.hostname):
        if not segments:
            raise ValueError("names no storage account")
        account, segments = segments[0], segments[1:]
    else:
        account = parts.hostname.split(".")[0]
    if not segments:
        raise ValueError("names no container")
    container, path = segments[0], "/".join(segments[1:])
    if not folder and not path:
        raise ValueError("names a container, not a blob")
    return BlobUrl(url.rstrip("/") if folder else url, account.lower(), container, path)


def account_name(connection_string: str) -> str:
    """The `AccountName=` of a connection string (what URLs are matched against)."""
    if connection_string.replace(" ", "").lower().rstrip(";") == "usedevelopmentstorage=true":
        return "devstoreaccount1"  # Azurite's well-known account on 127.0.0.1:10000
    for part in connection_string.split(";"):
        key, sep, value = part.partition("=")
        if sep and key.strip().lower() == "accountname" and value.strip():
            return value.strip().lower()
    raise ValueError("the connection string has no AccountName")


class Storage:
    """The storage accounts the emulated service's identity can reach, by account name."""

    def __init__(self, connection_strings: tuple[str, ...] = ()) -> None:
        self.accounts: dict[str, str] = {}
        # One client per account, made on first use and kept: a client holds its connection
        # pool, so each call does not build a pipeline and open a connection again.
        self._clients: dict[str, BlobServiceClient] = {}
        self._lock = threading.Lock()
        for cs in connection_strings:
            self.add(cs)

    def add(self, connection_string: str) -> str:
        name = account_name(connection_string)
        self.accounts[name] = connection_string
        return name

    def describe(self) -> dict[str, list[str]]:
        return {"accounts": sorted(self.accounts)}

    def _client(self, where: BlobUrl) -> BlobServiceClient:
        cs = self.accounts.get(where.account)
        if cs is None:
            raise BlobProblem(
                "input_no_permissions",
                f"The service cannot reach storage account '{where.account}': no network path "
                "to it (the emulator has no connection string for this account).",
            )
        with self._lock:
            client = self._clients.get(cs)
            if client is None:
                # Loopback to Azurite: no proxy or .netrc to read from the environment, which
                # `requests` otherwise scans on every request.
                client = self._clients[cs] = BlobServiceClient.from_connection_string(
                    cs, use_env_settings=False
                )
        return client

    def etag(self, where: BlobUrl) -> str | None:
        """The input blob's ETag, or None when it cannot be read (the batch fails later)."""
        try:
            props = self._client(where).get_blob_client(where.container, where.path)
            return str(props.get_blob_properties().etag)
        except (BlobProblem, AzureError):
            return None

    def download(self, where: BlobUrl, etag: str | None, dest: Path) -> None:
        """Copy the input blob to `dest` if it is still the version seen at creation: one
        conditional read (If-Match), which answers 404 when it is gone and 412 when changed."""
        blob = self._client(where).get_blob_client(where.container, where.path)
        try:
            if etag is None:  # it could not be read at creation: find out why
                blob.get_blob_properties()
                raise _modified(where)
            with dest.open("wb") as f:
                blob.download_blob(
                    etag=etag, match_condition=MatchConditions.IfNotModified
                ).readinto(f)
        except ResourceNotFoundError:
            raise BlobProblem(
                "invalid_request", f"The input blob '{where.url}' does not exist."
            ) from None
        except HttpResponseError as exc:
            if exc.status_code == 412:
                raise _modified(where) from None
            raise _access_problem(where, exc) from None

    def check_reachable(self, where: BlobUrl) -> None:
        """Fail with `input_no_permissions` when the output folder's account is unknown."""
        self._client(where)

    def upload(self, where: BlobUrl, name: str, source: Path) -> None:
        blob = self._client(where).get_blob_client(
            where.container, "/".join(p for p in (where.path, name) if p)
        )
        with source.open("rb") as f:
            blob.upload_blob(f, overwrite=True)


def _modified(where: BlobUrl) -> BlobProblem:
    return BlobProblem(
        "input_modified", f"The input blob '{where.url}' was modified after the batch was created."
    )


def _access_problem(where: BlobUrl, exc: HttpResponseError) -> BlobProblem:
    return BlobProblem(
        "input_no_permissions",
        f"The service could not read '{where.url}' ({exc.status_code}): its managed identity "
        "needs read access on the input and read and write access on the output folder.",
    )
