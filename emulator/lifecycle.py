"""The batch lifecycle, one asyncio task per unfinished batch.

A batch of duration D created at T follows a plan on the emulator's clock:
  validating  T .. T+0.1D      (the input is scanned at once; the verdict shows at T+0.1D)
  in_progress T+0.1D .. T+0.8D (requests run as the clock advances, so counts grow)
  finalizing  T+0.8D .. T+D    then completed
A step that takes longer than planned (a huge file, a slow upstream) delays the next one by the
real time it overran. Jumps of the virtual clock are no overrun: work that catches up after a
jump is stamped with the planned time. Progress is checkpointed in the batch record (at every
status change, and while requests run at most every CHECKPOINT_SECONDS), so a restarted emulator
picks every unfinished batch up where it was: at its last checkpoint, whose part-file sizes tell
what to keep; the lines run after it are run again, with the same results.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import shutil
import time
from pathlib import Path

import httpx

from emulator.blobs import ERRORS_NAME, RESULTS_NAME, BlobProblem, Storage, parse_url
from emulator.clock import Clock
from emulator.config import Settings
from emulator.processing import Chunk, LineRunner, processing_order
from emulator.store import TERMINAL, BatchRecord, FileRecord, Store
from emulator.validation import error, load_offsets, scan

log = logging.getLogger("emulator")

VALIDATING_SHARE, PROCESSING_END_SHARE = 0.1, 0.8
SYNTHETIC_CHUNK, UPSTREAM_CHUNK = 1_000, 64
CANCEL_DELAY_SHARE, CANCEL_DELAY_MAX = 0.1, 1.0
# How often a running batch rewrites its record: every chunk of lines did, which for hundreds
# of batches of a few lines each was most of the emulator's work.
CHECKPOINT_SECONDS = 1.0


def _tick(duration: float) -> float:
    """How often a running batch's counts move on the real clock (transitions are on time):
    every tenth of its duration, at most 2 s. Each step is a wake-up, a thread hop and two file
    appends per batch; steps of a fortieth were most of the emulator's CPU with 500 batches."""
    return min(max(duration / 10, 0.02), 2.0)


