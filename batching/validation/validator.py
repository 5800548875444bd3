"""Streaming validation of a batch input file, in one pass and bounded memory.

The service validates a file only after upload and reports the first problems hours into a run;
this finds every problem (up to `max_problems` listed, all counted) before anything is uploaded,
and in the same pass estimates tokens and plans the split.

Problem codes: the service's own where it has one, else ours, each mapped to the closest service
code in `SERVICE_CODES`. Line 0 means the whole file. Blank (whitespace-only) lines are skipped
and counted, not errors; CRLF line ends are accepted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field

import orjson

from batching.jsonlines import LineTooLong, iter_bounded_lines
from batching.tokens.encoding import model_family
from batching.tokens.estimate import Prompt, TokenEstimate, TokenEstimator
from batching.validation import limits
from batching.validation.bodies import Columns, RequestError, check_chat, check_responses
from batching.validation.idindex import CustomIdIndex
from batching.validation.plan import Chunk, SplitPlanner

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: batchctl start-up
if TYPE_CHECKING:
    from typing import Any, Literal

    from batching.tokens.child import ChildCounter
    from batching.validation.fastpath import FileParser

# Our code -> the service code it corresponds to (service codes map to themselves).
SERVICE_CODES: dict[str, str] = {
    "invalid_json_line": "invalid_json_line",
    "bom": "invalid_json_line",  # a UTF-8 byte-order mark before the first line
    "invalid_utf8": "invalid_json_line",  # bytes that are not UTF-8
    "invalid_custom_id": "invalid_request",  # custom_id missing, not a string, or empty
    "duplicate_custom_id": "duplicate_custom_id",
    "invalid_method": "invalid_request",  # method is not "POST"
    "invalid_url": "invalid_request",  # not a batch endpoint
    "url_mismatch": "url_mismatch",
    "model_mismatch": "model_mismatch",
    "model_not_found": "model_not_found",
    "invalid_request": "invalid_request",  # body shape: model, messages/input, max_*tokens ...
    "invalid_schema": "invalid_request",  # a json_schema response format strict mode rejects
    "line_too_large": "invalid_request",  # over MAX_LINE_BYTES, or too big for any batch
    "empty_file": "empty_file",
}

ENDPOINTS = {
    "/chat/completions": check_chat,
    "/v1/chat/completions": check_chat,
    "/responses": check_responses,
    "/v1/responses": check_responses,
}
_BOM = b"\xef\xbb\xbf"
# Lines longer than this are refused unread (MAX_LINE_BYTES): what one line may cost in memory.
DEFAULT_MAX_LINE_BYTES = limits.MAX_LINE_BYTES
# From this line on, lines are tried on the typed fast path first (`batching.validation.fastpath`):
# importing msgspec costs about as much as the fast path saves on a thousand short lines. An
# input whose size (when known) says it has that many lines, at the length of its lines so far,
# takes the fast path at once: it would pay for the import anyway.
FAST_PATH_AFTER_LINES = 1000


@dataclass(frozen=True)
class ValidationOptions:
    """Limits and policy; the pipeline builds these from `Settings`."""

    max_requests_per_batch: int
    max_bytes_per_batch: int
    deployments: tuple[str, ...] = ()  # allowed deployments; empty: any
    invalid_lines: Literal["reject", "skip"] = "reject"
    max_problems: int = 1000
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES

    @property
    def line_limit(self) -> int:
        """The longest line accepted: MAX_LINE_BYTES, and short enough to fit in a batch."""
        return min(self.max_line_bytes, self.max_bytes_per_batch - 1)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ValidationOptions:
        return cls(**{**data, "deployments": tuple(data.get("deployments", ()))})


@dataclass
class Problem:
    """One invalid line (or, on line 0, the whole file)."""

    line: int
    code: str
    message: str
    custom_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"line": self.line, "code": self.code, "message": self.message}
        if self.custom_id is not None:
            data["custom_id"] = self.custom_id
        return data


@dataclass(slots=True)
class Request:
    """A line that passed the per-line checks."""

    custom_id: str
    url: str
    model: str
    prompt: Prompt
    columns: Columns


def check_line(number: int, raw: bytes) -> Request | Problem:
    """The rules one line must meet on its own (cross-line rules are `LineChecker`'s)."""
    try:
        return _request(raw)
    except RequestError as exc:
        return Problem(number, exc.code, exc.message, exc.custom_id)


def _request(raw: bytes) -> Request:
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise _not_json(raw, exc) from None
    if type(obj) is not dict:
        raise RequestError("the line is JSON but not an object {...}", "invalid_json_line")
    custom_id = obj.get("custom_id")
    if type(custom_id) is not str or not custom_id or custom_id.isspace():
        raise RequestError(
            f"custom_id must be a non-empty string that identifies the request, not {custom_id!r}",
            "invalid_custom_id",
        )
    if obj.get("method") != "POST":
        message = f'method must be "POST", not {obj.get("method")!r}'
        raise RequestError(message, "invalid_method", custom_id)
    url = obj.get("url")
    if type(url) is not str or (check := ENDPOINTS.get(url)) is None:
        raise RequestError(
            f"url must be one of {', '.join(ENDPOINTS)} (batch runs chat completions and "
            f"responses), not {url!r}",
            "invalid_url",
            custom_id,
        )
    body = obj.get("body")
    if type(body) is not dict:
        raise RequestError("body must be a JSON object", custom_id=custom_id)
    model = body.get("model")
    if type(model) is not str or not model:
        message = "body.model must name the Global Batch deployment to run the request on"
        raise RequestError(message, custom_id=custom_id)
    try:
        prompt, columns = check(body)
    except RequestError as exc:
        exc.custom_id = custom_id
        raise
    return Request(custom_id, url, model, prompt, columns)


def _not_json(raw: bytes, exc: orjson.JSONDecodeError) -> RequestError:
    """The most useful explanation of a line orjson rejected."""
    if raw.startswith(_BOM):
        return RequestError(
            "the line starts with a UTF-8 byte-order mark, which the service rejects: "
            "save the file as UTF-8 without BOM",
            "bom",
        )
    try:
        raw.decode()
    except UnicodeDecodeError as bad:
        return RequestError(
            f"byte {bad.start + 1} of the line is not UTF-8: re-encode the file as UTF-8",
            "invalid_utf8",
        )
    rest = raw[exc.pos : exc.pos + 9]
    if rest.startswith((b"NaN", b"Infinity", b"-Infinity")):
        hint = "NaN and Infinity are not JSON: use null or a number"
    else:
        hint = "each line must be one complete JSON object (escape line breaks in strings as \\n)"
    message = f"not valid JSON at column {exc.colno}: {exc.msg}; {hint}"
    return RequestError(message, "invalid_json_line")


class LineChecker:
    """All rules in file order: per-line, then url/model consistency and unique custom_ids.

    The first accepted line sets the url and the deployment the others must use. A line that
    fails is not recorded, so in skip mode the accepted lines are consistent among themselves.
    The splitter re-runs it to find the same lines.
    """

    def __init__(self, options: ValidationOptions, size_hint: int | None = None) -> None:
        self._size_hint = size_hint  # the input's bytes, when known
        self._bytes_seen = 0  # of the lines read before the fast path starts
        self._max_bytes = options.max_bytes_per_batch
        self._max_line = options.max_line_bytes
        self._deployments = options.deployments
        self._ids = CustomIdIndex()
        self.url: str | None = None
        self.model: str | None = None
        self._first_line = 0
        self._fast: FileParser | None = None

    def check(self, number: int, raw: bytes | LineTooLong) -> Request | Problem:
        size = raw.size if isinstance(raw, LineTooLong) else len(raw)
        if size > self._max_line:
            return Problem(
                number,
                "line_too_large",
                f"line {number} is {size} bytes, more than MAX_LINE_BYTES ({self._max_line}) "
                "allows: shorten the request (or raise MAX_LINE_BYTES, which costs memory)",
            )
        if isinstance(raw, LineTooLong) or size >= self._max_bytes:
            return Problem(
                number,
                "line_too_large",
                f"line {number} is {size} bytes, more than a batch may hold "
                f"({self._max_bytes}): shorten the request",
            )
        try:
            request = self._request(number, raw)
            self._consistent(number, request)
        except RequestError as exc:
            return Problem(number, exc.code, exc.message, exc.custom_id)
        return request

    def _request(self, number: int, raw: bytes) -> Request:
        """The fast path's request when it has one (the same as `_request`'s), else `_request`."""
        if self._fast is None and self._fast_from(number, len(raw)):
            from batching.validation.fastpath import FileParser

            self._fast = FileParser()
        if self._fast is not None:
            found = self._fast.parse(raw, self.url)
            if found is not None:
                return Request(*found)
        return _request(raw)

    def _fast_from(self, number: int, size: int) -> bool:
        """Whether the fast path starts at this line: FAST_PATH_AFTER_LINES, or a line from which
        the input's size and its lines so far say there will be that many lines."""
        if number >= FAST_PATH_AFTER_LINES:
            return True
        if self._size_hint is None:
            return False
        self._bytes_seen += size + 1
        return self._size_hint * number >= FAST_PATH_AFTER_LINES * self._bytes_seen

    def _consistent(self, number: int, request: Request) -> None:
        """The cross-line rules; the first line that passes them all sets url and deployment."""
        model, custom_id = request.model, request.custom_id
        if self._deployments and model not in self._deployments:
            raise RequestError(
                f"deployment {model!r} is not one of the allowed deployments "
                f"({', '.join(self._deployments)})",
                "model_not_found",
                custom_id,
            )
        if self.url is None:
            self.url, self.model, self._first_line = request.url, model, number
        elif request.url != self.url:
            raise RequestError(
                f"url {request.url!r} differs from {self.url!r} on line {self._first_line}: "
                "a batch runs one endpoint, put other endpoints in another file",
                "url_mismatch",
                custom_id,
            )
        elif model != self.model:
            raise RequestError(
                f"deployment {model!r} differs from {self.model!r} on line "
                f"{self._first_line}: a batch runs on one deployment, use another file",
                "model_mismatch",
                custom_id,
            )
        earlier = self._ids.add(custom_id, number)
        if earlier:
            raise RequestError(
                f"custom_id {custom_id!r} is already used on line {earlier} "
                f"(and again on line {number}): custom_ids must be unique in a file",
                "duplicate_custom_id",
                custom_id,
            )


@dataclass
class ValidationReport:
    """Everything the pipeline and `batchctl validate` report about a file."""

    valid: bool
    options: ValidationOptions
    requests: int  # accepted requests
    lines: int
    blank_lines: int  # skipped, not errors
    invalid_lines: int
    bytes: int
    problems: list[Problem]  # the first `max_problems`
    problem_counts: dict[str, int]  # every problem, by code
    endpoint: str | None
    deployment: str | None
    model_family: str | None
    tokens: TokenEstimate | None
    table_columns: list[str] | None  # json_schema top-level properties, first seen order
    split: list[Chunk] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["options"]["deployments"] = list(self.options.deployments)
        data["problems"] = [p.to_dict() for p in self.problems]
        data["encoding"] = self.tokens.encoding if self.tokens else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ValidationReport:
        """The inverse of `to_dict`, for activities that receive the report as JSON."""
        fields = {k: v for k, v in data.items() if k != "encoding"}
        fields["options"] = ValidationOptions.from_dict(data["options"])
        fields["problems"] = [Problem(**p) for p in data["problems"]]
        fields["tokens"] = TokenEstimate(**data["tokens"]) if data["tokens"] else None
        fields["split"] = [Chunk(**c) for c in data["split"]]
        return cls(**fields)


class _ByteCount:
    """Passes blocks through, counting their bytes."""

    def __init__(self, blocks: Iterable[bytes]) -> None:
        self._blocks = blocks
        self.total = 0

    def __iter__(self) -> Iterator[bytes]:
        for block in self._blocks:
            self.total += len(block)
            yield block


def validate(
    blocks: Iterable[bytes],
    options: ValidationOptions,
    *,
    size_hint: int | None = None,
    counter: ChildCounter | None = None,
    count_tokens: bool = True,
) -> ValidationReport:
    """Check every line, estimate tokens and plan the split, in one pass over `blocks`.

    `size_hint`, the input's size in bytes when known, lets an input of many lines take the fast
    path from its first (`FAST_PATH_AFTER_LINES`) and a large input's token counting start at
    once (`batching.tokens.child.early_counter`), or `counter` is such a child already started;
    either is stopped at the end. The report is the same with or without them.
    Without `count_tokens` the token estimate is approximate, made without the tokenizer
    (`batching.tokens.estimate`); nothing else in the report depends on it.
    """
    early = counter
    if early is None and size_hint is not None and count_tokens:
        from batching.tokens.child import early_counter

        early = early_counter(size_hint)
    try:
        checker = LineChecker(options, size_hint)
        return _validate(blocks, options, checker, early if count_tokens else None, count_tokens)
    finally:
        if early is not None:  # a no-op once the estimator has its counts
            early.close()


def _validate(
    blocks: Iterable[bytes],
    options: ValidationOptions,
    checker: LineChecker,
    early: ChildCounter | None,
    count_tokens: bool,
) -> ValidationReport:
    source = _ByteCount(blocks)
    planner = SplitPlanner(options.max_requests_per_batch, options.max_bytes_per_batch)
    estimator: TokenEstimator | None = None
    columns: dict[str, None] = {}  # an ordered set
    last_columns: Columns = None
    problems: list[Problem] = []
    counts: Counter[str] = Counter()
    lines = blank = 0
    # the last line number is the line count; over-long lines arrive unread, as LineTooLong
    for lines, raw in iter_bounded_lines(source, options.line_limit):
        if isinstance(raw, bytes) and (not raw or raw.isspace()):
            blank += 1
            continue
        result = checker.check(lines, raw)
        if isinstance(result, Problem):
            counts[result.code] += 1
            if len(problems) < options.max_problems:
                problems.append(result)
            continue
        assert isinstance(raw, bytes)  # a LineTooLong is always a Problem
        planner.add(lines, len(raw) + 1)
        del raw  # the parsed request is all that is needed of the line now
        if estimator is None:
            name = model_family(result.model)[1]
            child = early if early is not None and early.encoding_name == name else None
            estimator = TokenEstimator(name, child=child, approximate=not count_tokens)
        estimator.add(result.prompt)
        if result.columns is not last_columns and result.columns:
            last_columns = result.columns
            columns.update(dict.fromkeys(last_columns))
    invalid = sum(counts.values())
    requests = lines - blank - invalid
    if requests == 0 and (invalid == 0 or options.invalid_lines == "skip"):
        message = (
            f"no valid request: all {invalid} non-blank lines are invalid"
            if invalid
            else "the file has no requests (it is empty or only blank lines)"
        )
        counts["empty_file"] += 1
        if len(problems) < options.max_problems:
            problems.append(Problem(0, "empty_file", message))
    valid = requests > 0 and (options.invalid_lines == "skip" or invalid == 0)
    return ValidationReport(
        valid=valid,
        options=options,
        requests=requests,
        lines=lines,
        blank_lines=blank,
        invalid_lines=invalid,
        bytes=source.total,
        problems=problems,
        problem_counts=dict(counts),
        endpoint=checker.url,
        deployment=checker.model,
        model_family=model_family(checker.model)[0] if checker.model else None,
        tokens=estimator.result() if estimator else None,
        table_columns=list(columns) if columns else None,
        split=planner.plan() if valid else [],
    )
