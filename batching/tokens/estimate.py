"""Token estimates for a batch file, offline and in a fraction of the time a full encode takes.

Encodings: tiktoken downloads its data at run time, which fails offline and in locked-down
networks, so the o200k_base / cl100k_base rank files shipped in the `bpe-openai` wheel are loaded
(checked against tiktoken's published SHA-256) into a `tiktoken.Encoding`, once per process.

Method: a request's prompt is its text pieces (message contents, instructions, the serialized
tools and response format) plus a fixed overhead per request and per message (OpenAI's counting
recipe: 3 per request, 3 + 1 for the role per message, `IMAGE_TOKENS` per image). Encoding every
piece of a 190 MB file would take longer than parsing it, so the first `WARMUP_CHARS` characters
of text are encoded exactly and, after that, one line per `STEP_CHARS` characters of text
(systematic sampling proportional to length; at most `SAMPLE_CHARS` of the line are encoded).
The text of the rest is counted in characters and scaled by the sampled lines' tokens per
character. Files with less text than the warm-up are counted exactly (`method: "exact"`).
One line never costs more than `LONG_LINE_CHARS` of encoding: a longer line, even in the
warm-up, has its first `LONG_LINE_CHARS` characters encoded and the rest counted in characters
at that head's tokens per character (an estimate: encoding a 50 MB line whole takes gigabytes
of memory and tens of seconds, and the estimate only needs to feed quota admission).
For large files the samples are counted in a child process (see `batching.tokens.child`).
Accuracy against encoding every piece (tests/validation/test_tokens.py): within 0.8% on files
of mixed English, code, CJK and numbers (within 1% asserted), 0.04% on the benchmark file.

Without the tokenizer (`approximate=True`, what `batchctl validate` does unless asked to count):
the same samples are measured in UTF-8 bytes instead of tokens, and the text's tokens are put at
one per `BYTES_PER_TOKEN` bytes (`method: "approximate"`). No encoding is built and no child
started. Real text runs from about 1.5 (base64) and 2.5 (numbers, JSON data) to 10 (Hindi,
Russian in o200k_base) bytes a token, 4 for English prose and code (docs/benchmarks.md), so this
is a rough figure: no verdict and no split depends on tokens, and the pipeline always counts with
the tokenizer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

from batching.tokens.encoding import encoding_loaded, get_encoding

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: batchctl start-up
if TYPE_CHECKING:
    from typing import Any

    import tiktoken

    from batching.tokens.child import ChildCounter

PER_REQUEST = 3
PER_MESSAGE = 4
IMAGE_TOKENS = 765  # a 1024x1024 high-detail image on gpt-4o; the real cost depends on size
DEFAULT_COMPLETION_BUDGET = 4096  # assumed when a request sets no max_*tokens
WARMUP_CHARS = 200_000
STEP_CHARS = 200_000
SAMPLE_CHARS = 8_000
CHILD_AFTER_CHARS = 100_000  # sample text that makes counting in a child process worth it
LONG_LINE_CHARS = 100_000  # a line's text beyond this is estimated from its head
BYTES_PER_TOKEN = 4  # the approximate estimate's rate (English prose and code: ~4)


@dataclass(slots=True)
class Prompt:
    """What a request sends the model, as the token estimate needs it."""

    pieces: Sequence[str]  # the text, encoded as is
    overhead: int  # tokens the text does not show: see `prompt_overhead`
    completion_budget: int


def prompt_overhead(messages: int, images: int) -> int:
    """Tokens a request costs beyond its text (OpenAI's counting recipe)."""
    return PER_REQUEST + PER_MESSAGE * messages + IMAGE_TOKENS * images


def exact_prompt_tokens(prompt: Prompt, encoding: tiktoken.Encoding) -> int:
    """Every piece encoded: the reference the estimate is measured against."""
    return prompt.overhead + sum(len(encoding.encode_ordinary(p)) for p in prompt.pieces)


@dataclass(frozen=True)
class TokenEstimate:
    """Totals for a file; `total` is what counts against the enqueued-token quota."""

    prompt: int
    completion_budget: int
    total: int
    encoding: str
    method: str  # "exact" or "sampled" (the tokenizer's counts), or "approximate" (without it)
    sampled_requests: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class TokenEstimator:
    """Accumulates requests in file order; deterministic for a given file.

    Samples are counted at the end, in this process; but once more than `child_after_chars`
    of sample text has gathered and this process has not built the encoding yet, they are
    streamed to a `ChildCounter` process instead, which builds it while this one parses. A
    `child` given (started before the first line was read) takes them all from the start.
    With `approximate`, samples are measured in UTF-8 bytes here instead (see the module).
    """

    def __init__(
        self,
        encoding_name: str,
        warmup_chars: int = WARMUP_CHARS,
        step_chars: int = STEP_CHARS,
        sample_chars: int = SAMPLE_CHARS,
        child_after_chars: int = CHILD_AFTER_CHARS,
        child: ChildCounter | None = None,
        *,
        approximate: bool = False,
    ) -> None:
        if approximate and child is not None:
            raise ValueError("an approximate estimate counts no tokens: it takes no child")
        self.encoding_name = encoding_name
        self.approximate = approximate
        self._warmup = warmup_chars
        self._step = step_chars
        self._sample_chars = sample_chars
        self._child_after = child_after_chars
        self._overhead = 0
        self._completion = 0
        self._exact_chars = 0  # text counted in full
        self._scaled_chars = 0  # text past the warm-up, counted in characters
        self._next_mark = step_chars  # sample the line that reaches this many characters
        # per sample: (marks, 0 in the warm-up; chars encoded; chars of the line's text)
        self._weights: list[tuple[int, int, int]] = []
        self._pending: list[Sequence[str]] = []  # samples not handed to a child
        self._pending_chars = 0
        self._child = child  # a child started early (for a large file) takes every sample

    def add(self, prompt: Prompt) -> None:
        self._overhead += prompt.overhead
        self._completion += prompt.completion_budget
        chars = sum(map(len, prompt.pieces))
        if self._exact_chars < self._warmup:
            self._exact_chars += chars
            if chars > LONG_LINE_CHARS:  # encode its head only, scale it to the whole line
                head = _head(prompt.pieces, LONG_LINE_CHARS)
                self._sample(head, 0, sum(map(len, head)), chars)
            else:
                self._sample(prompt.pieces, 0, chars, chars)
            return
        self._scaled_chars += chars
        if self._scaled_chars >= self._next_mark:  # the line spans one or more marks
            marks = (self._scaled_chars - self._next_mark) // self._step + 1
            self._next_mark += marks * self._step
            head = _head(prompt.pieces, self._sample_chars)
            head_chars = sum(map(len, head))
            self._sample(head, marks, head_chars, head_chars)

    def _sample(self, pieces: Sequence[str], marks: int, chars: int, line_chars: int) -> None:
        self._weights.append((marks, chars, line_chars))
        if self._child is not None:
            self._child.submit(pieces)
            return
        self._pending.append(pieces)
        if self.approximate:
            return
        self._pending_chars += chars
        if self._pending_chars >= self._child_after and not encoding_loaded(self.encoding_name):
            from batching.tokens.child import ChildCounter

            self._child = ChildCounter(self.encoding_name)
            for waiting in self._pending:
                self._child.submit(waiting)
            self._pending = []

    def result(self) -> TokenEstimate:
        if self.approximate:
            counts = [_utf8_bytes(pieces) for pieces in self._pending]
        elif self._child is not None:
            counts = self._child.counts()
        else:
            encode = get_encoding(self.encoding_name).encode_ordinary
            counts = [sum(len(encode(p)) for p in pieces) for pieces in self._pending]
        text = marks_total = 0
        ratio_sum = 0.0
        for (marks, chars, line_chars), tokens in zip(self._weights, counts, strict=True):
            if not marks:
                text += tokens if chars == line_chars else round(tokens * line_chars / chars)
            elif chars:
                marks_total += marks
                ratio_sum += marks * tokens / chars
        if self._scaled_chars:  # scale by the marked lines' mean tokens per character
            ratio = ratio_sum / marks_total if marks_total else text / max(self._exact_chars, 1)
            text += round(self._scaled_chars * ratio)
        if self.approximate:  # bytes so far
            text = round(text / BYTES_PER_TOKEN)
        prompt = self._overhead + text
        return TokenEstimate(
            prompt=prompt,
            completion_budget=self._completion,
            total=prompt + self._completion,
            encoding=self.encoding_name,
            method=(
                "approximate" if self.approximate else "sampled" if self._scaled_chars else "exact"
            ),
            sampled_requests=len(self._weights),
        )


def _head(pieces: Sequence[str], budget: int) -> list[str]:
    """The first `budget` characters of the pieces: long lines are sampled by their start."""
    head: list[str] = []
    for piece in pieces:
        head.append(piece[:budget])
        budget -= len(head[-1])
        if budget <= 0:
            break
    return head


def _utf8_bytes(pieces: Sequence[str]) -> int:
    return sum(len(p.encode("utf-8", "surrogatepass")) for p in pieces)
