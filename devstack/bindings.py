"""Indexing the app's functions and calling them the way the Python worker does.

The worker looks up each binding's converter in `azure.functions`' registry, decodes the host's
`Datum` into the argument (`HttpRequest`, `EventGridEvent`, the orchestration context ...), calls
the function (async ones on one shared event loop, sync ones on a thread pool) and encodes the
return value with the output converter. Doing the same here keeps argument and result shapes
exactly what a deployed app sees.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import uuid
import weakref
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Protocol

import azure.functions as func
from azure.functions import meta

_SUPPORTED_TRIGGERS = frozenset(
    {"httpTrigger", "orchestrationTrigger", "activityTrigger", "eventGridTrigger", "timerTrigger"}
)

# `app.get_functions()` may run only once per app object (a second call reports duplicate names).
_INDEXED: weakref.WeakKeyDictionary[Any, list[func.Function]] = weakref.WeakKeyDictionary()
_INDEX_LOCK = threading.Lock()


def functions_of(app: Any) -> list[func.Function]:
    """The app's `Function` objects, indexed once per app object."""
    with _INDEX_LOCK:
        if app not in _INDEXED:
            _INDEXED[app] = app.get_functions()
        return _INDEXED[app]


# The kind of `FunctionFailed` for an invocation whose worker process exited while it ran.
WORKER_EXITED = "WorkerProcessExited"


class FunctionFailed(Exception):
    """A function's exception from another process (a worker): its type's name, its text (the
    exception's own str, which the durable SDK's out-of-process data rides in) and its
    traceback, formatted there."""

    def __init__(self, kind: str, text: str, app_traceback: str) -> None:
        super().__init__(text)
        self.kind = kind
        self.app_traceback = app_traceback


class Caller(Protocol):
    """What runs a function: `Invoker` in this process, `WorkerPool` in worker processes."""

    def call(self, spec: FunctionSpec, trigger_data: meta.Datum) -> meta.Datum | None: ...


def exception_kind(exc: BaseException) -> str:
    """The name of the exception's type, as the function raised it."""
    return exc.kind if isinstance(exc, FunctionFailed) else type(exc).__name__


@dataclass(frozen=True)
class FunctionSpec:
    """What the host needs to know to call one function."""

    name: str
    fn: Callable[..., Any]
    trigger_type: str
    trigger_param: str
    trigger: dict[str, Any]
    client_param: str | None = None
    return_type: str | None = None  # type of the `$return` output binding, if any
    unsupported: tuple[str, ...] = ()
    wants_context: bool = False

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.fn)


def _spec(function: func.Function) -> FunctionSpec:
    trigger = function.get_trigger()
    assert trigger is not None
    trigger_dict = {k: getattr(v, "value", v) for k, v in trigger.get_dict_repr().items()}
    client_param = None
    return_type = None
    unsupported: list[str] = []
    for binding in function.get_bindings():
        info = binding.get_dict_repr()
        if binding is trigger:
            continue
        if info["type"] == "durableClient":
            client_param = info["name"]
        elif info["name"] == "$return":
            return_type = info["type"]
        else:
            unsupported.append(f"{info['type']} ({info['name']})")
    fn = function.get_user_function()
    params = inspect.signature(fn).parameters
    wants_context = "context" in params and trigger.name != "context"
    return FunctionSpec(
        name=function.get_function_name() or fn.__name__,
        fn=fn,
        trigger_type=trigger.get_binding_name(),
        trigger_param=trigger.name,
        trigger=trigger_dict,
        client_param=client_param,
        return_type=return_type,
        unsupported=tuple(unsupported),
        wants_context=wants_context,
    )


class FunctionIndex:
    """The app's functions by name and by trigger type."""

    def __init__(self, app: Any) -> None:
        self.specs = {spec.name: spec for spec in map(_spec, functions_of(app))}

    def get(self, name: str, trigger_type: str) -> FunctionSpec | None:
        spec = self.specs.get(name)
        if spec is None or spec.trigger_type != trigger_type:
            return None
        return spec

    def of_type(self, trigger_type: str) -> list[FunctionSpec]:
        return [s for s in self.specs.values() if s.trigger_type == trigger_type]

    def problems(self) -> list[str]:
        """Bindings this host cannot provide, one line per function."""
        lines = [
            f"{s.name}: unsupported trigger {s.trigger_type}"
            for s in self.specs.values()
            if s.trigger_type not in _SUPPORTED_TRIGGERS
        ]
        lines += [
            f"{s.name}: unsupported bindings {', '.join(s.unsupported)}"
            for s in self.specs.values()
            if s.unsupported
        ]
        return lines


