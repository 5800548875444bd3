"""The real durable backends' size and naming limits, enforced by the local host.

What Azure refuses must fail here first, so each limit below is the real one, with its source:

- Custom status: the Durable extension serializes it with a 16 KB cap measured in UTF-16 (the
  way Azure Storage stores strings), `(int)(UTF-16 bytes / 1024) > 16` failing the orchestration
  with "The UTF-16 size of the JSON-serialized payload must not exceed 16 KB. ..."
  (azure-functions-durable-extension, `MessagePayloadDataConverter.Serialize(value, maxSizeInKB)`
  called from `SetCustomStatus` with `MaxCustomStatusPayloadSizeInKB = 16`).
- Inputs and outputs of orchestrations and activities: the Durable Task Scheduler carries each
  in a message of at most 1 MiB (Microsoft Learn, "Large payload support with Durable Task
  Scheduler": payloads over the scheduler's message size limit need blob offload, which only
  .NET offers). The Azure Storage backend would offload larger ones to blobs; the app stays under
  the stricter limit so that either backend runs it.
- Instance ids: at most 256 characters, none of `/ \\ # ?` nor control characters (they are
  Azure Table keys in the Azure Storage backend), and no leading `@` (reserved for entities)
  (azure-functions-durable-extension, `DurableClient`: `MaxInstanceIdLength = 256`; Azure Table
  service, "Understanding the Table service data model": characters disallowed in key fields).
"""

from __future__ import annotations

import unicodedata

CUSTOM_STATUS_MAX_KB = 16
PAYLOAD_MAX_BYTES = 1024 * 1024
INSTANCE_ID_MAX_CHARS = 256
_ID_FORBIDDEN = frozenset("/\\#?")


class LimitError(ValueError):
    """A payload or id that the real backend would refuse."""


def utf16_bytes(text: str) -> int:
    return len(text.encode("utf-16-le", "surrogatepass"))


def check_custom_status(serialized: str) -> int:
    """Its UTF-16 size; fails as the extension does when over 16 KB of UTF-16."""
    size = utf16_bytes(serialized)
    size_kb = size // 1024
    if size_kb > CUSTOM_STATUS_MAX_KB:
        raise LimitError(
            f"The UTF-16 size of the JSON-serialized payload must not exceed "
            f"{CUSTOM_STATUS_MAX_KB} KB. The current payload size is {size_kb:,} KB."
        )
    return size


def check_payload(what: str, serialized: str | None) -> int:
    """Its size in bytes; fails when it would not fit in one Durable Task Scheduler message."""
    if serialized is None:
        return 0
    size = len(serialized.encode("utf-8", "surrogatepass"))
    if size > PAYLOAD_MAX_BYTES:
        raise LimitError(
            f"The {what} is {size:,} bytes of JSON; the Durable Task Scheduler carries at most "
            f"{PAYLOAD_MAX_BYTES:,} bytes per message. Pass a blob reference instead."
        )
    return size


def check_instance_id(instance_id: str) -> None:
    """Fail for an instance id that either backend would refuse."""
    if not instance_id or len(instance_id) > INSTANCE_ID_MAX_CHARS:
        raise LimitError(
            f"Instance ID lengths must be between 1 and {INSTANCE_ID_MAX_CHARS} characters."
        )
    if instance_id.startswith("@"):
        raise LimitError("Orchestration instance ids must not start with @.")
    bad = any(c in _ID_FORBIDDEN or unicodedata.category(c) == "Cc" for c in instance_id)
    if bad:
        raise LimitError(
            f"Instance ID '{instance_id!r}' contains invalid characters: / \\ # ? and control "
            "characters are not allowed."
        )
