"""Token estimates: offline encodings, model families, the sampled estimate's accuracy, and the
approximate estimate made without the tokenizer (batchctl validate's default)."""

from __future__ import annotations

import base64
import gzip
import random
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import orjson
import pytest
import tiktoken.load
from hypothesis import given
from hypothesis import strategies as st
from tiktoken_ext import openai_public

from batching.jsonlines import read_blocks
from batching.tokens import child as tokencount
from batching.tokens import encoding as encodings
from batching.tokens import estimate as tokens
from batching.tokens.child import ChildCounter
from batching.tokens.encoding import get_encoding, model_family
from batching.tokens.estimate import (
    DEFAULT_COMPLETION_BUDGET,
    Prompt,
    TokenEstimator,
    exact_prompt_tokens,
    prompt_overhead,
)
from batching.validation.bodies import check_chat
from batching.validation.validator import Request, ValidationOptions, check_line, validate

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
OPTIONS = ValidationOptions(max_requests_per_batch=100_000, max_bytes_per_batch=200_000_000)


@pytest.mark.parametrize(
    ("name", "text", "ids"),
    [
        ("o200k_base", "hello world", [24912, 2375]),
        ("cl100k_base", "hello world", [15339, 1917]),
    ],
)
def test_encodings_load_offline_and_encode_like_openai(
    monkeypatch: pytest.MonkeyPatch, name: str, text: str, ids: list[int]
) -> None:
    def no_network(*args: object, **kwargs: object) -> bytes:
        raise AssertionError("tried to download an encoding")

    monkeypatch.setattr(tiktoken.load, "read_file", no_network)
    monkeypatch.setattr(tiktoken.load, "read_file_cached", no_network)
    encoding = encodings._build_encoding(name)
    assert encoding.encode_ordinary(text) == ids
    # same pattern and special tokens as tiktoken's own constructor, fed the same ranks
    monkeypatch.setattr(
        openai_public, "load_tiktoken_bpe", lambda *a, **k: encoding._mergeable_ranks
    )
    official = getattr(openai_public, name)()
    assert official["pat_str"] == encoding._pat_str
    assert official["special_tokens"] == encoding._special_tokens
    # the ranks as the file lists them (the loader relies on them being 0, 1, 2 ... in order)
    data = gzip.decompress(encodings._data_file(name).read_bytes())
    listed = {base64.b64decode(t): int(r) for t, r in (x.split() for x in data.splitlines())}
    assert listed == encoding._mergeable_ranks


def test_encoding_is_cached_per_process() -> None:
    assert get_encoding("o200k_base") is get_encoding("o200k_base")


@pytest.mark.parametrize(
    ("deployment", "family", "encoding"),
    [
        ("gpt-4o-batch", "gpt-4o", "o200k_base"),
        ("prod-gpt-4o-mini", "gpt-4o", "o200k_base"),
        ("4o-global-batch", "gpt-4o", "o200k_base"),
        ("gpt-4.1-nano", "gpt-4.1", "o200k_base"),
        ("GPT-5-mini", "gpt-5", "o200k_base"),
        ("o3-mini-batch", "o-series", "o200k_base"),
        ("team-o4-mini", "o-series", "o200k_base"),
        ("gpt-4-turbo", "gpt-4", "cl100k_base"),
        ("gpt-4-1106-preview", "gpt-4", "cl100k_base"),
        ("gpt-35-turbo", "gpt-3.5", "cl100k_base"),
        ("my-deployment", "unknown", "o200k_base"),
        ("foo3", "unknown", "o200k_base"),
    ],
)
def test_model_family(deployment: str, family: str, encoding: str) -> None:
    assert model_family(deployment) == (family, encoding)


def _requests(path: Path) -> list[Request]:
    found = [check_line(n, raw) for n, raw in enumerate(path.read_bytes().splitlines(), 1)]
    assert all(isinstance(r, Request) for r in found)
    return found  # type: ignore[return-value]


def _chat(custom_id: str, *contents: str) -> bytes:
    roles = ["system"] * (len(contents) - 1) + ["user"]
    messages = [{"role": r, "content": c} for r, c in zip(roles, contents, strict=True)]
    return orjson.dumps(
        {
            "custom_id": custom_id,
            "method": "POST",
            "url": "/chat/completions",
            "body": {"model": "gpt-4o-batch", "messages": messages},
        }
    )


