"""GET /api/dashboard: the runs page. Static HTML that calls the runs API; no build step.

The page itself holds no data, so it is anonymous; in Azure open it with `?code=<function key>`
and it passes the key on to the API calls it makes.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import azure.durable_functions as df
import azure.functions as func
import orjson

from batching.statuses import RUN_RETRYABLE

bp = df.Blueprint()


@functools.cache
def _page() -> bytes:
    """The page, served with the status lists it needs (declared once, in batching.statuses)."""
    html = (Path(__file__).parent / "dashboard.html").read_text()
    retryable = json.dumps(sorted(RUN_RETRYABLE))
    return html.replace("/*RUN_RETRYABLE*/[]", retryable).encode()


@bp.function_name("dashboard")
@bp.route(route="dashboard", auth_level=func.AuthLevel.ANONYMOUS)
def dashboard(req: func.HttpRequest) -> func.HttpResponse:
    if (req.method or "").upper() != "GET":  # the host would answer 404; 405 says what is wrong
        return func.HttpResponse(
            orjson.dumps({"error": "use GET", "code": "method_not_allowed"}),
            status_code=405,
            headers={"Allow": "GET"},
            mimetype="application/json",
        )
    return func.HttpResponse(_page(), mimetype="text/html", headers={"Cache-Control": "no-cache"})
