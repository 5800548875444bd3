"""Every setting the app reads, declared once, parsed and validated in one place.

Each setting is one row: the field of the typed settings object it fills, its app-setting name
(the name Bicep writes and local.settings.json holds; infra/ is checked against `SETTINGS` by a
test), its default, its parser, and its help text. `Settings.from_env` reads them, `SETTINGS`
lists them, the docs' settings table is generated from them (`python -m batching.settings`,
checked by a test), and the group of rows that orchestrators need is `RunConfig`, passed to them
as input. A missing or malformed setting raises `SettingsError`, which names it.
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import orjson

from batching.validation import limits


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names it."""


Parser = Callable[[str], Any]  # raises ValueError("<what it must be>, not <the value>")


@dataclass(frozen=True)
class Setting:
    """One app setting: its name, default, parser, whether it must be set, and what it means."""

    name: str
    help: str
    default: str | None = None
    required: bool = False
    secret: bool = False
    parse: Parser | None = None  # None: the text itself, or None when unset

    def read(self, env: Mapping[str, str]) -> Any:
        raw = (env.get(self.name) or "").strip() or (self.default or "")
        if not raw and self.required:
            raise SettingsError(f"{self.name} must be set: {self.help}")
        if self.parse is None:
            return raw or None
        try:
            return self.parse(raw)
        except ValueError as exc:
            raise SettingsError(f"{self.name} must be {exc}") from None


def _setting(name: str, help: str, default: str | None = None, **kw: Any) -> Any:
    """A dataclass field filled from the app setting `name`."""
    return field(metadata={"setting": Setting(name, help, default, **kw)})


def _group(cls: type[Any]) -> Any:
    """A dataclass field filled with a group of settings (a dataclass of `_setting` fields)."""
    return field(metadata={"group": cls})


# --- parsers: each raises ValueError("<what the value must be>, not <the value>") -------------


def whole(minimum: int, maximum: int | None = None) -> Parser:
    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise ValueError(f"a whole number, not {raw!r}") from None
        if value < minimum:
            raise ValueError(f"at least {minimum}, not {value}")
        if maximum is not None and value > maximum:
            raise ValueError(f"at most {maximum}, not {value}")
        return value

    return parse


def fraction(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"a number, not {raw!r}") from None
    if not 0 <= value <= 1:
        raise ValueError(f"between 0 and 1, not {value}")
    return value


def boolean(raw: str) -> bool:
    lowered = raw.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no", ""):
        return False
    raise ValueError(f"true or false, not {lowered!r}")


def choice(*options: str) -> Parser:
    def parse(raw: str) -> str:
        if raw not in options:
            raise ValueError(" or ".join(f"'{o}'" for o in options) + f", not {raw!r}")
        return raw

    return parse


def text(raw: str) -> str:
    return raw


def names(raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def endpoint(raw: str) -> str:
    return raw.rstrip("/")


V1_API = "v1"
# The first dated api-version that takes input_blob / output_folder.
BLOB_MIN_API_VERSION = "2025-04-01-preview"
MODE_MAX_BYTES = limits.MODE_MAX_BYTES
MIN_BYTES_PER_BATCH = 1024
# Each attempt of a chunk round is a property of its ledger entity (an entity holds 252
# properties and 1 MiB), so attempts are bounded well below that.
QUOTA_RETRY_ATTEMPTS_MAX = 50


def api_version(raw: str) -> str:
    if raw == V1_API or re.fullmatch(r"\d{4}-\d{2}-\d{2}(-preview)?", raw):
        return raw
    raise ValueError(f"'{V1_API}' or a dated version like {BLOB_MIN_API_VERSION}, not {raw!r}")


# Standard (non-batch) list prices, USD per 1M tokens; MODEL_PRICES overrides or extends them.
DEFAULT_PRICES: dict[str, dict[str, float]] = {
    "gpt-4o": {"input": 2.50, "output": 10.00},
    "gpt-4o-mini": {"input": 0.15, "output": 0.60},
    "gpt-4.1": {"input": 2.00, "output": 8.00},
    "gpt-4.1-mini": {"input": 0.40, "output": 1.60},
    "gpt-4.1-nano": {"input": 0.10, "output": 0.40},
    "o3-mini": {"input": 1.10, "output": 4.40},
    "o4-mini": {"input": 1.10, "output": 4.40},
    "gpt-5": {"input": 1.25, "output": 10.00},
    "gpt-5-mini": {"input": 0.25, "output": 2.00},
}


def prices(raw: str) -> dict[str, dict[str, float]]:
    merged = dict(DEFAULT_PRICES)
    if not raw:
        return merged
    try:
        parsed = orjson.loads(raw)
        merged.update(
            {
                str(model): {"input": float(p["input"]), "output": float(p["output"])}
                for model, p in parsed.items()
            }
        )
    except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError, ValueError):
        raise ValueError('JSON like {"gpt-4o": {"input": 2.5, "output": 10}}') from None
    return merged


