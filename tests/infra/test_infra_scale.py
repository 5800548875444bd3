"""Offline checks of the scale parts of infra/: the runs index table and the Durable backend choice.

Same approach as tests/infra/test_infra.py (pycep's parse of the Bicep, walked): the runs table
exists in the data account with a table-scoped role for the app; `durableBackend` selects Azure
Storage (default) or a Durable Task Scheduler whose task hub the app identity may use, and only then
are host.json's storage provider and extension bundle overridden by app settings.
"""

from __future__ import annotations

import json
from typing import Any

from batching.settings import SETTINGS
from tests.support.bicep import (
    DURABLE_TASK_DATA_CONTRIBUTOR,
    INFRA,
    MAIN,
    ROOT,
    TABLE,
    TABLE_DATA_CONTRIBUTOR,
    app_settings,
    body,
    condition,
    get,
    is_module_output,
    module_calls,
    module_file,
    module_params,
    only,
    parsed,
    resources,
    role_assignments,
    value,
)

DTS = "app/durable-task-scheduler.bicep"
SCHEDULER = "Microsoft.DurableTask/schedulers"
TASK_HUB = "Microsoft.DurableTask/schedulers/taskHubs"
PROVIDER_TYPE = "AzureFunctionsJobHost__extensions__durableTask__storageProvider__type"
PROVIDER_CONNECTION = (
    "AzureFunctionsJobHost__extensions__durableTask__storageProvider__connectionStringName"
)
CONNECTION = "DURABLE_TASK_SCHEDULER_CONNECTION_STRING"
DEFAULTS = {s.name: s.default for s in SETTINGS}


def _host_json() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((ROOT / "host.json").read_text(encoding="utf-8"))
    return data


# ---- the runs index --------------------------------------------------------------------------


def test_runs_table_is_created_in_the_data_account_with_the_code_default_name() -> None:
    main = parsed(MAIN)
    _, data = only(
        {
            s: m
            for s, m in module_calls(main, "core/storage-account.bicep").items()
            if s == "dataStorage"
        }
    )
    assert body(data)["params"]["tables"] == ["runsTableName"]
    assert value(main, "runsTableName") == DEFAULTS["RUNS_TABLE"]
    storage = parsed(module_file("core/storage-account.bicep"))
    _, table = only(resources(storage, TABLE))
    assert body(table)["name"] == "tableName" and body(table)["parent"] == "tableService"
    (setting,) = app_settings()["RUNS_TABLE"]
    assert setting == "runsTableName"
    (uri,) = app_settings()["BATCH_STORAGE__tableServiceUri"]
    assert is_module_output(uri, "dataStorage", "tableEndpoint")


def test_app_gets_table_data_contributor_on_the_runs_table_of_the_data_account_only() -> None:
    doc = parsed(module_file("app/rbac.bicep"))
    tables = [ra for ra in role_assignments(doc) if ra["role"] == TABLE_DATA_CONTRIBUTOR]
    on_data = [ra for ra in tables if ra["scopeType"] == TABLE]
    assert len(on_data) == 1
    (ra,) = on_data
    assert ra["principal"] == "appPrincipalId" and ra["principalType"] == "ServicePrincipal"
    assert ra["scopeName"] == "runsTableName"
    service = doc["resources"][ra["scopeParent"]]
    assert service["type"] == "Microsoft.Storage/storageAccounts/tableServices"
    account = doc["resources"][body(service)["parent"]]
    assert body(account)["name"] == "dataStorageAccountName"
    assert module_params(parsed(MAIN), "app/rbac.bicep")["runsTableName"] == "runsTableName"


# ---- the Durable backend ---------------------------------------------------------------------


def test_backend_is_a_parameter_default_azure_storage() -> None:
    main = parsed(MAIN)
    param = main["parameters"]["durableBackend"]
    allowed = next(d["argument"] for d in param["decorators"] if d["type"] == "allowed")
    assert allowed == ["AzureStorage", "DurableTaskScheduler"]
    assert param["default"] == "AzureStorage"
    params = json.loads((INFRA / "main.parameters.json").read_text(encoding="utf-8"))
    assert params["parameters"]["durableBackend"]["value"] == "${DURABLE_BACKEND=AzureStorage}"
    use = main["variables"]["useDurableTaskScheduler"]["value"]["operator"]
    assert use["type"] == "equals"
    assert use["operands"] == {"operand_1": "durableBackend", "operand_2": "DurableTaskScheduler"}


