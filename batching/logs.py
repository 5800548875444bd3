"""Structured run logs: every line names its run, in the text and as a field.

The run id and the fields go into the message as `key=value` (Application Insights keeps the
message of a Python log whatever the exporter) and into the record's `extra` (custom dimensions
where an OpenTelemetry exporter is configured). Only counts, ids, states and sizes are logged:
never request bodies, answers, file contents, keys or connection strings.
"""

from __future__ import annotations

import logging
from typing import Any

# Attributes of a LogRecord, which `extra` may not overwrite.
_RESERVED = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


def _text(value: Any) -> str:
    text = str(value)
    return f'"{text}"' if " " in text or not text else text


def event(
    logger: logging.Logger, message: str, run_id: str, /, level: int = logging.INFO, **fields: Any
) -> None:
    """Log `message run_id=... key=value ...` with the same fields as the record's extra."""
    if not logger.isEnabledFor(level):
        return
    pairs = " ".join(f"{k}={_text(v)}" for k, v in fields.items() if v is not None)
    logger.log(
        level,
        "%s run_id=%s%s",
        message,
        run_id,
        f" {pairs}" if pairs else "",
        extra={
            "run_id": run_id,
            **{k if k not in _RESERVED else f"{k}_": v for k, v in fields.items()},
        },
    )
