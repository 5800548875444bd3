"""A small evaluator of Bicep, for the offline infra checks (tests/infra/): no compiler, no Azure.

Every Bicep file is parsed with pycep-parser (which rejects syntax errors); these helpers walk the
parsed structure: resources, role assignments and their scopes, module wiring and app settings.

pycep's JSON, in short: a resource is {"type", "api_version", "existing", "config"}; a conditional
or looped resource wraps its body as config = {"condition"/"loop_type", "config": body}; a
reference to a parameter, variable or resource is a bare string (so is a string literal: the
helpers resolve names against the file's parameters and variables); expressions are
{"operator": {"type", "operands"}} or {"function": {"type", "parameters"}}; quoted object keys
keep their quotes.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

from pycep import BicepParser

from batching.settings import SETTINGS

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
MAIN = INFRA / "main.bicep"
SUBSCRIPTION_TEMPLATE = INFRA / "eventgrid-subscription.bicep"

# The Event Grid trigger in function_app.py that BlobCreated events are delivered to.
FUNCTION_NAME = "on_blob_created"

# Built-in role definition ids (identical in every tenant), checked against Microsoft samples.
BLOB_DATA_CONTRIBUTOR = "ba92f5b4-2d11-453d-a403-e96b0029c9fe"
BLOB_DATA_READER = "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1"
QUEUE_DATA_CONTRIBUTOR = "974c5e8b-45b9-4653-ba55-5f855dd0fb88"
TABLE_DATA_CONTRIBUTOR = "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3"
OPENAI_USER = "5e0bd9bd-7b93-4f28-af87-19fc36ad61bd"
METRICS_PUBLISHER = "3913510d-42f4-4e42-8a64-420c390055eb"
DURABLE_TASK_DATA_CONTRIBUTOR = "0ad04412-c4d5-4796-b79c-f76d14c8d402"
KNOWN_ROLES = {
    BLOB_DATA_CONTRIBUTOR: "Storage Blob Data Contributor",
    BLOB_DATA_READER: "Storage Blob Data Reader",
    QUEUE_DATA_CONTRIBUTOR: "Storage Queue Data Contributor",
    TABLE_DATA_CONTRIBUTOR: "Storage Table Data Contributor",
    OPENAI_USER: "Cognitive Services OpenAI User",
    METRICS_PUBLISHER: "Monitoring Metrics Publisher",
    DURABLE_TASK_DATA_CONTRIBUTOR: "Durable Task Data Contributor",
}

STORAGE = "Microsoft.Storage/storageAccounts"
CONTAINER = "Microsoft.Storage/storageAccounts/blobServices/containers"
TABLE = "Microsoft.Storage/storageAccounts/tableServices/tables"
ROLE_ASSIGNMENT = "Microsoft.Authorization/roleAssignments"

# Settings the Functions host reads itself; any other app setting must be a `SETTINGS` name.
HOST_SETTINGS = {
    "AzureWebJobsStorage__blobServiceUri",
    "AzureWebJobsStorage__queueServiceUri",
    "AzureWebJobsStorage__tableServiceUri",
    "AzureWebJobsStorage__credential",
    "AzureWebJobsStorage__clientId",
    "APPLICATIONINSIGHTS_CONNECTION_STRING",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
}
# Host settings of the Durable Task Scheduler backend only (tests/test_infra_scale.py).
DTS_SETTINGS = {
    "DURABLE_TASK_SCHEDULER_CONNECTION_STRING",
    "AzureFunctionsJobHost__extensions__durableTask__storageProvider__type",
    "AzureFunctionsJobHost__extensions__durableTask__storageProvider__connectionStringName",
    "AzureFunctionsJobHost__extensionBundle__id",
    "AzureFunctionsJobHost__extensionBundle__version",
}
# Key-based or Flex-incompatible settings that must never be written.
FORBIDDEN_SETTINGS = {
    "AzureWebJobsStorage",
    "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
    "WEBSITE_CONTENTSHARE",
    "APPINSIGHTS_INSTRUMENTATIONKEY",
    "FUNCTIONS_WORKER_RUNTIME",
    "FUNCTIONS_EXTENSION_VERSION",
}
DEFAULTS = {s.name: s.default for s in SETTINGS}


# ---------------------------------------------------------------------------------------------
# Helpers over pycep's structure
# ---------------------------------------------------------------------------------------------


def bicep_files() -> list[Path]:
    return sorted(INFRA.rglob("*.bicep"))


@functools.cache
def parsed(path: Path) -> dict[str, Any]:
    return BicepParser().parse(text=path.read_text(encoding="utf-8"))


def module_file(rel: str) -> Path:
    return INFRA / rel


def unquote(key: str) -> str:
    return key[1:-1] if len(key) >= 2 and key[0] == key[-1] == "'" else key


def body(entry: dict[str, Any]) -> dict[str, Any]:
    """The declared body of a resource or module, unwrapping `if (...)` and `for ... in`."""
    cfg = entry["config"]
    while isinstance(cfg, dict) and "config" in cfg and ("condition" in cfg or "loop_type" in cfg):
        cfg = cfg["config"]
    return cfg


def condition(entry: dict[str, Any]) -> Any:
    cfg = entry["config"]
    return cfg.get("condition") if isinstance(cfg, dict) else None


def get(obj: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key, obj.get(f"'{key}'"))
    return obj


def resources(doc: dict[str, Any], rtype: str, *, existing: bool = False) -> dict[str, Any]:
    return {
        sym: res
        for sym, res in doc.get("resources", {}).items()
        if res["type"] == rtype and res["existing"] is existing
    }


def all_resources(*, existing: bool = False) -> list[tuple[Path, str, dict[str, Any]]]:
    return [
        (path, sym, res)
        for path in bicep_files()
        for sym, res in parsed(path).get("resources", {}).items()
        if res["existing"] is existing
    ]


def only(mapping: dict[str, Any]) -> tuple[str, Any]:
    assert len(mapping) == 1, f"expected exactly one, got {sorted(mapping)}"
    return next(iter(mapping.items()))


def value(doc: dict[str, Any], expr: Any) -> Any:
    """Resolve a bare name to its parameter default or variable value, `var.key` on object vars."""
    for _ in range(20):
        if isinstance(expr, str):
            if expr in doc.get("parameters", {}) and doc["parameters"][expr]["default"] is not None:
                expr = doc["parameters"][expr]["default"]
                continue
            if expr in doc.get("variables", {}):
                expr = doc["variables"][expr]["value"]
                continue
            return expr
        op = get(expr, "operator")
        if op and op["type"] == "property_accessor":
            base, key = op["operands"]["operand_1"], op["operands"]["operand_2"]
            if isinstance(base, str) and isinstance(key, str):
                resolved = value(doc, base)
                if isinstance(resolved, dict) and key in resolved:
                    expr = resolved[key]
                    continue
        return expr
    raise AssertionError(f"reference cycle at {expr!r}")


def interpolate(doc: dict[str, Any], text: str) -> str:
    """Replace `${name}` with the parameter default / variable value when it is a plain value."""

    def sub(m: re.Match[str]) -> str:
        resolved = value(doc, m.group(1))
        if resolved == m.group(1) or not isinstance(resolved, str | int):
            return m.group(0)  # a parameter without default, a resource or an expression
        return str(resolved)

    return re.sub(r"\$\{(\w+)\}", sub, text)


def role_guid(doc: dict[str, Any], role_definition_id: Any) -> str:
    fn = get(role_definition_id, "function")
    assert fn and fn["type"] == "subscription_resource_id", role_definition_id
    assert fn["parameters"]["resource_type"] == "Microsoft.Authorization/roleDefinitions"
    guid = value(doc, fn["parameters"]["resource_name_1"])
    assert isinstance(guid, str)
    return guid


def role_assignments(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Each assignment: role GUID, principal expression, scoped resource type and name."""
    found = []
    for sym, res in resources(doc, ROLE_ASSIGNMENT).items():
        b = body(res)
        scope = b["scope"]
        assert isinstance(scope, str), f"{sym}: scope must be a resource symbol"
        target = doc["resources"][scope]
        found.append(
            {
                "symbol": sym,
                "role": role_guid(doc, get(b, "properties", "roleDefinitionId")),
                "principal": get(b, "properties", "principalId"),
                "principalType": get(b, "properties", "principalType"),
                "scopeType": target["type"],
                "scopeName": body(target)["name"],
                "scopeParent": body(target).get("parent"),
                "condition": condition(res),
                "name": b["name"],
            }
        )
    return found


