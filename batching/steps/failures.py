"""A run that fails on an unexpected error: its full detail, kept where operators look.

The runs API shows such a run's `error` as a code and a one-line reason only
(batching.ops.api.public_error). The detail (the exception text with its traceback, storage request
ids) goes to the logs and to the run folder's metadata.json, both under the run id.
"""

from __future__ import annotations

from typing import Any

import orjson
from azure.core.exceptions import ResourceNotFoundError

from batching.context import RunContext
from batching.ops.api import public_error
from batching.storage import blobs as storage


def record_failure(
    ctx: RunContext, detail: str, phase: str | None, failed_at: str
) -> dict[str, Any]:
    """Write (or complete) metadata.json with `status: error`, the public error and the detail."""
    run_id, source, layout = ctx.run_id, ctx.source, ctx.layout
    dest = layout.output("metadata.json")
    client = ctx.blob(dest)
    try:
        metadata: dict[str, Any] = orjson.loads(client.download_blob().readall())
    except (ResourceNotFoundError, orjson.JSONDecodeError):
        metadata = {
            "run_id": run_id,
            "source": f"{source.get('container')}/{source['path']}",
            "outputs": {"folder": layout.output_folder_url_path()},
        }
    metadata.update(
        {
            "status": "error",
            "error": public_error(detail),
            "error_detail": {"phase": phase, "failed_at": failed_at, "text": detail},
        }
    )
    storage.write_bytes(
        client, orjson.dumps(metadata, option=orjson.OPT_INDENT_2), "application/json"
    )
    return {"metadata": dest.to_dict()}
