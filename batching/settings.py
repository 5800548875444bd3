"""Every setting the app reads, parsed and validated in one place.

The names are the app settings Bicep writes (infra/ is checked against `SETTINGS` by a test)
and the keys of local.settings.json. A missing or malformed setting raises `SettingsError`,
which names it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names it."""


@dataclass(frozen=True)
class Setting:
    """One app setting: its name, whether it must be set, and what it means."""

    name: str
    help: str
    default: str | None = None
    required: bool = False
    secret: bool = False


# The connection name of the data storage account (input, output, errors and work containers).
# Locally `BATCH_STORAGE` holds a connection string; in Azure, identity-based settings
# `BATCH_STORAGE__blobServiceUri` (+ `__credential`, `__clientId`) are used instead.
STORAGE_CONNECTION = "BATCH_STORAGE"

SETTINGS: tuple[Setting, ...] = (
    Setting(
        "AZURE_OPENAI_ENDPOINT",
        "Azure OpenAI endpoint, https://NAME.openai.azure.com",
        required=True,
    ),
    Setting(
        "AZURE_OPENAI_API_KEY", "API key; leave unset in Azure to use managed identity", secret=True
    ),
    Setting(
        "AZURE_OPENAI_API_VERSION",
        "data-plane API version that supports batch",
        "2025-04-01-preview",
    ),
    Setting(
        "AZURE_OPENAI_DEPLOYMENTS", "comma-separated deployment names files may use; empty: any"
    ),
    Setting("AZURE_CLIENT_ID", "client id of the user-assigned managed identity (Azure only)"),
    Setting(STORAGE_CONNECTION, "data storage: a connection string (local)", secret=True),
    Setting(f"{STORAGE_CONNECTION}__blobServiceUri", "data storage blob endpoint (identity-based)"),
    Setting(f"{STORAGE_CONNECTION}__dfsServiceUri", "Data Lake endpoint when the account has HNS"),
    Setting(f"{STORAGE_CONNECTION}__credential", "'managedidentity' for identity-based storage"),
    Setting(f"{STORAGE_CONNECTION}__clientId", "client id of the identity used for storage"),
    Setting("STORAGE_HIERARCHICAL_NAMESPACE", "true when the data account is ADLS Gen2", "false"),
    Setting("INPUT_CONTAINER", "container watched for *.jsonl files", "batch-input"),
    Setting("OUTPUT_CONTAINER", "container run folders are written to", "batch-output"),
    Setting("ERROR_CONTAINER", "container rejected inputs are moved to", "batch-errors"),
    Setting("WORK_CONTAINER", "container for chunks and intermediate files", "batch-work"),
    Setting("POLL_INITIAL_SECONDS", "first batch status check after creation", "60"),
    Setting("POLL_MAX_SECONDS", "cap of the growing interval between status checks", "600"),
    Setting("POLLS_PER_HISTORY", "status checks before the watcher continues as new", "20"),
    Setting("MAX_REQUESTS_PER_BATCH", "split files with more requests than this", "100000"),
    Setting("MAX_BYTES_PER_BATCH", "split files larger than this many bytes", "200000000"),
    Setting(
        "MAX_LINE_BYTES",
        "reject lines longer than this many bytes (bounds memory per line)",
        "20000000",
    ),
    Setting("INVALID_LINES", "'reject' the file or 'skip' invalid lines", "reject"),
    Setting("FILE_EXPIRY_SECONDS", "expires_after for uploaded files and outputs", "1209600"),
    Setting("QUOTA_RETRY_INITIAL_SECONDS", "first wait after token_limit_exceeded", "300"),
    Setting("QUOTA_RETRY_MAX_SECONDS", "cap of the backoff after token_limit_exceeded", "3600"),
    Setting("QUOTA_RETRY_ATTEMPTS", "token_limit_exceeded retries before the run fails", "12"),
    Setting("MAX_ACTIVE_BATCHES", "batches in flight at once across all runs; 0: no limit", "0"),
    Setting("MAX_ENQUEUED_TOKENS", "estimated tokens in flight per deployment; 0: no limit", "0"),
    Setting("ADMISSION_WAIT_SECONDS", "how often a run waiting for admission asks again", "60"),
    Setting("RESUBMIT_ROUNDS", "rounds of resubmitting retryable failed requests", "2"),
    Setting("ACTIVITY_RETRY_ATTEMPTS", "attempts of an activity on transient errors", "5"),
    Setting("ACTIVITY_RETRY_SECONDS", "first wait between activity attempts", "5"),
    Setting("RECONCILE_SCHEDULE", "NCRONTAB of the missed-event reconciliation", "0 */10 * * * *"),
    Setting("RECONCILE_GRACE_SECONDS", "age before an unstarted input counts as missed", "300"),
    Setting("MODEL_PRICES", "JSON {model: {input, output}} USD per 1M tokens at standard prices"),
    Setting("BATCH_DISCOUNT", "fraction of the standard price batch requests cost", "0.5"),
)