class Lifecycle:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        clock: Clock,
        upstream: httpx.AsyncClient | None,
        storage: Storage | None = None,
    ) -> None:
        self.store = store
        self.storage = storage or Storage()
        self.settings = settings
        self.clock = clock
        self.upstream = upstream
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.wakes: dict[str, asyncio.Event] = {}
        # Batches whose task sleeps with nothing due before its deadline: their view is current.
        self._idle: set[str] = set()
        self._went_idle = asyncio.Event()
        self._checkpointed: dict[str, float] = {}  # batch id -> monotonic time of its last save

    # --- control -----------------------------------------------------------------------------
    def start(self, b: BatchRecord) -> None:
        self.wakes[b.id] = asyncio.Event()
        self.tasks[b.id] = asyncio.create_task(self._guarded(b), name=b.id)

    def resume_all(self) -> None:
        for b in self.store.batches.values():
            if b.status not in TERMINAL:
                self.start(b)

    def cancel(self, b: BatchRecord) -> None:
        b.status, b.cancelling_at = "cancelling", self.clock.now()
        self.store.save_batch(b)
        if b.id in self.wakes:
            self.wakes[b.id].set()

    def clock_moved(self) -> None:
        """Every sleeping batch may have work due now: none counts as caught up until it looked."""
        self._idle.clear()

    async def settled(self, timeout: float = 30.0) -> bool:
        """Wait until every unfinished batch has caught up with the clock (its task sleeps).

        A test that moves the clock then reads statuses waits on this instead of a real-time
        pause: batches do their catching up (validation, output lines) in tasks and threads.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while any(not t.done() and i not in self._idle for i, t in self.tasks.items()):
            self._went_idle.clear()
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._went_idle.wait(), min(remaining, 0.5))
        return True

    async def _sleep(self, b: BatchRecord, seconds: float) -> None:
        """The one place a batch task sleeps: it is caught up while it does."""
        self._idle.add(b.id)
        self._went_idle.set()
        try:
            await self.clock.sleep(seconds, self.wakes[b.id])
        finally:
            self._idle.discard(b.id)
        self.wakes[b.id].clear()

    async def stop(self) -> None:
        running = [self.store.batches[i] for i in self.tasks if i in self.store.batches]
        for task in self.tasks.values():
            task.cancel()
        for task in list(self.tasks.values()):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        # A clean stop keeps the progress since the last checkpoint (the record never runs
        # ahead of its part files, so this is a checkpoint like any other).
        for b in running:
            if b.status not in TERMINAL:
                self.store.save_batch(b)

    def enqueued_tokens(self) -> dict[str, int]:
        """Estimated tokens of each deployment's batches from validation until they end."""
        totals = {d.name: 0 for d in self.settings.deployments}
        for b in self.store.batches.values():
            if b.tokens_enqueued and b.status not in TERMINAL and b.deployment in totals:
                totals[b.deployment] += b.estimated_tokens
        return totals

    # --- the runner --------------------------------------------------------------------------
    async def _guarded(self, b: BatchRecord) -> None:
        try:
            await self._run(b)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug must show as a failed batch, not a stuck one
            log.exception("batch %s crashed", b.id)
            b.errors = [error("internal_error", f"The emulator failed: {exc!r}", None)]
            b.status, b.failed_at = "failed", self.clock.now()
            self.store.save_batch(b)
        finally:
            self.tasks.pop(b.id, None)
            self.wakes.pop(b.id, None)
            self._checkpointed.pop(b.id, None)
            self._went_idle.set()

    async def _run(self, b: BatchRecord) -> None:
        if b.status == "validating":
            await self._validate(b)
        if b.status == "in_progress":
            await self._process(b)
        if b.status == "finalizing":
            assert b.finalizing_at is not None
            complete_at = max(b.created_at + b.duration, b.finalizing_at)
            await self._sleep_until(b, complete_at, "finalizing")
            if b.status == "finalizing":
                await self._finish(b, "completed", "completed_at", complete_at)
        if b.status == "cancelling":
            assert b.cancelling_at is not None
            delay = min(b.duration * CANCEL_DELAY_SHARE, CANCEL_DELAY_MAX)
            await self._sleep_until(b, b.cancelling_at + delay, "cancelling")
            await self._finish(b, "cancelled", "cancelled_at", b.cancelling_at + delay)

    async def _sleep_until(self, b: BatchRecord, when: float, status: str) -> None:
        """Wait for the clock to reach `when`, or until the batch leaves `status` (a cancel)."""
        while b.status == status and (remaining := when - self.clock.now()) > 0:
            await self._sleep(b, min(remaining, _tick(b.duration)))

    def _work(self, b: BatchRecord) -> Path:
        return self.store.batch_dir(b.id)

    async def _validate(self, b: BatchRecord) -> None:
        planned = b.created_at + VALIDATING_SHARE * b.duration
        ready = planned
        if not b.validated:
            work = self._work(b)
            problem: BlobProblem | None = None
            if b.input_blob is not None:
                # Blob mode reads the input when validation runs, not at creation, so a blob
                # overwritten in between is caught (`input_modified`), as on the service.
                await self._sleep_until(b, planned, "validating")
                if b.status != "validating":
                    return
                started = time.monotonic()
                problem = await asyncio.to_thread(self._read_input_blob, b, work / "input.jsonl")
                ready = planned + time.monotonic() - started
            if problem is not None:
                b.validated, b.errors = True, [error(problem.code, problem.message, None)]
                self.store.save_batch(b)
            else:
                names = frozenset(d.name for d in self.settings.deployments)
                started = time.monotonic()
                result = await asyncio.to_thread(
                    scan, work / "input.jsonl", work / "offsets.bin", b.endpoint, names
                )
                ready = max(ready, b.created_at + time.monotonic() - started)
                b.validated, b.total = True, result.total
                b.deployment, b.estimated_tokens = result.deployment, result.estimated_tokens
                b.errors = self._verdict(b, result.errors) or None
                b.tokens_enqueued = b.errors is None
                self.store.save_batch(b)
        await self._sleep_until(b, ready, "validating")
        if b.status != "validating":
            return
        if b.errors:
            b.status, b.failed_at = "failed", ready
        else:
            b.status, b.in_progress_at = "in_progress", ready
        self.store.save_batch(b)

    def _read_input_blob(self, b: BatchRecord, dest: Path) -> BlobProblem | None:
        """Copy the input blob into the work dir with the identity's access (in a thread)."""
        assert b.input_blob is not None and b.output_folder is not None
        where, folder = (
            parse_url(b.input_blob, folder=False),
            parse_url(b.output_folder, folder=True),
        )
        if b.blob_access != "read_write":
            lacking = "read access on the input" if b.blob_access == "none" else "write access"
            target = where.url if b.blob_access == "none" else folder.url
            return BlobProblem(
                "input_no_permissions",
                f"The service's managed identity has no {lacking} ('{target}'): grant it "
                "Storage Blob Data Reader on the input and Storage Blob Data Contributor on the "
                "output folder's container.",
            )
        try:
            self.storage.download(where, b.input_etag, dest)
            self.storage.check_reachable(folder)
        except BlobProblem as problem:
            return problem
        return None

    def _verdict(self, b: BatchRecord, errors: list[dict[str, object]]) -> list[dict[str, object]]:
        """Scan errors first; then the scenario's outcome; then the enqueued-token quota."""
        if errors:
            return errors
        if b.outcome == "failed":
            return [error("invalid_request", "The scenario failed this batch's validation.", None)]
        deployment = self.settings.deployment(b.deployment or "")
        assert deployment is not None  # a clean scan names a configured deployment
        in_use = self.enqueued_tokens()[deployment.name]
        if (
            b.outcome == "token_limit_failed"
            or in_use + b.estimated_tokens > deployment.token_limit
        ):
            message = (
                f"Enqueued token limit reached for deployment '{deployment.name}' "
                f"(token_limit_exceeded): this batch needs about {b.estimated_tokens:,} tokens, "
                f"{in_use:,} of {deployment.token_limit:,} are in use. Retry later."
            )
            return [error("token_limit_exceeded", message, None)]
        return []

    def _runner(self, b: BatchRecord) -> LineRunner:
        work = self._work(b)
        deployment = self.settings.deployment(b.deployment or "")
        return LineRunner(
            input_path=work / "input.jsonl",
            offsets=load_offsets(work / "offsets.bin"),
            seed=b.seed,
            endpoint=b.endpoint,
            model=deployment.model if deployment else b.deployment or "",
            failure_rate=b.line_failure_rate,
            failure_status=b.line_failure_status,
        )

    async def _process(self, b: BatchRecord) -> None:
        assert b.in_progress_at is not None
        runner = self._runner(b)
        order = processing_order(b.total, b.seed)
        self._truncate_parts(b)
        finalizing = b.created_at + PROCESSING_END_SHARE * b.duration
        natural_expiry = finalizing > b.expires_at
        if natural_expiry:
            end = b.expires_at
        elif b.outcome == "expired":
            end = b.created_at + b.duration
        else:
            end = finalizing
        goal = b.total // 2 if b.outcome == "expired" and not natural_expiry else b.total
        started = b.in_progress_at
        span = finalizing - started

        def target(now: float) -> int:
            share = 1.0 if span <= 0 else min(max((min(now, end) - started) / span, 0), 1)
            return min(goal, math.ceil(goal * share))

        overrun = 0.0  # real seconds spent catching up after `end`
        while b.status == "in_progress":
            now = self.clock.now()
            wanted = target(now)
            if b.processed < wanted:
                size = UPSTREAM_CHUNK if self.upstream else SYNTHETIC_CHUNK
                chunk_started = time.monotonic()
                await self._run_chunk(
                    b, runner, order[b.processed : min(wanted, b.processed + size)]
                )
                if now >= end:
                    overrun += time.monotonic() - chunk_started
            elif now >= end:
                break
            else:
                await self._sleep(b, min(end - now, _tick(b.duration)))
        if b.status != "in_progress":
            return
        if natural_expiry or b.outcome == "expired":
            rest = await asyncio.to_thread(runner.expired_lines, order[b.processed :])
            b.out_bytes, b.err_bytes = await asyncio.to_thread(
                self._append_parts, b, Chunk(errors=rest)
            )
            await self._finish(b, "expired", "expired_at", end + overrun)
        else:
            b.status, b.finalizing_at = "finalizing", end + overrun
            self.store.save_batch(b)

    async def _run_chunk(self, b: BatchRecord, runner: LineRunner, indices: list[int]) -> None:
        if self.upstream is not None and self.settings.upstream is not None:
            chunk = await runner.forward(indices, self.upstream, self.settings.upstream)
            sizes = await asyncio.to_thread(self._append_parts, b, chunk)
        else:
            chunk, sizes = await asyncio.to_thread(
                self._synthesize_parts, b, runner, indices, self.clock.now()
            )
        b.out_bytes, b.err_bytes = sizes
        b.processed += len(indices)
        b.completed += chunk.completed
        b.failed += chunk.failed
        # The part files are ahead of the record between checkpoints: a restart cuts them back.
        now = time.monotonic()
        if now - self._checkpointed.get(b.id, -math.inf) >= CHECKPOINT_SECONDS:
            self._checkpointed[b.id] = now
            self.store.save_batch(b)

    def _synthesize_parts(
        self, b: BatchRecord, runner: LineRunner, indices: list[int], now: float
    ) -> tuple[Chunk, tuple[int, int]]:
        """Answer lines and append them to the parts, in one thread hop."""
        chunk = runner.synthesize(indices, now)
        return chunk, self._append_parts(b, chunk)

    def _parts(self, b: BatchRecord) -> tuple[Path, Path]:
        work = self._work(b)
        return work / "output.part", work / "errors.part"

    def _truncate_parts(self, b: BatchRecord) -> None:
        """Drop what was written after the last checkpoint (a restart mid-chunk)."""
        for part, size in zip(self._parts(b), (b.out_bytes, b.err_bytes), strict=True):
            with part.open("ab") as f:
                f.truncate(size)

    def _append_parts(self, b: BatchRecord, chunk: Chunk) -> tuple[int, int]:
        """Append a chunk's lines (in a thread); the part files' new sizes are the checkpoint."""
        sizes = []
        for part, data in zip(self._parts(b), (chunk.output, chunk.errors), strict=True):
            with part.open("ab") as f:
                f.write(data)
                sizes.append(f.tell())
        return sizes[0], sizes[1]

    async def _finish(self, b: BatchRecord, status: str, stamp: str, planned: float) -> None:
        if b.output_folder is not None:
            await asyncio.to_thread(self._write_result_blobs, b)
        self._publish(b, status, stamp, planned)

    def _write_result_blobs(self, b: BatchRecord) -> None:
        """Blob mode: `{folder}/{guid}/results.jsonl` and `errors.jsonl`, each only when it has
        lines; both URLs are returned either way (as the service does)."""
        assert b.output_folder is not None and b.output_guid is not None
        folder = parse_url(b.output_folder, folder=True)
        out, err = self._parts(b)
        for part, name in ((out, RESULTS_NAME), (err, ERRORS_NAME)):
            if part.exists() and part.stat().st_size > 0:
                self.storage.upload(folder, f"{b.output_guid}/{name}", part)
        b.output_blob = folder.child(b.output_guid, RESULTS_NAME)
        b.error_blob = folder.child(b.output_guid, ERRORS_NAME)

    def _publish(self, b: BatchRecord, status: str, stamp: str, planned: float) -> None:
        """End the batch: its part files become the output and error files, then it is terminal.

        There is an output file only if some request succeeded; there is always an error file.
        """
        now = self.clock.now()
        out, err = self._parts(b)
        if b.output_folder is None:  # upload mode: results are files of the Files API
            if out.exists() and out.stat().st_size > 0:
                b.output_file_id = self._add_result_file(b, out, "output")
            err.touch()
            b.error_file_id = self._add_result_file(b, err, "error")
        b.status = status
        setattr(b, stamp, min(planned, now))
        self.store.save_batch(b)
        shutil.rmtree(self._work(b), ignore_errors=True)

    def _add_result_file(self, b: BatchRecord, part: Path, kind: str) -> str:
        # Ids derive from the batch id, so finishing twice (a crash between steps) is harmless.
        file_id = "file-" + hashlib.sha256(f"{b.id}:{kind}".encode()).hexdigest()[:32]
        now = self.clock.now()
        expires = None if b.output_expires_after is None else int(now) + b.output_expires_after
        record = FileRecord(
            id=file_id,
            filename=f"{b.id}_{kind}.jsonl",
            purpose="batch_output",
            bytes=part.stat().st_size,
            created_at=now,
            processed_at=now,
            expires_at=expires,
        )
        self.store.add_file(record, part)
        return file_id