# --- the settings ------------------------------------------------------------------------------

# The connection name of the data storage account (input, output, errors and work containers).
# Locally `BATCH_STORAGE` holds a connection string; in Azure, identity-based settings
# `BATCH_STORAGE__blobServiceUri` (+ `__credential`, `__clientId`) are used instead.
STORAGE_CONNECTION = "BATCH_STORAGE"


@dataclass(frozen=True)
class StorageConfig:
    """How to reach the data storage account: a connection string or an identity-based URI."""

    connection_string: str | None = _setting(
        STORAGE_CONNECTION, "data storage: a connection string (local)", secret=True
    )
    blob_service_uri: str | None = _setting(
        f"{STORAGE_CONNECTION}__blobServiceUri", "data storage blob endpoint (identity-based)"
    )
    dfs_service_uri: str | None = _setting(
        f"{STORAGE_CONNECTION}__dfsServiceUri", "Data Lake endpoint when the account has HNS"
    )
    table_service_uri: str | None = _setting(
        f"{STORAGE_CONNECTION}__tableServiceUri",
        "data storage table endpoint (runs index and ledgers)",
    )
    client_id: str | None = _setting(
        f"{STORAGE_CONNECTION}__clientId",
        "client id of the identity used for storage (default: AZURE_CLIENT_ID)",
    )
    hierarchical_namespace: bool = _setting(
        "STORAGE_HIERARCHICAL_NAMESPACE", "true when the data account is ADLS Gen2", "false",
        parse=boolean,
    )  # fmt: skip


@dataclass(frozen=True)
class RunConfig:
    """The settings orchestrators need, passed in their input (they must not read the env)."""

    poll_initial_seconds: int = _setting(
        "POLL_INITIAL_SECONDS", "first batch status check after creation", "60", parse=whole(1)
    )
    poll_max_seconds: int = _setting(
        "POLL_MAX_SECONDS",
        "cap of the growing interval between status checks",
        "600",
        parse=whole(1),
    )
    polls_per_history: int = _setting(
        "POLLS_PER_HISTORY",
        "status checks in one orchestration history: then it continues as new (each episode "
        "replays its history)",
        "1",
        parse=whole(1),
    )
    quota_retry_initial_seconds: int = _setting(
        "QUOTA_RETRY_INITIAL_SECONDS",
        "first wait after token_limit_exceeded",
        "300",
        parse=whole(1),
    )
    quota_retry_max_seconds: int = _setting(
        "QUOTA_RETRY_MAX_SECONDS",
        "cap of the backoff after token_limit_exceeded",
        "3600",
        parse=whole(1),
    )
    quota_retry_attempts: int = _setting(
        "QUOTA_RETRY_ATTEMPTS",
        f"token_limit_exceeded retries before the run fails (at most {QUOTA_RETRY_ATTEMPTS_MAX})",
        "12",
        parse=whole(0, QUOTA_RETRY_ATTEMPTS_MAX),
    )
    max_active_batches: int = _setting(
        "MAX_ACTIVE_BATCHES",
        "batches in flight at once across all runs; 0: no limit",
        "0",
        parse=whole(0),
    )
    max_enqueued_tokens: int = _setting(
        "MAX_ENQUEUED_TOKENS",
        "estimated tokens in flight per deployment; 0: no limit",
        "0",
        parse=whole(0),
    )
    admission_wait_seconds: int = _setting(
        "ADMISSION_WAIT_SECONDS",
        "how often a run waiting for admission asks again",
        "60",
        parse=whole(1),
    )
    resubmit_rounds: int = _setting(
        "RESUBMIT_ROUNDS", "rounds of resubmitting retryable failed requests", "2", parse=whole(0)
    )
    activity_retry_attempts: int = _setting(
        "ACTIVITY_RETRY_ATTEMPTS",
        "attempts of an activity on transient errors",
        "5",
        parse=whole(1),
    )
    activity_retry_seconds: int = _setting(
        "ACTIVITY_RETRY_SECONDS", "first wait between activity attempts", "5", parse=whole(1)
    )

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunConfig:
        return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls)})