_BY_NAME = {s.name: s for s in SETTINGS}

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


@dataclass(frozen=True)
class StorageConfig:
    """How to reach the data storage account: a connection string or an identity-based URI."""

    connection_string: str | None
    blob_service_uri: str | None
    dfs_service_uri: str | None
    client_id: str | None
    hierarchical_namespace: bool


@dataclass(frozen=True)
class Settings:
    """The validated settings; build with `Settings.from_env()`."""

    openai_endpoint: str
    openai_api_key: str | None
    openai_api_version: str
    deployments: tuple[str, ...]
    client_id: str | None
    storage: StorageConfig
    input_container: str
    output_container: str
    error_container: str
    work_container: str
    poll_initial_seconds: int
    poll_max_seconds: int
    polls_per_history: int
    max_requests_per_batch: int
    max_bytes_per_batch: int
    max_line_bytes: int
    invalid_lines: Literal["reject", "skip"]
    file_expiry_seconds: int
    quota_retry_initial_seconds: int
    quota_retry_max_seconds: int
    quota_retry_attempts: int
    max_active_batches: int
    max_enqueued_tokens: int
    admission_wait_seconds: int
    resubmit_rounds: int
    activity_retry_attempts: int
    activity_retry_seconds: int
    reconcile_grace_seconds: int
    model_prices: dict[str, dict[str, float]] = field(default_factory=dict)
    batch_discount: float = 0.5

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read every setting from `env` (default: the process environment)."""
        r = _Reader(os.environ if env is None else env)
        conn = r.text(STORAGE_CONNECTION)
        blob_uri = r.text(f"{STORAGE_CONNECTION}__blobServiceUri")
        if not conn and not blob_uri:
            raise SettingsError(
                f"{STORAGE_CONNECTION} (a connection string) or "
                f"{STORAGE_CONNECTION}__blobServiceUri (identity-based) must be set"
            )
        invalid = r.text("INVALID_LINES")
        if invalid not in ("reject", "skip"):
            raise SettingsError(f"INVALID_LINES must be 'reject' or 'skip', not {invalid!r}")
        prices = dict(DEFAULT_PRICES)
        prices.update(r.prices("MODEL_PRICES"))
        settings = cls(
            openai_endpoint=r.required("AZURE_OPENAI_ENDPOINT").rstrip("/"),
            openai_api_key=r.text("AZURE_OPENAI_API_KEY") or None,
            openai_api_version=r.text("AZURE_OPENAI_API_VERSION"),
            deployments=tuple(
                d.strip() for d in r.text("AZURE_OPENAI_DEPLOYMENTS").split(",") if d.strip()
            ),
            client_id=r.text("AZURE_CLIENT_ID") or None,
            storage=StorageConfig(
                connection_string=conn or None,
                blob_service_uri=blob_uri or None,
                dfs_service_uri=r.text(f"{STORAGE_CONNECTION}__dfsServiceUri") or None,
                client_id=r.text(f"{STORAGE_CONNECTION}__clientId")
                or r.text("AZURE_CLIENT_ID")
                or None,
                hierarchical_namespace=r.boolean("STORAGE_HIERARCHICAL_NAMESPACE"),
            ),
            input_container=r.text("INPUT_CONTAINER"),
            output_container=r.text("OUTPUT_CONTAINER"),
            error_container=r.text("ERROR_CONTAINER"),
            work_container=r.text("WORK_CONTAINER"),
            poll_initial_seconds=r.integer("POLL_INITIAL_SECONDS", minimum=1),
            poll_max_seconds=r.integer("POLL_MAX_SECONDS", minimum=1),
            polls_per_history=r.integer("POLLS_PER_HISTORY", minimum=1),
            max_requests_per_batch=r.integer("MAX_REQUESTS_PER_BATCH", minimum=1),
            max_bytes_per_batch=r.integer("MAX_BYTES_PER_BATCH", minimum=1024),
            max_line_bytes=r.integer("MAX_LINE_BYTES", minimum=1024),
            invalid_lines="skip" if invalid == "skip" else "reject",
            file_expiry_seconds=r.integer("FILE_EXPIRY_SECONDS", minimum=0),
            quota_retry_initial_seconds=r.integer("QUOTA_RETRY_INITIAL_SECONDS", minimum=1),
            quota_retry_max_seconds=r.integer("QUOTA_RETRY_MAX_SECONDS", minimum=1),
            quota_retry_attempts=r.integer("QUOTA_RETRY_ATTEMPTS", minimum=0),
            max_active_batches=r.integer("MAX_ACTIVE_BATCHES", minimum=0),
            max_enqueued_tokens=r.integer("MAX_ENQUEUED_TOKENS", minimum=0),
            admission_wait_seconds=r.integer("ADMISSION_WAIT_SECONDS", minimum=1),
            resubmit_rounds=r.integer("RESUBMIT_ROUNDS", minimum=0),
            activity_retry_attempts=r.integer("ACTIVITY_RETRY_ATTEMPTS", minimum=1),
            activity_retry_seconds=r.integer("ACTIVITY_RETRY_SECONDS", minimum=1),
            reconcile_grace_seconds=r.integer("RECONCILE_GRACE_SECONDS", minimum=0),
            model_prices=prices,
            batch_discount=r.fraction("BATCH_DISCOUNT"),
        )
        if settings.poll_max_seconds < settings.poll_initial_seconds:
            raise SettingsError("POLL_MAX_SECONDS must be at least POLL_INITIAL_SECONDS")
        return settings

    @property
    def containers(self) -> tuple[str, str, str, str]:
        """The data containers: input, output, errors, work (Bicep creates them in Azure)."""
        return (
            self.input_container,
            self.output_container,
            self.error_container,
            self.work_container,
        )

    def orchestration_config(self) -> dict[str, Any]:
        """What orchestrators need, passed as input: orchestrators must not read the environment."""
        return {
            "poll_initial_seconds": self.poll_initial_seconds,
            "poll_max_seconds": self.poll_max_seconds,
            "polls_per_history": self.polls_per_history,
            "quota_retry_initial_seconds": self.quota_retry_initial_seconds,
            "quota_retry_max_seconds": self.quota_retry_max_seconds,
            "quota_retry_attempts": self.quota_retry_attempts,
            "max_active_batches": self.max_active_batches,
            "max_enqueued_tokens": self.max_enqueued_tokens,
            "admission_wait_seconds": self.admission_wait_seconds,
            "resubmit_rounds": self.resubmit_rounds,
            "activity_retry_attempts": self.activity_retry_attempts,
            "activity_retry_seconds": self.activity_retry_seconds,
        }


class _Reader:
    """Looks settings up with their defaults and converts them, naming the setting on failure."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def text(self, name: str) -> str:
        value = self._env.get(name)
        if value is None or value.strip() == "":
            return _BY_NAME[name].default or ""
        return value.strip()

    def required(self, name: str) -> str:
        value = self.text(name)
        if not value:
            raise SettingsError(f"{name} must be set: {_BY_NAME[name].help}")
        return value

    def _convert(self, name: str, convert: Callable[[str], Any], what: str) -> Any:
        raw = self.text(name)
        try:
            return convert(raw)
        except ValueError:
            raise SettingsError(f"{name} must be {what}, not {raw!r}") from None

    def integer(self, name: str, minimum: int) -> int:
        value: int = self._convert(name, int, "a whole number")
        if value < minimum:
            raise SettingsError(f"{name} must be at least {minimum}, not {value}")
        return value

    def fraction(self, name: str) -> float:
        value: float = self._convert(name, float, "a number")
        if not 0 <= value <= 1:
            raise SettingsError(f"{name} must be between 0 and 1, not {value}")
        return value

    def boolean(self, name: str) -> bool:
        raw = self.text(name).lower()
        if raw in ("true", "1", "yes"):
            return True
        if raw in ("false", "0", "no", ""):
            return False
        raise SettingsError(f"{name} must be true or false, not {raw!r}")

    def prices(self, name: str) -> dict[str, dict[str, float]]:
        raw = self.text(name)
        if not raw:
            return {}
        try:
            parsed = orjson.loads(raw)
            return {
                str(model): {"input": float(p["input"]), "output": float(p["output"])}
                for model, p in parsed.items()
            }
        except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError, ValueError):
            raise SettingsError(
                f'{name} must be JSON like {{"gpt-4o": {{"input": 2.5, "output": 10}}}}'
            ) from None
