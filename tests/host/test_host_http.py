"""The host's HTTP surface: HTTP functions, the durable client over HTTP, Event Grid, timers."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest

from devstack.durable.clock import RealClock, VirtualClock
from devstack.host.host import FunctionHost
from tests.support.toyapp import make_app, triggers


@pytest.fixture
def host() -> Iterator[FunctionHost]:
    triggers.events.clear()
    with FunctionHost(make_app(), None, VirtualClock(datetime(2024, 1, 1, tzinfo=UTC))) as h:
        yield h


@pytest.fixture
def client(host: FunctionHost) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=host.base_url, timeout=10) as c:
        yield c


def test_http_function_gets_route_params_query_body_and_headers(client: httpx.Client) -> None:
    response = client.post("/api/items/42?color=red", json={"n": 1}, headers={"x-test": "yes"})
    assert response.status_code == 201
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "id": "42",
        "method": "POST",
        "query": {"color": "red"},
        "body": {"n": 1},
        "header": "yes",
    }


def test_http_routing_details(client: httpx.Client) -> None:
    assert client.get("/api/files/a/b.txt").text == "path=a/b.txt"
    assert client.put("/api/items/1").status_code == 404  # method not allowed by the function
    assert client.get("/api/nothing-here").status_code == 404
    assert client.get("/admin/host/status").json() == {"state": "Running"}


def test_durable_client_from_an_http_function(host: FunctionHost, client: httpx.Client) -> None:
    response = client.post("/api/start/chain?id=from-http", json={"k": "v"})
    assert response.status_code == 202
    links = response.json()
    assert links["id"] == "from-http"
    assert response.headers["location"] == links["statusQueryGetUri"]
    assert response.headers["x-first-status"] == "Pending"
    assert client.get(links["statusQueryGetUri"]).status_code == 202
    host.run_until_idle()
    status = client.get(links["statusQueryGetUri"])
    assert status.status_code == 200
    assert status.json()["output"][2] == {"echo": {"k": "v"}}

    details = client.get("/api/manage/from-http/status").json()
    assert details["runtimeStatus"] == "Completed"
    assert details["historyLength"] > 5
    assert client.get("/api/manage/from-http/all").json() == ["from-http"]
    assert client.post("/api/manage/from-http/purge").json() == 1
    assert host.get_status("from-http") is None


def test_durable_client_events_terminate_and_queries(
    host: FunctionHost, client: httpx.Client
) -> None:
    for iid in ("wait-1", "wait-2"):
        client.post(f"/api/start/approval?id={iid}").raise_for_status()
    host.run_until_idle(max_virtual_seconds=60)
    assert client.get("/api/manage/x/running").json() == ["wait-1", "wait-2"]
    client.post("/api/manage/wait-1/raise", json={"ok": 1}).raise_for_status()
    client.post("/api/manage/wait-2/terminate").raise_for_status()
    host.run_until_idle(max_virtual_seconds=60)
    approved, stopped = host.get_status("wait-1"), host.get_status("wait-2")
    assert approved is not None
    assert stopped is not None
    assert approved["output"] == {"decision": '{"ok": 1}'}
    assert stopped["runtimeStatus"] == "Terminated"
    assert stopped["output"] == "stopped by test"


def test_durable_http_api_errors(host: FunctionHost, client: httpx.Client) -> None:
    api = "/runtime/webhooks/durabletask"
    assert client.get(f"{api}/instances/missing").status_code == 404
    unknown = client.post(f"{api}/orchestrators/nope")
    assert unknown.status_code == 400
    assert "doesn't exist" in unknown.json()["ExceptionMessage"]
    assert client.post(f"{api}/orchestrators/approval/dup").status_code == 202
    assert client.post(f"{api}/orchestrators/approval/dup").status_code == 409
    assert client.delete(f"{api}/instances/dup").status_code == 412
    assert client.post(f"{api}/instances/missing/raiseEvent/x", json=1).status_code == 404
    page = client.get(f"{api}/instances/", params={"top": 1})
    assert len(page.json()) == 1


def test_event_grid_webhook_handshake_and_delivery(
    host: FunctionHost, client: httpx.Client
) -> None:
    hook = "/runtime/webhooks/eventgrid?functionName=on_blob"
    handshake = client.post(
        hook,
        headers={"aeg-event-type": "SubscriptionValidation"},
        json=[
            {
                "id": "v",
                "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
                "data": {"validationCode": "abc"},
            }
        ],
    )
    assert handshake.json() == {"validationResponse": "abc"}
    event = {
        "id": "e1",
        "topic": "/subscriptions/x/resourceGroups/y/providers/Microsoft.Storage/storageAccounts/z",
        "subject": "/blobServices/default/containers/input/blobs/a.jsonl",
        "eventType": "Microsoft.Storage.BlobCreated",
        "eventTime": "2024-01-01T00:00:00Z",
        "data": {"url": "http://127.0.0.1/input/a.jsonl"},
        "dataVersion": "1",
    }
    delivered = client.post(hook, headers={"aeg-event-type": "Notification"}, json=[event])
    assert delivered.status_code == 202
    assert triggers.events == [
        {
            "subject": event["subject"],
            "type": "Microsoft.Storage.BlobCreated",
            "data": event["data"],
        }
    ]
    host.run_until_idle()
    status = host.get_status("blob-e1")
    assert status is not None
    assert status["runtimeStatus"] == "Completed"
    assert (
        client.post("/runtime/webhooks/eventgrid?functionName=nope", json=[event]).status_code
        == 404
    )


def test_invoke_event_grid_directly(host: FunctionHost) -> None:
    host.invoke_event_grid("on_blob", {"id": "e2", "subject": "s", "eventType": "t", "data": {}})
    assert triggers.events[-1]["subject"] == "s"


def test_fire_timer_and_the_admin_endpoint(host: FunctionHost, client: httpx.Client) -> None:
    before = len(triggers.ticks)
    host.fire_timer("tick")
    assert client.post("/admin/functions/tick", json={}).status_code == 202
    assert len(triggers.ticks) == before + 2
    with pytest.raises(ValueError, match="no timerTrigger function"):
        host.fire_timer("chain")


def test_real_clock_runs_timers_on_schedule_and_work_in_the_background() -> None:
    before = len(triggers.ticks)
    with FunctionHost(make_app(), None, RealClock()) as host:
        iid = host.start_new("chain", None, 1)
        status = host.wait_for(iid, timeout=10)
        deadline = time.monotonic() + 5
        while len(triggers.ticks) < before + 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    assert status["runtimeStatus"] == "Completed"
    assert len(triggers.ticks) >= before + 2


def test_settings_apply_while_the_host_runs() -> None:
    clock = VirtualClock(datetime(2024, 1, 1, tzinfo=UTC))
    with FunctionHost(make_app(), None, clock, env={"DEVSTACK_TEST_SETTING": "on"}):
        assert os.environ["DEVSTACK_TEST_SETTING"] == "on"
    assert "DEVSTACK_TEST_SETTING" not in os.environ
