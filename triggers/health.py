"""GET /api/health: 200 when storage and Azure OpenAI answer, 503 with the reason otherwise.

Anonymous, so the deep check behind it is cached (batching.service.health.CACHE_SECONDS): hits
do not turn into storage or Azure OpenAI calls. Other methods answer 405.
"""

from __future__ import annotations

import azure.durable_functions as df
import azure.functions as func
import orjson

from batching.service import health as checks

bp = df.Blueprint()


@bp.function_name("health")
@bp.route(route="health", auth_level=func.AuthLevel.ANONYMOUS)
def health(req: func.HttpRequest) -> func.HttpResponse:
    if (req.method or "").upper() != "GET":
        return func.HttpResponse(
            orjson.dumps({"error": "use GET", "code": "method_not_allowed"}),
            status_code=405,
            headers={"Allow": "GET"},
            mimetype="application/json",
        )
    healthy, details = checks.cached_check()
    return func.HttpResponse(
        orjson.dumps({"status": "healthy" if healthy else "unhealthy", **details}),
        status_code=200 if healthy else 503,
        mimetype="application/json",
        headers={"Cache-Control": "no-store"},
    )
