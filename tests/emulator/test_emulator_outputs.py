"""What the emulator answers: structured outputs that conform to their schema, Responses API
objects, and real answers recorded from an upstream OpenAI-compatible server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator, FormatChecker

from devstack import services
from tests.support.emulator import (
    DEPLOYMENT,
    azure,
    chat_line,
    jsonl,
    read_jsonl,
    reset,
    run_batch,
    scenario,
    v1,
)
from tests.support.httpserver import serving

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


def _strict(properties: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
        **extra,
    }


SCHEMAS: dict[str, dict[str, Any]] = {
    "person": _strict(
        {
            "name": {"type": "string"},
            "age": {"type": "integer", "minimum": 18, "maximum": 99},
            "score": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
            "active": {"type": "boolean"},
            "tags": {"type": "array", "items": {"type": "string"}, "minItems": 3},
            "address": _strict(
                {"city": {"type": "string"}, "zip": {"type": "string", "minLength": 5}}
            ),
            "status": {"type": "string", "enum": ["new", "open", "closed"]},
            "nickname": {"type": ["string", "null"]},
            "born": {"type": "string", "format": "date"},
            "email": {"type": "string", "format": "email"},
            "code": {"type": "string", "maxLength": 3},
        }
    ),
    "tree": {
        "$defs": {
            "node": _strict(
                {
                    "value": {"type": "integer"},
                    "children": {"type": "array", "items": {"$ref": "#/$defs/node"}},
                }
            )
        },
        **_strict({"root": {"$ref": "#/$defs/node"}}),
    },
    "union": _strict(
        {
            "item": {
                "anyOf": [
                    _strict({"kind": {"const": "a"}, "n": {"type": "integer", "multipleOf": 5}}),
                    {"type": "null"},
                ]
            },
            "levels": {
                "type": "array",
                "items": {"type": "string", "enum": ["low", "mid", "high"]},
                "uniqueItems": True,
                "minItems": 2,
                "maxItems": 3,
            },
            "matrix": {"type": "array", "items": {"type": "array", "items": {"type": "number"}}},
        }
    ),
}


@pytest.fixture(autouse=True)
def _clean(emulator: services.Emulator) -> Iterator[None]:
    yield from reset(emulator)


def _conforms(text: str, schema: dict[str, Any]) -> Any:
    value = json.loads(text)
    Draft202012Validator(schema, format_checker=FormatChecker()).validate(value)
    return value


def test_chat_structured_outputs_conform(emulator: services.Emulator) -> None:
    client = azure(emulator)
    scenario(emulator, batch_duration=0.5)
    lines = [
        chat_line(
            name,
            f"Describe a {name}",
            response_format={
                "type": "json_schema",
                "json_schema": {"name": name, "schema": schema, "strict": True},
            },
        )
        for name, schema in SCHEMAS.items()
    ]
    data = (SAMPLES / "structured-buildings.jsonl").read_bytes() + jsonl(lines)
    batch = run_batch(client, data)
    assert batch.status == "completed"
    results = {
        x["custom_id"]: x["response"]["body"] for x in read_jsonl(client, batch.output_file_id)
    }
    buildings = [json.loads(line) for line in (SAMPLES / "structured-buildings.jsonl").open()]
    for line in buildings:
        fmt = line["body"]["response_format"]["json_schema"]
        content = results[line["custom_id"]]["choices"][0]["message"]["content"]
        assert set(_conforms(content, fmt["schema"])) == set(fmt["schema"]["required"])
    for name, schema in SCHEMAS.items():
        _conforms(results[name]["choices"][0]["message"]["content"], schema)
    tree = json.loads(results["tree"]["choices"][0]["message"]["content"])
    assert tree["root"]["children"], "nested arrays of objects are filled in"


def test_json_object_and_plain_answers(emulator: services.Emulator) -> None:
    client = azure(emulator)
    scenario(emulator, batch_duration=0.5)
    lines = [
        chat_line("json", "Give me JSON", response_format={"type": "json_object"}),
        chat_line("plain", "What is the capital of France?"),
    ]
    results = {
        x["custom_id"]: x["response"]["body"]["choices"][0]["message"]["content"]
        for x in read_jsonl(client, run_batch(client, jsonl(lines)).output_file_id)
    }
    assert isinstance(json.loads(results["json"]), dict)
    assert "capital of France" in results["plain"]


def test_responses_api_batch(emulator: services.Emulator) -> None:
    client = v1(emulator)
    scenario(emulator, batch_duration=0.5)
    schema = SCHEMAS["person"]

    def line(custom_id: str, **body: Any) -> dict[str, Any]:
        return {
            "custom_id": custom_id,
            "method": "POST",
            "url": "/v1/responses",
            "body": {"model": DEPLOYMENT, "instructions": "Be brief.", **body},
        }

    data = jsonl(
        [
            line(
                "structured",
                input=[{"role": "user", "content": "Describe a person"}],
                text={"format": {"type": "json_schema", "name": "p", "schema": schema}},
            ),
            line("plain", input="Tell me about the moon"),
        ]
    )
    batch = run_batch(client, data, endpoint="/v1/responses")
    assert batch.status == "completed"
    results = {x["custom_id"]: x["response"] for x in read_jsonl(client, batch.output_file_id)}
    structured = results["structured"]["body"]
    assert structured["object"] == "response"
    assert structured["status"] == "completed"
    message = structured["output"][0]
    assert (message["type"], message["role"]) == ("message", "assistant")
    _conforms(message["content"][0]["text"], schema)
    usage = structured["usage"]
    assert usage["input_tokens"] > 0
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    plain = results["plain"]["body"]["output"][0]["content"][0]
    assert plain["type"] == "output_text"
    assert "moon" in plain["text"]


class _FakeOpenAI(BaseHTTPRequestHandler):
    """A tiny OpenAI-compatible server: echoes chat requests, fails those that ask it to."""

    seen: list[tuple[str, dict[str, Any]]]

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.seen.append((self.path, body))
        text = body["messages"][-1]["content"] if "messages" in body else body["input"]
        if "fail" in text:
            status = 503
            answer: dict[str, Any] = {
                "error": {
                    "message": "overloaded",
                    "type": "server_error",
                    "param": None,
                    "code": "x",
                }
            }
        else:
            status = 200
            answer = {
                "id": "chatcmpl-up",
                "object": "chat.completion",
                "model": "upstream-model",
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": f"up: {text}"}}
                ],
                "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
            }
        payload = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("x-request-id", "upstream-request-id")
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""


@pytest.fixture
def fake_upstream() -> Iterator[tuple[str, list[tuple[str, dict[str, Any]]]]]:
    seen: list[tuple[str, dict[str, Any]]] = []
    handler = type("Handler", (_FakeOpenAI,), {"seen": seen})
    with serving(ThreadingHTTPServer(("127.0.0.1", 0), handler)) as url:
        yield f"{url}/v1", seen


def test_upstream_answers_are_recorded(
    tmp_path: Path, fake_upstream: tuple[str, list[tuple[str, dict[str, Any]]]]
) -> None:
    url, seen = fake_upstream
    with services.emulator(
        None, batch_duration=1.0, extra_args=["--upstream", url], log_path=tmp_path / "em.log"
    ) as em:
        client = azure(em)
        lines = [chat_line(f"ok-{i}", f"question {i}", temperature=0) for i in range(6)]
        lines += [
            chat_line("bad", "please fail"),
            {**chat_line("v1"), "url": "/v1/chat/completions"},
        ]
        batch = run_batch(client, jsonl(lines))
    assert batch.status == "completed"
    assert batch.request_counts is not None
    assert (batch.request_counts.completed, batch.request_counts.failed) == (7, 1)
    assert sorted(path for path, _ in seen) == ["/v1/chat/completions"] * 8
    assert {"question 0", "please fail"} <= {b["messages"][-1]["content"] for _, b in seen}
    assert all(b["model"] == DEPLOYMENT for _, b in seen)


def test_upstream_results_land_in_the_files(
    tmp_path: Path, fake_upstream: tuple[str, list[tuple[str, dict[str, Any]]]]
) -> None:
    url, _ = fake_upstream
    with services.emulator(
        None, batch_duration=0.5, extra_args=["--upstream", url], log_path=tmp_path / "em.log"
    ) as em:
        client = azure(em)
        batch = run_batch(client, jsonl([chat_line("good", "hi"), chat_line("bad", "fail now")]))
        good = read_jsonl(client, batch.output_file_id)
        bad = read_jsonl(client, batch.error_file_id)
    assert [x["custom_id"] for x in good] == ["good"]
    response = good[0]["response"]
    assert response["status_code"] == 200
    assert response["request_id"] == "upstream-request-id"
    assert response["body"]["choices"][0]["message"]["content"] == "up: hi"
    assert response["body"]["model"] == "upstream-model"
    assert [x["custom_id"] for x in bad] == ["bad"]
    assert bad[0]["response"]["status_code"] == 503
    assert bad[0]["response"]["body"]["error"]["message"] == "overloaded"


def test_unreachable_upstream_fails_the_lines(tmp_path: Path) -> None:
    nowhere = f"http://127.0.0.1:{services.free_port()}"
    with services.emulator(
        None, batch_duration=0.5, extra_args=["--upstream", nowhere], log_path=tmp_path / "e.log"
    ) as em:
        client = azure(em)
        batch = run_batch(client, jsonl([chat_line("a"), chat_line("b")]))
        errors = read_jsonl(client, batch.error_file_id)
    assert batch.status == "completed"
    assert batch.output_file_id is None, "a batch whose every request failed has no output file"
    assert sorted(x["custom_id"] for x in errors) == ["a", "b"]
    assert {x["response"]["status_code"] for x in errors} == {502}
