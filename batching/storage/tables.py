"""The data account's table service: the runs table, which holds the runs index and the runs'
ledgers (`batching.ops.runindex`, `batching.service.ledger`)."""

from __future__ import annotations

import functools

from azure.core.exceptions import HttpResponseError, ResourceExistsError
from azure.data.tables import TableClient, TableServiceClient

from batching.settings import StorageConfig
from batching.storage.refs import client_options, credential


@functools.lru_cache(maxsize=8)
def _service(cfg: StorageConfig) -> TableServiceClient:
    if cfg.connection_string:
        return TableServiceClient.from_connection_string(cfg.connection_string, **client_options())
    assert cfg.table_service_uri, "settings guarantee one of the two"
    return TableServiceClient(
        cfg.table_service_uri, credential=credential(cfg.client_id), **client_options()
    )


@functools.lru_cache(maxsize=8)
def table(cfg: StorageConfig, name: str) -> TableClient:
    """The table, created on first use locally. In Azure, Bicep creates it and the app's role
    is scoped to the table, which does not allow creating tables: a 403 here is expected."""
    service = _service(cfg)
    try:
        service.create_table(name)
    except ResourceExistsError:
        pass
    except HttpResponseError as e:
        if e.status_code != 403:
            raise
    return service.get_table_client(name)
