"""The host's HTTP surface: HTTP functions, the Event Grid webhook and the Durable HTTP API.

Paths follow the Functions host, so a client (the Durable SDK, a watcher posting Event Grid events,
a test) works the same against `func start` and against this host:
- `/api/<route>`: HTTP-triggered functions (route templates with `{param}`, `{param?}`, `{*rest}`);
- `/runtime/webhooks/eventgrid?functionName=NAME`: Event Grid deliveries and the validation
  handshake;
- `/runtime/webhooks/durabletask/...` (public) and `/durabletask/...` (the binding's `rpcBaseUrl`):
  the Durable extension's HTTP API that `DurableOrchestrationClient` calls;
- `/admin/host/status` and `POST /admin/functions/{name}` as in `func`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import unquote

from azure.functions import meta
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse

from devstack.bindings import FunctionIndex, FunctionSpec, http_datum
from devstack.durable.engine import DurableError, Engine


class FunctionHost(Protocol):
    """What the HTTP surface needs of the host that serves it (devstack.host.host.FunctionHost)."""

    engine: Engine
    index: FunctionIndex
    log: logging.Logger
    route_prefix: str

    def management_urls(self, instance_id: str) -> dict[str, str]: ...
    def invoke_event_grid(self, function_name: str, event: dict[str, Any]) -> None: ...
    def event_grid_input(self, event: dict[str, Any]) -> meta.Datum: ...
    def fire_timer(self, function_name: str) -> None: ...
    async def call_async(self, spec: FunctionSpec, data: meta.Datum) -> meta.Datum | None: ...


_SEGMENT_PARAM = re.compile(r"\{(\*)?(\w+)(?::([^}?=]+))?(\?)?(?:=[^}]*)?\}")


@dataclass(frozen=True)
class Route:
    """An HTTP function's route template compiled to a regex."""

    spec: FunctionSpec
    pattern: re.Pattern[str]
    methods: frozenset[str]
    params: int

    @classmethod
    def of(cls, spec: FunctionSpec) -> Route:
        template = str(spec.trigger.get("route") or spec.name)
        regex, params = "", 0
        for segment in template.strip("/").split("/"):
            whole = _SEGMENT_PARAM.fullmatch(segment)
            if whole:
                star, name, constraint, optional = whole.groups()
                params += 1
                value = r"-?\d+" if constraint == "int" else "[^/]+"
                if star:
                    regex += f"(?:/(?P<{name}>.*))?"
                elif optional:
                    regex += f"(?:/(?P<{name}>{value}))?"
                else:
                    regex += f"/(?P<{name}>{value})"
                continue
            parts = re.split(r"(\{[^}]+\})", segment)
            regex += "/"
            for part in parts:
                inner = _SEGMENT_PARAM.fullmatch(part)
                if inner:
                    params += 1
                    regex += f"(?P<{inner.group(2)}>[^/]+?)"
                else:
                    regex += re.escape(part)
        methods = frozenset(str(m).upper() for m in spec.trigger.get("methods") or [])
        return cls(spec, re.compile(f"^{regex}/?$", re.IGNORECASE), methods, params)

    def match(self, path: str) -> dict[str, str] | None:
        found = self.pattern.match(path)
        if not found:
            return None
        return {k: unquote(v) for k, v in found.groupdict().items() if v is not None}


def _response(data: meta.Datum | None) -> Response:
    """Turn the `$return` Datum of an HTTP function into the HTTP response."""
    if data is None or data.value is None:
        return Response(status_code=204)
    if data.type != "http":
        return Response(str(data.value), media_type="text/plain; charset=utf-8")
    value = data.value
    response = Response(
        content=value["body"].value or b"",
        status_code=int(value["status_code"].value),
    )
    for name, header in value["headers"].items():
        response.headers[name] = str(header.value)
    for cookie in value.get("cookies") or []:
        response.headers.append("set-cookie", cookie.output(header="").strip())
    return response


def _time_arg(request: Request, name: str) -> datetime | None:
    text = request.query_params.get(name)
    if not text:
        return None
    when = datetime.fromisoformat(text)
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _statuses_arg(request: Request) -> list[str] | None:
    text = request.query_params.get("runtimeStatus")
    return [s.strip() for s in text.split(",") if s.strip()] if text else None


def _flag(request: Request, name: str, default: bool) -> bool:
    text = request.query_params.get(name)
    return default if text is None else text.lower() == "true"


def _error(exc: DurableError) -> Response:
    return JSONResponse({"Message": str(exc), "ExceptionMessage": str(exc)}, status_code=exc.status)


