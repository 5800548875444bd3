"""User-supplied blob paths, checked in one place before any storage call sees them.

The runs API (`POST /api/runs`) and `batchctl submit` both name a blob of the input container.
Azure resolves `.` and `..` segments and turns backslashes into slashes in blob URLs, so such a
name would reach another blob than the one written, or none; control characters are refused by
the service; a blob name is at most 1,024 characters and 254 path segments.
"""

from __future__ import annotations

import unicodedata

MAX_NAME_CHARS = 1024
MAX_SEGMENTS = 254


class BlobPathError(ValueError):
    """A path that cannot name a blob; the message says why, for the person who sent it."""


def _shown(path: str) -> str:
    """The path as a message may quote it: short, printable."""
    text = "".join(c if c.isprintable() else "?" for c in path[:80])
    return repr(text + ("..." if len(path) > 80 else ""))


def check_blob_path(path: str, what: str = "path") -> str:
    """The path unchanged when it can name a blob; raises BlobPathError otherwise.

    Refused: empty, longer than 1,024 characters or 254 segments, a leading `/`, empty, `.` or
    `..` segments or segments ending in `.`, backslashes, control characters (C0, DEL, C1), and
    text that is not valid Unicode (lone surrogates).
    """
    if not isinstance(path, str) or not path:
        raise BlobPathError(f"{what} is empty")
    if len(path) > MAX_NAME_CHARS:
        raise BlobPathError(f"{what} is {len(path):,} characters; blob names have at most 1,024")
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        raise BlobPathError(f"{what} {_shown(path)} is not valid Unicode") from None
    if path.startswith("/"):
        raise BlobPathError(
            f"{what} {_shown(path)} starts with '/'; give it relative to the container"
        )
    if "\\" in path:
        raise BlobPathError(f"{what} {_shown(path)} has a backslash; separate folders with '/'")
    bad = next((c for c in path if unicodedata.category(c) == "Cc"), None)
    if bad is not None:
        raise BlobPathError(f"{what} {_shown(path)} has the control character U+{ord(bad):04X}")
    segments = path.split("/")
    if len(segments) > MAX_SEGMENTS:
        raise BlobPathError(f"{what} has {len(segments)} segments; blob names have at most 254")
    for segment in segments:
        if segment in ("", ".", ".."):
            name = "an empty" if not segment else f"a {segment!r}"
            raise BlobPathError(f"{what} {_shown(path)} has {name} segment")
        if segment.endswith("."):
            # Azure drops trailing dots of a segment: `a./b` and `a/b` are the same blob.
            raise BlobPathError(f"{what} {_shown(path)} has a segment ending in '.'")
    return path
