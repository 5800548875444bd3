"""The function metadata the Functions host indexes: trigger types, names, routes, settings.

`get_function_json()` is what the Python worker reports to the host for each function; a wrong
binding here fails in Azure at startup, not in any local test, so it is pinned down.
"""

from __future__ import annotations

import re

import orjson
import pytest

from batching.settings import SETTINGS

# Every HTTP function takes all methods (no `methods` in its binding) and answers 405 itself:
# the host answers 404 to a method a route was not declared with.
EXPECTED_HTTP = {
    "health": ("health", None, "ANONYMOUS"),
    "dashboard": ("dashboard", None, "ANONYMOUS"),
    "runs": ("runs", None, "FUNCTION"),
    "runs_get": ("runs/{id}", None, "FUNCTION"),
    "runs_cancel": ("runs/{id}/cancel", None, "FUNCTION"),
    "runs_retry": ("runs/{id}/retry", None, "FUNCTION"),
}
ACTIVITIES = {
    "validate_input",
    "reject_input",
    "prepare_chunks",
    "admit_batch",
    "submit_batch",
    "check_batch",
    "cancel_batch",
    "collect_batch",
    "write_results",
    "write_errors",
    "write_table",
    "write_metadata",
    "cleanup_run",
    "record_failure",
}


@pytest.fixture(scope="module")
def functions():
    import function_app
    from devstack.bindings import functions_of

    return {
        f.get_function_name(): orjson.loads(f.get_function_json())
        for f in functions_of(function_app.app)
    }


def _binding(fn, kind):
    found = [b for b in fn["bindings"] if b["type"] == kind]
    assert len(found) == 1, f"expected one {kind} binding in {fn}"
    return found[0]


def test_every_function_is_known(functions):
    expected = {"on_blob_created", "reconcile", "run_file", *EXPECTED_HTTP, *ACTIVITIES}
    assert set(functions) == expected


def test_blob_created_is_an_event_grid_trigger_with_a_durable_client(functions):
    fn = functions["on_blob_created"]
    assert fn["scriptFile"] == "function_app.py"
    assert _binding(fn, "eventGridTrigger") == {
        "direction": "IN",
        "type": "eventGridTrigger",
        "name": "event",
    }
    assert _binding(fn, "durableClient")["name"] == "client"
    assert {b["type"] for b in fn["bindings"]} == {"eventGridTrigger", "durableClient"}


def test_reconcile_timer_schedule_comes_from_a_setting(functions):
    timer = _binding(functions["reconcile"], "timerTrigger")
    assert timer["schedule"] == "%RECONCILE_SCHEDULE%"
    assert timer["runOnStartup"] is False
    assert _binding(functions["reconcile"], "durableClient")


@pytest.mark.parametrize(("name", "expected"), EXPECTED_HTTP.items())
def test_http_routes(functions, name, expected):
    route, methods, auth = expected
    trigger = _binding(functions[name], "httpTrigger")
    found = (trigger["route"], trigger.get("methods"), trigger["authLevel"])
    assert found == (route, methods, auth)
    assert _binding(functions[name], "http")["name"] == "$return"


def test_orchestrator_and_activities(functions):
    assert _binding(functions["run_file"], "orchestrationTrigger")["name"] == "context"
    for name in ACTIVITIES:
        trigger = _binding(functions[name], "activityTrigger")
        assert trigger == {
            "direction": "IN",
            "type": "activityTrigger",
            "name": "payload",
            "activity": name,
        }


def test_binding_expressions_name_settings_that_bicep_sets(functions):
    """A %NAME% in a binding must resolve in Azure, or the host refuses to start the function."""
    from tests.support.bicep import app_settings

    names = {
        m
        for fn in functions.values()
        for m in re.findall(r"%([A-Za-z0-9_]+)%", orjson.dumps(fn).decode())
    }
    assert names == {"RECONCILE_SCHEDULE"}
    assert names <= {s.name for s in SETTINGS}
    assert names <= set(app_settings())
