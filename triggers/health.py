"""GET /api/health: 200 when storage and Azure OpenAI answer, 503 with the reason otherwise."""

from __future__ import annotations

import azure.durable_functions as df
import azure.functions as func
import orjson

from batching import health as checks

bp = df.Blueprint()


@bp.function_name("health")
@bp.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def health(req: func.HttpRequest) -> func.HttpResponse:
    healthy, details = checks.check()
    return func.HttpResponse(
        orjson.dumps({"status": "healthy" if healthy else "unhealthy", **details}),
        status_code=200 if healthy else 503,
        mimetype="application/json",
    )
