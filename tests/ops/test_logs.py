"""Logs of a run through the stack: correlated by run id; no prompt content and no secrets."""

from __future__ import annotations

import logging
import re

import orjson

from tests.support.ops import post, run_id_of, wait_run
from tests.support.stack import local_stack

SECRET_PROMPT = "Zanzibar-quokka-7731 tell me about the lighthouse"
ANSWER_HINT = "quokka"


def prompt_file(n: int) -> bytes:
    lines = [
        orjson.dumps(
            {
                "custom_id": f"secret-{i}",
                "method": "POST",
                "url": "/chat/completions",
                "body": {
                    "model": "gpt-4o-batch",
                    "messages": [{"role": "user", "content": f"{SECRET_PROMPT} #{i}"}],
                },
            }
        )
        for i in range(n)
    ]
    return b"\n".join(lines) + b"\n"


def everything(record: logging.LogRecord) -> str:
    """The formatted message, the exception text and every extra field of a record."""
    text = [record.getMessage(), repr(record.args)]
    if record.exc_info:
        text.append(logging.Formatter().formatException(record.exc_info))
    text.extend(repr(v) for k, v in vars(record).items() if k not in ("msg", "args", "exc_info"))
    return "\n".join(text)


def test_run_logs_carry_the_run_id_and_no_prompt_or_key(azurite, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)  # everything, the libraries' debug logs included
    account_key = re.search(r"AccountKey=([^;]+)", azurite.connection_string)
    secrets = ["test-key", *([account_key.group(1)] if account_key else [])]
    with local_stack(azurite, tmp_path) as stack:
        stack.drop("logs/private.jsonl", prompt_file(3))
        stack.drop("logs/broken.jsonl", prompt_file(1) + b'{"custom_id": "' + b"x" * 10 + b"\n")
        good = run_id_of(stack, "logs/private.jsonl")
        bad = run_id_of(stack, "logs/broken.jsonl")
        assert wait_run(stack, good)["status"] == "completed"
        assert wait_run(stack, bad)["status"] == "invalid"
        results = stack.read("output", f"logs/private/{good}/results.jsonl")
        assert ANSWER_HINT in results.decode()  # the answers echo the prompt: a real leak risk
        assert post(stack, f"runs/{bad}/retry").status_code == 202

    records = caplog.records
    ours = [r for r in records if r.name.startswith("batching.")]
    for run_id in (good, bad):
        mine = [r for r in ours if getattr(r, "run_id", None) == run_id]
        assert all(f"run_id={run_id}" in r.getMessage() for r in mine)
        names = {r.name for r in mine}
        messages = {r.getMessage().split(" run_id=")[0] for r in mine}
        assert {"batching.start", "batching.orchestrator", "batching.intake"} <= names, names
        assert {"run started", "orchestration started", "input validated", "run finished"} <= (
            messages
        ), messages
    good_logs = {
        r.getMessage().split(" run_id=")[0]: r for r in ours if getattr(r, "run_id", None) == good
    }
    assert {
        "batch submit: created",
        "batch collected",
        "metadata written",
        "run cleaned up",
    } <= set(good_logs), sorted(good_logs)
    assert "cost_usd=" in good_logs["metadata written"].getMessage()
    assert getattr(good_logs["batch collected"], "succeeded", None) == 3
    assert "input rejected" in {
        r.getMessage().split(" run_id=")[0] for r in ours if getattr(r, "run_id", None) == bad
    }
    assert any(r.getMessage().startswith("retry started") for r in ours)
    # Replays do not repeat the orchestrator's lines.
    assert (
        sum(
            1
            for r in ours
            if getattr(r, "run_id", None) == good
            and r.getMessage().startswith("orchestration started")
        )
        == 1
    )

    assert len(records) > 50
    for record in records:
        text = everything(record)
        assert "Zanzibar" not in text and ANSWER_HINT not in text, (record.name, text[:500])
        for secret in secrets:
            assert secret not in text, (record.name, text[:500])
