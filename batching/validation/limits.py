"""Defaults of the limits a batch input file is validated and split against.

The app settings that change them (MAX_REQUESTS_PER_BATCH, MAX_BYTES_PER_BATCH, MAX_LINE_BYTES,
INVALID_LINES) are declared in `batching.settings`, which takes their defaults from here, as
does `batchctl validate`: it starts without importing the app's settings.
"""

from __future__ import annotations

MAX_REQUESTS_PER_BATCH = 100_000
# The service's input size per batch file: 200 MB uploaded (files mode), 1 GB read from a blob
# (blob mode, the default). MAX_BYTES_PER_BATCH=0 means the mode's limit.
MODE_MAX_BYTES = {"files": 200_000_000, "blob": 1_000_000_000}
MAX_BYTES_PER_BATCH = MODE_MAX_BYTES["blob"]
MAX_LINE_BYTES = 20_000_000  # what one line may cost in memory
INVALID_LINES = "reject"
