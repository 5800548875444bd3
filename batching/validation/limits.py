"""Defaults of the limits a batch input file is validated and split against.

The app settings that change them (MAX_REQUESTS_PER_BATCH, MAX_BYTES_PER_BATCH, MAX_LINE_BYTES,
INVALID_LINES) are declared in `batching.settings`, which takes their defaults from here, as
does `batchctl validate`: it starts without importing the app's settings.
"""

from __future__ import annotations

MAX_REQUESTS_PER_BATCH = 100_000
MAX_BYTES_PER_BATCH = 200_000_000
MAX_LINE_BYTES = 20_000_000  # what one line may cost in memory
INVALID_LINES = "reject"