class _InvocationContext(func.Context):
    """The `context` argument the worker passes to functions that declare one."""

    def __init__(self, function_name: str) -> None:
        self._invocation_id = str(uuid.uuid4())
        self._function_name = function_name

    @property
    def invocation_id(self) -> str:
        return self._invocation_id

    @property
    def thread_local_storage(self) -> type[threading.local]:
        return threading.local

    @property
    def function_name(self) -> str:
        return self._function_name

    @property
    def function_directory(self) -> str:
        return "."

    @property
    def trace_context(self) -> Any:
        return None

    @property
    def retry_context(self) -> Any:
        return None


class AsyncLoop:
    """One event loop thread for all async functions of the process, as in the worker.

    The Durable client keeps a module-level aiohttp session bound to the loop that first used it,
    so every coroutine of every app in this process runs on this one loop; it lives as long as
    the process (a daemon thread), like the worker's.
    """

    _shared: AsyncLoop | None = None
    _lock = threading.Lock()

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        thread = threading.Thread(target=self.loop.run_forever, name="devstack-async", daemon=True)
        thread.start()

    @classmethod
    def shared(cls) -> AsyncLoop:
        with cls._lock:
            if cls._shared is None:
                cls._shared = cls()
            return cls._shared

    def submit(self, coroutine: Any) -> Future[Any]:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)


@dataclass
class Invoker:
    """Calls functions with converter-shaped arguments and returns the encoded result."""

    client_binding: Callable[[], str]
    registry: Any = field(default_factory=meta.get_binding_registry)

    def prepare(self, spec: FunctionSpec, trigger_data: meta.Datum) -> dict[str, Any]:
        """Decode the trigger `Datum` and the other inputs into keyword arguments."""
        if spec.unsupported:
            raise NotImplementedError(
                f"function {spec.name!r} uses bindings the local host does not provide: "
                f"{', '.join(spec.unsupported)}"
            )
        converter = self.registry.get(spec.trigger_type)
        kwargs = {spec.trigger_param: converter.decode(trigger_data, trigger_metadata={})}
        if spec.client_param:
            client = self.registry.get("durableClient")
            kwargs[spec.client_param] = client.decode(
                meta.Datum(self.client_binding(), "string"), trigger_metadata={}
            )
        if spec.wants_context:
            kwargs["context"] = _InvocationContext(spec.name)
        return kwargs

    def encode(self, spec: FunctionSpec, result: Any) -> meta.Datum | None:
        """Encode a return value with the `$return` (or the trigger's implicit) converter."""
        if spec.return_type is not None:
            return self.registry.get(spec.return_type).encode(result, expected_type=None)  # type: ignore[no-any-return]
        converter = self.registry.get(spec.trigger_type)
        if converter.has_implicit_output():
            return converter.encode(result, expected_type=None)  # type: ignore[no-any-return]
        return None

    def call(self, spec: FunctionSpec, trigger_data: meta.Datum) -> meta.Datum | None:
        """Run a function to completion on the calling thread (async ones on the shared loop)."""
        kwargs = self.prepare(spec, trigger_data)
        if spec.is_async:
            result = AsyncLoop.shared().submit(spec.fn(**kwargs)).result()
        else:
            result = spec.fn(**kwargs)
        return self.encode(spec, result)


def http_datum(
    method: str,
    url: str,
    headers: Mapping[str, str],
    query: Mapping[str, str],
    route_params: Mapping[str, str],
    body: bytes,
) -> meta.Datum:
    """The `http` Datum the worker builds from the host's RpcHttp message."""

    def strings(values: Mapping[str, str]) -> dict[str, meta.Datum]:
        return {k: meta.Datum(v, "string") for k, v in values.items()}

    return meta.Datum(
        {
            "method": meta.Datum(method, "string"),
            "url": meta.Datum(url, "string"),
            "headers": strings(headers),
            "query": strings(query),
            "params": strings(route_params),
            "body": meta.Datum(body, "bytes"),
        },
        "http",
    )