def module_calls(doc: dict[str, Any], rel_suffix: str) -> dict[str, dict[str, Any]]:
    return {
        sym: mod
        for sym, mod in doc.get("modules", {}).items()
        if mod["detail"]["path"].replace("./", "").endswith(rel_suffix)
    }


def module_params(doc: dict[str, Any], rel_suffix: str) -> dict[str, Any]:
    _, mod = only(module_calls(doc, rel_suffix))
    return body(mod)["params"]


def is_module_output(expr: Any, module: str, output: str) -> bool:
    op = get(expr, "operator")
    if not op or op["type"] != "property_accessor" or op["operands"]["operand_1"] != module:
        return False
    inner = get(op["operands"]["operand_2"], "operator")
    return bool(
        inner
        and inner["operands"]["operand_1"] == "outputs"
        and inner["operands"]["operand_2"] == output
    )


def setting_exprs(
    doc: dict[str, Any], expr: Any, caller: tuple[dict[str, Any], dict[str, Any]] | None = None
) -> dict[str, list[Any]]:
    """Every app setting name an app-settings expression can produce, with its value expressions.

    Follows variables, `union(...)`, both branches of `cond ? a : b`, and module parameters back
    to the caller's arguments (caller = (calling document, the module call's params)).
    """
    out: dict[str, list[Any]] = {}

    def merge(more: dict[str, list[Any]]) -> None:
        for k, v in more.items():
            out.setdefault(k, []).extend(v)

    if isinstance(expr, str):
        if expr in doc.get("variables", {}):
            merge(setting_exprs(doc, doc["variables"][expr]["value"], caller))
        elif expr in doc.get("parameters", {}) and caller and expr in caller[1]:
            merge(setting_exprs(caller[0], caller[1][expr]))
        return out
    if isinstance(expr, dict) and "function" in expr:
        fn = expr["function"]
        assert fn["type"] == "union", f"unexpected function in app settings: {fn['type']}"
        for arg in fn["parameters"].values():
            merge(setting_exprs(doc, arg, caller))
        return out
    if isinstance(expr, dict) and "operator" in expr:
        op = expr["operator"]
        assert op["type"] == "conditional", f"unexpected operator in app settings: {op['type']}"
        merge(setting_exprs(doc, op["operands"]["true_value"], caller))
        merge(setting_exprs(doc, op["operands"]["false_value"], caller))
        return out
    assert isinstance(expr, dict), f"unexpected app settings expression {expr!r}"
    for key, val in expr.items():
        out.setdefault(unquote(key), []).append(val)
    return out


@functools.cache
def app_settings() -> dict[str, list[Any]]:
    """All settings the function app gets: the sites/config 'appsettings' resource, resolved."""
    main = parsed(MAIN)
    fn_file = module_file("app/function-app.bicep")
    doc = parsed(fn_file)
    (_, cfg) = only(
        {
            s: r
            for s, r in resources(doc, "Microsoft.Web/sites/config").items()
            if body(r)["name"] == "appsettings"
        }
    )
    return setting_exprs(
        doc, body(cfg)["properties"], (main, module_params(main, "function-app.bicep"))
    )


def walk(node: Any) -> Any:
    yield node
    if isinstance(node, dict):
        for v in node.values():
            yield from walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from walk(v)


# ---------------------------------------------------------------------------------------------
# Syntax, structure, wiring
# ---------------------------------------------------------------------------------------------
