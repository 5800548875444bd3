"""Moves on accounts with a hierarchical namespace (ADLS Gen2) through the Data Lake API.

A rename there is one atomic metadata operation whatever the file's size, where the Blob API
would copy every byte. Azurite has no Data Lake endpoint; tests exercise this at the HTTP level.
"""

from __future__ import annotations

import posixpath
from typing import TYPE_CHECKING, Any

from azure.core import MatchConditions

from batching.settings import StorageConfig

if TYPE_CHECKING:
    from azure.storage.filedatalake import DataLakeServiceClient

    from batching.storage.refs import BlobRef


def dfs_uri(cfg: StorageConfig) -> str:
    """The account's dfs endpoint: the setting, or derived from the blob endpoint."""
    if cfg.dfs_service_uri:
        return cfg.dfs_service_uri
    if cfg.blob_service_uri:
        return cfg.blob_service_uri.replace(".blob.", ".dfs.")
    raise ValueError(
        "STORAGE_HIERARCHICAL_NAMESPACE is true but BATCH_STORAGE__dfsServiceUri is not set"
    )


def datalake_service(cfg: StorageConfig) -> DataLakeServiceClient:
    from azure.storage.filedatalake import DataLakeServiceClient

    from batching.storage import refs

    if cfg.connection_string and not cfg.dfs_service_uri:
        return DataLakeServiceClient.from_connection_string(
            cfg.connection_string, **refs.client_options()
        )

    credential: Any
    if cfg.connection_string:
        parts = dict(p.split("=", 1) for p in cfg.connection_string.split(";") if "=" in p)
        credential = {"account_name": parts["AccountName"], "account_key": parts["AccountKey"]}
    else:
        credential = refs.credential(cfg.client_id)
    return DataLakeServiceClient(dfs_uri(cfg), credential=credential, **refs.client_options())


def rename(cfg: StorageConfig, source: BlobRef, dest: BlobRef, etag: str | None) -> None:
    """Rename `source` to `dest` (across file systems of one account), creating its directory."""
    from batching.storage.refs import quote_etag

    service = datalake_service(cfg)
    parent = posixpath.dirname(dest.path)
    if parent:
        service.get_file_system_client(dest.container).get_directory_client(
            parent
        ).create_directory()
    kwargs: dict[str, Any] = {}
    if etag:
        kwargs.update(
            source_etag=quote_etag(etag), source_match_condition=MatchConditions.IfNotModified
        )
    file_client = service.get_file_system_client(source.container).get_file_client(source.path)
    file_client.rename_file(f"{dest.container}/{dest.path}", **kwargs)
