"""Where things live: run ids and the blob paths of a run's inputs, outputs and work files.

One file upload is one run. Its id is derived from the blob's path and ETag, so the same upload
seen twice (a redelivered event, the reconciliation) maps to the same orchestration, while a new
upload under the same name gets a new one.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
from dataclasses import dataclass

from batching.settings import Settings
from batching.storage.refs import BlobRef, bare_etag

INPUT_SUFFIX = ".jsonl"


def is_input(path: str) -> bool:
    """Only JSONL files start runs; folders' marker blobs and other files are ignored."""
    return path.lower().endswith(INPUT_SUFFIX) and not posixpath.basename(path).startswith(".")


def run_id_for(container: str, path: str, etag: str, attempt: int = 0) -> str:
    """A durable instance id: readable (the file's stem) and unique per upload (a hash).

    `attempt` > 0 names a retry of the same upload, started by a user.
    """
    key = f"{container}/{path}\n{bare_etag(etag)}"
    if attempt:
        key += f"\nretry {attempt}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    stem = posixpath.splitext(posixpath.basename(path))[0].lower()
    slug = re.sub(r"[^a-z0-9]+", "-", stem).strip("-")[:40] or "file"
    return f"{slug}-{digest}"


@dataclass(frozen=True)
class RunLayout:
    """The blob paths of one run, from the settings, the input's path and the run id."""

    input_container: str
    output_container: str
    error_container: str
    work_container: str
    source_path: str
    run_id: str
    service_output_container: str = ""

    @classmethod
    def of(cls, settings: Settings, source_path: str, run_id: str) -> RunLayout:
        return cls(
            settings.input_container,
            settings.output_container,
            settings.error_container,
            settings.work_container,
            source_path,
            run_id,
            settings.service_output_container,
        )

    @property
    def _folder(self) -> str:
        """`<dir>/<name>/<run-id>` for the input `<dir>/<name>.jsonl`."""
        stem = (
            self.source_path[: -len(INPUT_SUFFIX)]
            if is_input(self.source_path)
            else self.source_path
        )
        return f"{stem}/{self.run_id}"

    @property
    def source(self) -> BlobRef:
        return BlobRef(self.input_container, self.source_path)

    def output(self, name: str) -> BlobRef:
        """A file of the run folder: results.jsonl, errors.jsonl, metadata.json, table.csv..."""
        return BlobRef(self.output_container, f"{self._folder}/{name}")

    def error(self, name: str) -> BlobRef:
        """A file of the rejected-input folder: report.json, input.jsonl."""
        return BlobRef(self.error_container, f"{self._folder}/{name}")

    @property
    def work_prefix(self) -> str:
        return f"{self.run_id}/"

    def work(self, name: str) -> BlobRef:
        """Intermediate files (chunks, per-batch results); deleted when the run ends."""
        return BlobRef(self.work_container, f"{self.run_id}/{name}")

    @property
    def snapshot(self) -> BlobRef:
        """The run's own copy of its input, staged at intake: everything after reads this.

        The original in the input container may be overwritten or deleted at any time; the run
        never reads it again. The snapshot moves into the run folder (or the error folder) when
        the run ends.
        """
        return self.work("input.jsonl")

    def kept_inputs(self) -> list[BlobRef]:
        """Where a run's input is kept once staged, most final first: a retry starts from it."""
        return [self.error("input.jsonl"), self.output("input.jsonl"), self.snapshot]

    @property
    def service_prefix(self) -> str:
        """Blob mode: where the service writes this run's outputs, in SERVICE_OUTPUT_CONTAINER;
        deleted at cleanup, once they are in the run folder."""
        return f"{self.run_id}/"

    def service_folder(self, key: str, attempt: int) -> BlobRef:
        """Blob mode: the output folder of one create (`run/c0/r1`, attempt 2 ->
        `<run>/c0-r1-a2`): one per attempt, so a lost create's batch is found by its folder."""
        name = "-".join(key.split("/")[1:]) or "batch"
        return BlobRef(self.service_output_container, f"{self.service_prefix}{name}-a{attempt}")

    def output_folder_url_path(self) -> str:
        return f"{self.output_container}/{self._folder}/"