@dataclass(frozen=True)
class Settings:
    """The validated settings; build with `Settings.from_env()`."""

    openai_endpoint: str = _setting(
        "AZURE_OPENAI_ENDPOINT",
        "Azure OpenAI endpoint, https://NAME.openai.azure.com",
        required=True,
        parse=endpoint,
    )
    openai_api_key: str | None = _setting(
        "AZURE_OPENAI_API_KEY",
        "API key; leave unset in Azure to use managed identity",
        secret=True,
    )
    openai_api_version: str = _setting(
        "AZURE_OPENAI_API_VERSION",
        "'v1': the v1 API (/openai/v1/, no api-version); or a dated api-version, e.g. "
        f"{BLOB_MIN_API_VERSION} (blob mode needs that one or later)",
        V1_API,
        parse=api_version,
    )
    batch_mode: Literal["blob", "files"] = _setting(
        "AZURE_OPENAI_BATCH_MODE",
        "'blob': the service reads each staged chunk from the work container and writes its "
        "outputs to SERVICE_OUTPUT_CONTAINER; 'files': chunks go up and outputs come down "
        "through the Files API (for accounts the service cannot reach)",
        "blob",
        parse=choice("blob", "files"),
    )
    deployments: tuple[str, ...] = _setting(
        "AZURE_OPENAI_DEPLOYMENTS",
        "comma-separated deployment names files may use; empty: any",
        parse=names,
    )
    client_id: str | None = _setting(
        "AZURE_CLIENT_ID", "client id of the user-assigned managed identity (Azure only)"
    )
    storage: StorageConfig = _group(StorageConfig)
    input_container: str = _setting(
        "INPUT_CONTAINER", "container watched for *.jsonl files", "batch-input", parse=text
    )
    output_container: str = _setting(
        "OUTPUT_CONTAINER", "container run folders are written to", "batch-output", parse=text
    )
    error_container: str = _setting(
        "ERROR_CONTAINER", "container rejected inputs are moved to", "batch-errors", parse=text
    )
    work_container: str = _setting(
        "WORK_CONTAINER", "container for chunks and intermediate files", "batch-work", parse=text
    )
    service_output_container: str = _setting(
        "SERVICE_OUTPUT_CONTAINER",
        "container the service writes its output folders to in blob mode (emptied by each run)",
        "batch-service-output",
        parse=text,
    )
    runs_table: str = _setting(
        "RUNS_TABLE",
        "table of the data account that indexes runs (newest first) and keeps their ledgers",
        "runs",
        parse=text,
    )
    run: RunConfig = _group(RunConfig)
    max_requests_per_batch: int = _setting(
        "MAX_REQUESTS_PER_BATCH",
        "split files with more requests than this",
        str(limits.MAX_REQUESTS_PER_BATCH),
        parse=whole(1),
    )
    max_bytes_per_batch: int = _setting(
        "MAX_BYTES_PER_BATCH",
        "split files larger than this many bytes; 0: the mode's service limit "
        f"({MODE_MAX_BYTES['files']:,} in files mode, {MODE_MAX_BYTES['blob']:,} in blob mode)",
        "0",
        parse=whole(0),
    )
    max_line_bytes: int = _setting(
        "MAX_LINE_BYTES",
        "reject lines longer than this many bytes (bounds memory per line)",
        str(limits.MAX_LINE_BYTES),
        parse=whole(1024),
    )
    invalid_lines: Literal["reject", "skip"] = _setting(
        "INVALID_LINES",
        "'reject' the file or 'skip' invalid lines",
        limits.INVALID_LINES,
        parse=choice("reject", "skip"),
    )
    file_expiry_seconds: int = _setting(
        "FILE_EXPIRY_SECONDS",
        "expires_after for uploaded files and outputs",
        "1209600",
        parse=whole(0),
    )
    reconcile_grace_seconds: int = _setting(
        "RECONCILE_GRACE_SECONDS",
        "age before an unstarted input counts as missed",
        "300",
        parse=whole(0),
    )
    model_prices: dict[str, dict[str, float]] = _setting(
        "MODEL_PRICES",
        "JSON {model: {input, output}} USD per 1M tokens at standard prices",
        parse=prices,
    )
    batch_discount: float = _setting(
        "BATCH_DISCOUNT",
        "fraction of the standard price batch requests cost",
        "0.5",
        parse=fraction,
    )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read every setting from `env` (default: the process environment)."""
        env = os.environ if env is None else env
        settings = cast(Settings, _read(cls, env))
        storage = settings.storage
        if not storage.connection_string and not storage.blob_service_uri:
            raise SettingsError(
                f"{STORAGE_CONNECTION} (a connection string) or "
                f"{STORAGE_CONNECTION}__blobServiceUri (identity-based) must be set"
            )
        if not storage.connection_string and not storage.table_service_uri:
            raise SettingsError(
                f"{STORAGE_CONNECTION}__tableServiceUri must be set with an identity-based "
                "account: the runs table holds the runs index and the ledgers"
            )
        if storage.client_id is None and settings.client_id:
            settings = dataclasses.replace(
                settings, storage=dataclasses.replace(storage, client_id=settings.client_id)
            )
        if settings.run.poll_max_seconds < settings.run.poll_initial_seconds:
            raise SettingsError("POLL_MAX_SECONDS must be at least POLL_INITIAL_SECONDS")
        return _mode_limits(settings)

    @property
    def containers(self) -> tuple[str, ...]:
        """The data containers: input, output, errors, work and, in blob mode, the service's
        output (Bicep creates them in Azure)."""
        names = (
            self.input_container,
            self.output_container,
            self.error_container,
            self.work_container,
        )
        return (*names, self.service_output_container) if self.blob_mode else names

    @property
    def blob_mode(self) -> bool:
        return self.batch_mode == "blob"

    @property
    def v1_api(self) -> bool:
        return self.openai_api_version == V1_API

    def orchestration_config(self) -> dict[str, Any]:
        """What orchestrators need, as the JSON their input carries (`RunConfig.from_json`)."""
        return self.run.to_json()


def _mode_limits(settings: Settings) -> Settings:
    """Checks and defaults that depend on the batch mode (the service's limits differ)."""
    limit = MODE_MAX_BYTES[settings.batch_mode]
    if settings.max_bytes_per_batch > limit:
        raise SettingsError(
            f"MAX_BYTES_PER_BATCH must be at most {limit:,} in {settings.batch_mode} mode "
            f"(the service's limit), not {settings.max_bytes_per_batch:,}"
        )
    if 0 < settings.max_bytes_per_batch < MIN_BYTES_PER_BATCH:
        raise SettingsError(
            f"MAX_BYTES_PER_BATCH must be 0 or at least {MIN_BYTES_PER_BATCH}, "
            f"not {settings.max_bytes_per_batch}"
        )
    dated = not settings.v1_api
    if settings.blob_mode and dated and settings.openai_api_version < BLOB_MIN_API_VERSION:
        raise SettingsError(
            f"AZURE_OPENAI_API_VERSION must be {V1_API!r} or {BLOB_MIN_API_VERSION} or later "
            f"in blob mode, not {settings.openai_api_version!r}"
        )
    if not settings.max_bytes_per_batch:
        settings = dataclasses.replace(settings, max_bytes_per_batch=limit)
    return settings


def _read(cls: type[Any], env: Mapping[str, str]) -> Any:
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if "group" in f.metadata:
            values[f.name] = _read(f.metadata["group"], env)
        else:
            values[f.name] = f.metadata["setting"].read(env)
    return cls(**values)


def _rows(cls: type[Any]) -> list[Setting]:
    rows: list[Setting] = []
    for f in dataclasses.fields(cls):
        rows += _rows(f.metadata["group"]) if "group" in f.metadata else [f.metadata["setting"]]
    return rows


# Read by the Functions host, not by the app's code: still app settings Bicep must write.
HOST_READ: tuple[Setting, ...] = (
    Setting(f"{STORAGE_CONNECTION}__credential", "'managedidentity' for identity-based storage"),
    Setting("RECONCILE_SCHEDULE", "NCRONTAB of the missed-event reconciliation", "0 */10 * * * *"),
)

SETTINGS: tuple[Setting, ...] = (*_rows(Settings), *HOST_READ)


def markdown_table() -> str:
    """The docs' settings table, generated from `SETTINGS` (docs/configuration.md holds it)."""
    lines = ["| setting | default | what it does |", "|---|---|---|"]
    for s in SETTINGS:
        default = "**required**" if s.required else (f"`{s.default}`" if s.default else "-")
        lines.append(f"| `{s.name}` | {default} | {s.help} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(markdown_table())