def test_a_small_file_is_counted_exactly_by_the_published_recipe() -> None:
    """Fixed strings of known tokens: "hello world" is [24912, 2375] in o200k_base ("hello" and
    " world"), as in the test above. OpenAI's recipe adds 3 a request and 4 a message."""
    data = b"\n".join(
        [
            _chat("a", "hello world"),  # 3 + 4 + 2 = 9
            _chat("b", "hello", "hello world"),  # 3 + 2 * 4 + 1 + 2 = 14
            _chat("c", ""),  # 3 + 4 + 0 = 7
        ]
    )
    report = validate([data], OPTIONS)
    assert report.tokens is not None
    assert report.tokens.method == "exact"
    assert report.tokens.encoding == "o200k_base"
    assert report.tokens.prompt == 9 + 14 + 7
    assert report.tokens.completion_budget == 3 * DEFAULT_COMPLETION_BUDGET
    assert report.tokens.total == 30 + 3 * DEFAULT_COMPLETION_BUDGET


@pytest.mark.parametrize("sample", sorted(SAMPLES.glob("*.jsonl")), ids=lambda p: p.stem)
def test_small_file_totals_are_the_sum_of_each_requests_exact_count(sample: Path) -> None:
    report = validate(read_blocks(sample), OPTIONS)
    encoding = get_encoding("o200k_base")
    exact = sum(exact_prompt_tokens(r.prompt, encoding) for r in _requests(sample))
    assert report.tokens is not None
    assert report.tokens.method == "exact"
    assert report.tokens.prompt == exact
    assert report.tokens.completion_budget == report.requests * DEFAULT_COMPLETION_BUDGET
    assert report.tokens.total == exact + report.tokens.completion_budget


def test_quickstart_prompt_count_by_hand() -> None:
    encoding = get_encoding("o200k_base")
    request = _requests(SAMPLES / "quickstart.jsonl")[0]
    texts = [
        m["content"]
        for m in (
            {"content": "You are an AI assistant that helps people find information."},
            {"content": "When was Microsoft founded?"},
        )
    ]
    by_hand = 3 + 2 * 4 + sum(len(encoding.encode(t)) for t in texts)
    assert exact_prompt_tokens(request.prompt, encoding) == by_hand


def test_completion_budget_from_the_request() -> None:
    estimator = TokenEstimator("o200k_base")
    estimator.add(Prompt(["a"], prompt_overhead(1, 0), 250))
    estimator.add(Prompt(["b"], prompt_overhead(1, 0), DEFAULT_COMPLETION_BUDGET))
    assert estimator.result().completion_budget == 250 + DEFAULT_COMPLETION_BUDGET
    prompt, _ = check_chat({"messages": [{"role": "user", "content": "x"}], "max_tokens": 7})
    assert prompt.completion_budget == 7


WORDS = [
    "the",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "a",
    "lazy",
    "dog",
    "while",
    "customers",
    "review",
    "products",
]
CODE = ["def f(x):\n    return x ** 2  # square\n", "for (int i = 0; i < n; ++i) { a[i] = i; }\n"]
CJK = ["東京タワーは高さ333メートルです。", "北京是中国的首都。", "서울은 한국의 수도입니다."]


