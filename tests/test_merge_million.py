"""A million requests, ten chunks: sorting their outcomes and merging them loses nothing and
repeats nothing (the in-memory core of the pipeline's collect-and-merge)."""

from __future__ import annotations

import io

import orjson

from batching.results import collect

CHUNKS, PER_CHUNK = 10, 100_000


def _chunk(c: int):
    inputs, outputs = bytearray(), bytearray()
    for i in range(PER_CHUNK):
        cid = f"c{c}-{i}"
        inputs += (
            b'{"custom_id":"'
            + cid.encode()
            + b'","method":"POST","url":"/chat/completions","body":{}}\n'
        )
        kind = i % 20
        if kind == 0:  # never ran (an expired batch): absent from both files
            continue
        status = 400 if kind == 1 else 500 if kind == 2 else 200
        outputs += (
            orjson.dumps(
                {
                    "custom_id": cid,
                    "error": None,
                    "response": {
                        "status_code": status,
                        "body": {"usage": {"prompt_tokens": 1, "completion_tokens": 1}}
                        if status == 200
                        else {"error": {"code": "x", "message": "m"}},
                    },
                }
            )
            + b"\n"
        )
    return bytes(inputs), bytes(outputs)


def test_a_million_requests_land_exactly_once():
    merged_results, merged_failures, retried = io.BytesIO(), io.BytesIO(), 0
    for c in range(CHUNKS):
        inputs, outputs = _chunk(c)
        retry = io.BytesIO()
        outcome = collect(
            [[outputs]],
            [inputs],
            merged_results,
            merged_failures,
            retry,
            round_no=0,
            batch_id=f"b{c}",
            resubmit=c % 2 == 0,
        )
        retried += outcome.retry
        assert outcome.succeeded + outcome.failed + outcome.retry == PER_CHUNK
    seen: set[bytes] = set()
    total = 0
    for buf in (merged_results, merged_failures):
        for line in buf.getvalue().splitlines():
            cid = orjson.loads(line)["custom_id"].encode()
            assert cid not in seen
            seen.add(cid)
            total += 1
    assert total + retried == CHUNKS * PER_CHUNK
    assert retried == (CHUNKS // 2) * PER_CHUNK * 2 // 20  # 5xx and never-ran, even chunks only
