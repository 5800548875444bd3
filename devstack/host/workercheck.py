"""Index a Function App with the real Python worker's code, as Azure does at start-up.

Runs under Python 3.13 in the worker venv (`make worker`), never inside the app's own venv:
`azure-functions-runtime` is the library the Functions host's Python 3.13+ worker loads, and
its checks are the ones that decide whether Azure serves the app. The steps are the worker's:

1. `bindings.meta.load_binding_registry()`;
2. `loader.index_function_app(<app>/function_app.py)`, which imports the module and asks the
   `FunctionRegister` for its functions;
3. `functions.Registry().add_indexed_function(...)` for each function: the binding, annotation
   and return checks that raise `FunctionLoadError` with the message the host shows.

`protos` is the gRPC module the proxy worker passes in; PyPI does not ship it, and the registry
reads only `BindingInfo`'s direction and data-type numbers from it, so those numbers (from the
worker protocol's `BindingInfo` enums) stand in for it.

Prints one JSON object: `{"functions": [names that loaded], "errors": [{"function", "message"}]}`
and exits 1 when any function is refused (or the app cannot be indexed at all), 0 otherwise.
This file imports nothing from the project: it is run by path with the worker's interpreter.
"""

from __future__ import annotations

import json
import os
import sys
import types
from typing import Any

# Run by path, Python puts this folder first on sys.path, where devstack's own `http` module
# would shadow the standard library's for the worker. The worker has no such folder.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

# BindingInfo.Direction and BindingInfo.DataType of the worker protocol (FunctionRpc.proto).
PROTOS = types.SimpleNamespace(
    BindingInfo=types.SimpleNamespace(
        **{"in": 0}, out=1, inout=2, undefined=0, string=1, binary=2, stream=3
    )
)


def index(app_dir: str, script: str = "function_app.py") -> dict[str, Any]:
    """The worker's verdict on the app in `app_dir`."""
    sys.path.insert(0, app_dir)
    os.chdir(app_dir)
    from azure_functions_runtime import functions, loader
    from azure_functions_runtime.bindings import meta

    meta.load_binding_registry()
    try:
        indexed = loader.index_function_app(os.path.join(app_dir, script))
    except Exception as exc:  # the host reports an indexing failure for the whole app
        return {"functions": [], "errors": [{"function": None, "message": _one_line(exc)}]}
    registry = functions.Registry()
    loaded: list[str] = []
    errors: list[dict[str, Any]] = []
    for fn in indexed:
        name = fn.get_function_name()
        try:
            registry.add_indexed_function(function=fn, protos=PROTOS)
        except functions.FunctionLoadError as exc:
            errors.append({"function": name, "message": str(exc)})
        else:
            loaded.append(name)
    return {"functions": loaded, "errors": errors}


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".splitlines()[0]


def main(argv: list[str]) -> int:
    app_dir = os.path.abspath(argv[1] if len(argv) > 1 else ".")
    verdict = index(app_dir)
    print(json.dumps(verdict))
    return 1 if verdict["errors"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