def _mixed_prompts(count: int, seed: int) -> list[Prompt]:
    """Prose, code, CJK and numbers in runs, so the tokens per character drift through a file."""
    rng = random.Random(seed)
    prompts = []
    for i in range(count):
        kind = (i // 97) % 4
        if kind == 0:
            text = " ".join(rng.choices(WORDS, k=rng.randint(20, 400)))
        elif kind == 1:
            text = "".join(rng.choices(CODE, k=rng.randint(2, 30)))
        elif kind == 2:
            text = "".join(rng.choices(CJK, k=rng.randint(2, 40)))
        else:
            text = " ".join(str(rng.randint(0, 10**9)) for _ in range(rng.randint(5, 200)))
        prompts.append(Prompt(["You are a helpful assistant.", text], prompt_overhead(2, 0), 100))
    return prompts


@pytest.mark.parametrize(
    ("count", "params"),
    [
        (3000, {"warmup_chars": 20_000, "step_chars": 10_000}),  # about 200 sampled lines
        (12_000, {}),  # the defaults on ~9 MB of text
    ],
)
def test_sampled_estimate_is_within_one_percent_of_exact(
    count: int, params: dict[str, int]
) -> None:
    encoding = get_encoding("o200k_base")
    prompts = _mixed_prompts(count, seed=count)
    estimator = TokenEstimator("o200k_base", **params)
    for p in prompts:
        estimator.add(p)
    estimate = estimator.result()
    # Every prompt has the recipe's overhead for two messages (3 + 2 * 4) plus its text.
    exact = sum(
        3 + 2 * 4 + sum(len(encoding.encode_ordinary(t)) for t in p.pieces) for p in prompts
    )
    assert estimate.method == "sampled"
    assert estimate.sampled_requests < count / 5
    assert abs(estimate.prompt - exact) / exact < 0.01, (estimate.prompt, exact)


def test_counting_in_a_child_process_gives_the_same_estimate(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    prompts = _mixed_prompts(1500, seed=7)
    params = {"warmup_chars": 20_000, "step_chars": 10_000, "child_after_chars": 30_000}
    here = TokenEstimator("o200k_base", **params)
    for p in prompts:
        here.add(p)
    monkeypatch.setattr(tokens, "encoding_loaded", lambda name: False)
    spawned: list[str] = []
    monkeypatch.setattr(  # imported where a child is started, from its module
        tokencount, "ChildCounter", lambda name: spawned.append(name) or ChildCounter(name)
    )
    there = TokenEstimator("o200k_base", **params)
    for p in prompts:
        there.add(p)
    assert there.result() == here.result()
    assert spawned == ["o200k_base"]


def test_a_failing_child_counter_raises() -> None:
    counter = ChildCounter("no_such_encoding")
    counter.submit(["text"])
    with pytest.raises(RuntimeError, match="token counter failed"):
        counter.counts()


def test_a_long_line_is_estimated_from_its_head() -> None:
    """A line over LONG_LINE_CHARS: only its head is encoded, the rest scaled by its ratio;
    the estimate stays close to encoding the whole line."""
    rng = random.Random(5)
    words = ["the", "customer", "said", "delivery", "was", "late", "but", "support", "refunded"]
    text = " ".join(rng.choice(words) for _ in range(120_000))  # about 700,000 characters
    assert len(text) > tokens.LONG_LINE_CHARS * 5
    prompt = Prompt([text], prompt_overhead(1, 0), DEFAULT_COMPLETION_BUDGET)
    exact = exact_prompt_tokens(prompt, get_encoding("o200k_base"))
    estimator = TokenEstimator("o200k_base")
    estimator.add(prompt)
    # one sample, the line's head: the encoder never sees the rest of it
    assert [sum(map(len, p)) for p in estimator._pending] == [tokens.LONG_LINE_CHARS]
    estimate = estimator.result()
    assert abs(estimate.prompt - exact) / exact < 0.01, (estimate.prompt, exact)


# --- without the tokenizer ------------------------------------------------------------------


def _no_tokenizer(monkeypatch: pytest.MonkeyPatch) -> None:
    """Building an encoding or starting a counting child fails the test."""

    def refuse(*args: object, **kwargs: object) -> object:
        raise AssertionError("the approximate estimate used the tokenizer")

    monkeypatch.setattr(encodings, "_build_encoding", refuse)
    monkeypatch.setattr(tokencount, "ChildCounter", refuse)
    monkeypatch.setattr(tokencount, "EARLY_CHILD_BYTES", 1)


def test_a_small_file_without_the_tokenizer_is_its_utf8_bytes_over_four(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The same recipe overhead; the text is put at one token per 4 UTF-8 bytes, by hand:
    "hello world" 11 bytes, "hello" 5, "" 0, "héllo 😀" 11 (é 2 bytes, 😀 4): 38 / 4 = 9.5,
    rounded to 10. Overhead 3 a request + 4 a message: 7 + 11 + 7 + 7 = 32."""
    _no_tokenizer(monkeypatch)
    data = b"\n".join(
        [
            _chat("a", "hello world"),
            _chat("b", "hello", "hello world"),
            _chat("c", ""),
            _chat("d", "héllo 😀"),
        ]
    )
    report = validate([data], OPTIONS, size_hint=len(data), count_tokens=False)
    assert report.tokens is not None
    assert report.tokens.method == "approximate"
    assert report.tokens.encoding == "o200k_base"
    assert report.tokens.prompt == 32 + 10
    assert report.tokens.completion_budget == 4 * DEFAULT_COMPLETION_BUDGET
    assert report.tokens.total == 42 + 4 * DEFAULT_COMPLETION_BUDGET
    assert tokens.BYTES_PER_TOKEN == 4


def test_a_large_file_without_the_tokenizer_is_sampled_within_one_percent_of_its_bytes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The same systematic sample as the token count, measured in bytes: close to every piece's
    UTF-8 bytes / 4, with no encoding built and no child started however much text there is.
    Bytes per character swing more than tokens per character between these runs of English,
    code, CJK and numbers (1 to 3 against 0.25 to 0.7): 0.6-1.4% off over seeds 1-5."""
    _no_tokenizer(monkeypatch)
    prompts = _mixed_prompts(12_000, seed=3)
    estimator = TokenEstimator("o200k_base", child_after_chars=1, approximate=True)
    for p in prompts:
        estimator.add(p)
    estimate = estimator.result()
    text_bytes = sum(len(t.encode()) for p in prompts for t in p.pieces)
    by_bytes = sum(p.overhead for p in prompts) + text_bytes / tokens.BYTES_PER_TOKEN
    assert estimate.method == "approximate"
    assert estimate.sampled_requests < len(prompts) / 5
    assert abs(estimate.prompt - by_bytes) / by_bytes < 0.02, (estimate.prompt, by_bytes)


def test_an_approximate_estimate_takes_no_child() -> None:
    with pytest.raises(ValueError, match="takes no child"):
        TokenEstimator("o200k_base", child=object(), approximate=True)  # type: ignore[arg-type]


_texts = st.lists(st.text(max_size=30), min_size=1, max_size=8)


@given(_texts, st.text(min_size=1, max_size=30), st.sampled_from([-1, 0, 1]))
def test_text_within_the_warm_up_is_counted_whole_and_the_rest_scaled(
    before: list[str], last: str, nudge: int
) -> None:
    """The warm-up boundary, in bytes as in tokens: a line that starts with less text before it
    than the warm-up is counted whole; one that starts exactly at it (or past it) is scaled by
    the warm-up's bytes per character. Warm-up one under, at, and one over the text before the
    last line."""
    prompts = [Prompt([t], prompt_overhead(1, 0), 10) for t in [*before, last]]
    ahead = sum(map(len, before))
    warmup = ahead + nudge
    estimator = TokenEstimator(
        "o200k_base", warmup_chars=warmup, step_chars=10**9, approximate=True
    )
    for p in prompts:
        estimator.add(p)
    estimate = estimator.result()
    overhead = sum(p.overhead for p in prompts)
    utf8 = [len(t.encode("utf-8", "surrogatepass")) for t in [*before, last]]
    if nudge > 0:  # the last line starts inside the warm-up: everything counted
        assert estimate.prompt == overhead + round(sum(utf8) / tokens.BYTES_PER_TOKEN)
        return
    # the last line is scaled (and so is any line of `before` that starts past the warm-up)
    exact_chars = exact_bytes = 0
    scaled = 0
    for text, size in zip([*before, last], utf8, strict=True):
        if exact_chars < warmup:
            exact_chars += len(text)
            exact_bytes += size
        else:
            scaled += len(text)
    expected = exact_bytes + round(scaled * exact_bytes / max(exact_chars, 1))
    assert estimate.prompt == overhead + round(expected / tokens.BYTES_PER_TOKEN)


def test_threads_asking_at_once_build_the_encoding_once(monkeypatch):
    """The Functions worker runs activities on a pool of threads: a burst of runs asks for the
    encoding at once, and each build costs a quarter of a second of CPU and its own memory."""
    monkeypatch.setattr(encodings, "_LOADED", {})
    real, builds = encodings._build_encoding, []
    start = threading.Barrier(6)

    def counting(name):
        builds.append(name)
        return real(name)

    monkeypatch.setattr(encodings, "_build_encoding", counting)

    def ask():
        start.wait(timeout=10)
        return encodings.get_encoding("o200k_base")

    with ThreadPoolExecutor(6) as pool:
        got = list(pool.map(lambda _: ask(), range(6)))
    assert builds == ["o200k_base"]
    assert all(g is got[0] for g in got)