def durable_api(host: FunctionHost) -> APIRouter:
    """The Durable extension's HTTP API (the subset the Python client uses, plus purge)."""
    router = APIRouter()
    engine = host.engine

    @router.post("/orchestrators/{function_name}")
    @router.post("/orchestrators/{function_name}/{instance_id}")
    async def start(request: Request, function_name: str, instance_id: str = "") -> Response:
        body = (await request.body()).decode()
        if body:
            try:
                json.loads(body)
            except ValueError:
                return JSONResponse({"Message": "Invalid JSON content"}, status_code=400)
        try:
            iid = engine.start_new(function_name, instance_id or None, body or None)
        except DurableError as exc:
            return _error(exc)
        links = host.management_urls(iid)
        return JSONResponse(
            links, 202, {"Location": links["statusQueryGetUri"], "Retry-After": "10"}
        )

    @router.get("/instances")
    @router.get("/instances/")
    async def query(request: Request) -> Response:
        found = engine.query(
            _time_arg(request, "createdTimeFrom"),
            _time_arg(request, "createdTimeTo"),
            _statuses_arg(request),
            request.query_params.get("instanceIdPrefix"),
            _flag(request, "showInput", False),
        )
        start_at = int(request.headers.get("x-ms-continuation-token") or 0)
        top = int(request.query_params.get("top") or 0) or len(found)
        page = found[start_at : start_at + top]
        headers = {}
        if start_at + top < len(found):
            headers["x-ms-continuation-token"] = str(start_at + top)
        return JSONResponse(page, headers=headers)

    @router.delete("/instances")
    @router.delete("/instances/")
    async def purge_where(request: Request) -> Response:
        created_from = _time_arg(request, "createdTimeFrom")
        if created_from is None:
            return JSONResponse("Please provide value for 'createdTimeFrom' parameter.", 400)
        deleted = engine.purge_where(
            created_from, _time_arg(request, "createdTimeTo"), _statuses_arg(request)
        )
        if not deleted:
            return Response(status_code=404)
        return JSONResponse({"instancesDeleted": deleted})

    @router.get("/instances/{instance_id}")
    async def status(request: Request, instance_id: str) -> Response:
        payload = engine.status(
            instance_id,
            _flag(request, "showHistory", False),
            _flag(request, "showHistoryOutput", False),
            _flag(request, "showInput", True),
        )
        if payload is None:
            return Response(status_code=404)
        code = 200
        if payload["runtimeStatus"] in ("Running", "Pending", "ContinuedAsNew", "Suspended"):
            code = 202
        elif payload["runtimeStatus"] == "Failed" and _flag(
            request, "returnInternalServerErrorOnFailure", False
        ):
            code = 500
        headers = {"Retry-After": "5", "Location": str(request.url)} if code == 202 else {}
        return JSONResponse(payload, code, headers)

    @router.delete("/instances/{instance_id}")
    async def purge(instance_id: str) -> Response:
        try:
            return JSONResponse({"instancesDeleted": engine.purge(instance_id)})
        except DurableError as exc:
            return _error(exc) if exc.status != 404 else Response(status_code=404)

    @router.post("/instances/{instance_id}/raiseEvent/{event_name}")
    async def raise_event(request: Request, instance_id: str, event_name: str) -> Response:
        body = (await request.body()).decode()
        try:
            engine.raise_event(instance_id, event_name, body or None)
        except DurableError as exc:
            return Response(status_code=exc.status)
        return Response(status_code=202)

    @router.post("/instances/{instance_id}/{operation}")
    async def operate(request: Request, instance_id: str, operation: str) -> Response:
        if operation.lower() != "terminate":
            return JSONResponse(f"'{operation}' is not supported by the local host", 501)
        try:
            engine.terminate(instance_id, request.query_params.get("reason"))
        except DurableError as exc:
            return Response(status_code=exc.status)
        return Response(status_code=202)

    return router


def build_app(host: FunctionHost) -> FastAPI:
    """The one ASGI app the host serves."""
    app = FastAPI(title="devstack Functions host", docs_url=None, redoc_url=None, openapi_url=None)
    app.include_router(durable_api(host), prefix="/runtime/webhooks/durabletask")
    app.include_router(durable_api(host), prefix="/durabletask")
    routes = sorted(
        (Route.of(s) for s in host.index.of_type("httpTrigger")), key=lambda r: r.params
    )

    @app.get("/admin/host/status")
    async def host_status() -> dict[str, str]:
        return {"state": "Running"}

    @app.post("/admin/functions/{name}")
    async def run_function(request: Request, name: str) -> Response:
        body = await request.json() if await request.body() else {}
        spec = host.index.specs.get(name)
        if spec is None or spec.trigger_type not in ("timerTrigger", "eventGridTrigger"):
            return JSONResponse(f"no timer or Event Grid function named {name!r}", 404)
        if spec.trigger_type == "timerTrigger":
            await asyncio.to_thread(host.fire_timer, name)
        else:
            event = json.loads(body.get("input") or "{}")
            await asyncio.to_thread(host.invoke_event_grid, name, event)
        return Response(status_code=202)

    @app.options("/runtime/webhooks/eventgrid")
    async def cloud_events_handshake(request: Request) -> Response:
        origin = request.headers.get("webhook-request-origin", "*")
        return Response(headers={"WebHook-Allowed-Origin": origin, "Allow": "POST"})

    @app.post("/runtime/webhooks/eventgrid")
    async def event_grid(request: Request) -> Response:
        name = request.query_params.get("functionName", "")
        spec = host.index.get(name, "eventGridTrigger")
        if spec is None:
            return JSONResponse(f"cannot find function: '{name}'", 404)
        body = await request.json()
        events: list[dict[str, Any]] = body if isinstance(body, list) else [body]
        kind = request.headers.get("aeg-event-type", "Notification")
        if kind == "SubscriptionValidation":
            code = events[0].get("data", {}).get("validationCode")
            return JSONResponse({"validationResponse": code})
        if kind == "SubscriptionDeletion":
            return Response(status_code=202)
        try:
            for event in events:
                await host.call_async(spec, host.event_grid_input(event))
        except Exception:  # Event Grid retries deliveries that fail
            host.log.exception("Event Grid function %s failed", name)
            return Response(status_code=500)
        return Response(status_code=202)

    @app.api_route(
        f"{host.route_prefix}/{{path:path}}",
        methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"],
    )
    async def http_function(request: Request, path: str) -> Response:
        for route in routes:
            params = route.match("/" + path)
            if params is None:
                continue
            if route.methods and request.method not in route.methods:
                continue
            data = http_datum(
                request.method,
                str(request.url),
                dict(request.headers),
                dict(request.query_params),
                params,
                await request.body(),
            )
            try:
                result = await host.call_async(route.spec, data)
            except Exception:
                host.log.exception("HTTP function %s failed", route.spec.name)
                return Response(status_code=500)
            return _response(result)
        return Response(status_code=404)

    return app