def test_scheduler_module_only_in_scheduler_mode() -> None:
    main = parsed(MAIN)
    _, mod = only(module_calls(main, DTS))
    assert condition(mod) == "useDurableTaskScheduler"
    params = body(mod)["params"]
    assert is_module_output(params["appPrincipalId"], "identity", "principalId")
    assert params["taskHubName"] == "taskHubName"
    assert params["ipAllowlist"] == "durableTaskSchedulerIpAllowlist"


def test_scheduler_and_task_hub_with_a_non_empty_ip_allowlist() -> None:
    doc = parsed(module_file(DTS))
    _, scheduler = only(resources(doc, SCHEDULER))
    _, hub = only(resources(doc, TASK_HUB))
    assert scheduler["api_version"] == hub["api_version"] == "2025-11-01"
    assert body(hub)["parent"] == "scheduler"
    assert body(scheduler)["properties"]["ipAllowlist"] == "ipAllowlist"
    for doc_, name in ((doc, "ipAllowlist"), (parsed(MAIN), "durableTaskSchedulerIpAllowlist")):
        param = doc_["parameters"][name]
        assert param["default"], f"{name}: an empty allowlist denies all traffic"
        assert {"type": "min_length", "argument": 1} in param["decorators"], name
    sku = body(scheduler)["properties"]["sku"]["operator"]["operands"]
    assert sku["false_value"] == {"name": "skuName"}
    assert doc["parameters"]["skuName"]["default"] == "Consumption"


def test_app_identity_is_durable_task_data_contributor_on_the_task_hub_only() -> None:
    doc = parsed(module_file(DTS))
    (ra,) = role_assignments(doc)
    assert ra["role"] == DURABLE_TASK_DATA_CONTRIBUTOR
    assert ra["scopeType"] == TASK_HUB
    assert ra["principal"] == "appPrincipalId" and ra["principalType"] == "ServicePrincipal"
    assert get(ra["name"], "function", "type") == "guid"


def test_task_hub_is_the_hub_host_json_names() -> None:
    main = parsed(MAIN)
    expr = main["variables"]["taskHubName"]["value"]["operator"]
    assert get(expr, "operands", "operand_1", "function", "type") == "load_json_content"
    assert (
        get(expr, "operands", "operand_1", "function", "parameters", "file_path") == "../host.json"
    )
    assert "hubName" in json.dumps(expr["operands"]["operand_2"])
    assert _host_json()["extensions"]["durableTask"]["hubName"]


def test_scheduler_settings_only_in_scheduler_mode_and_identity_based() -> None:
    main = parsed(MAIN)
    cond = main["variables"]["durableAppSettings"]["value"]["operator"]
    assert cond["type"] == "conditional"
    assert cond["operands"]["condition"] == "useDurableTaskScheduler"
    assert cond["operands"]["false_value"] == {}
    dts = cond["operands"]["true_value"]
    assert dts[PROVIDER_TYPE] == "azureManaged"
    assert dts[PROVIDER_CONNECTION] == CONNECTION
    assert dts[CONNECTION] == (
        "Endpoint=${durableTaskScheduler.outputs.endpoint};"
        "Authentication=ManagedIdentity;ClientID=${identity.outputs.clientId}"
    )
    # an extension bundle range that carries the azureManaged provider
    assert dts["AzureFunctionsJobHost__extensionBundle__id"] == (
        "Microsoft.Azure.Functions.ExtensionBundle.Preview"
    )
    assert dts["AzureFunctionsJobHost__extensionBundle__version"] == "[4.29.0, 5.0.0)"
    # Azure Storage mode is host.json as it is: no provider, the GA bundle
    host = _host_json()
    assert "storageProvider" not in host["extensions"]["durableTask"]
    assert host["extensionBundle"]["id"] == "Microsoft.Azure.Functions.ExtensionBundle"
    for name in dts:
        (only_value,) = app_settings()[name]  # set once, from this variable only
        assert only_value == dts[name]
