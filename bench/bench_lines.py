"""Benchmark: memory and time of one long line (1 MB, 50 MB, 200 MB by default).

Run: `.venv/bin/python -m bench.bench_lines [--sizes 1,50,200] [--max-line-bytes N]`.
Generates (into bench/out/) a file per size: one chat request whose user message is about that
many bytes of English words, between two ordinary requests. Each file is measured twice, each
time in a fresh process:

- host: what the long-running Functions host does in validate_input, with the token encoding
  already built in-process (as it is after the host's first file), so tokens are counted in
  that process. It reports its resident memory when idle (modules imported, encoding built),
  resets its peak (/proc/self/clear_refs), validates the file and reports the new peak.
- batchctl: `python -m batchctl validate --json FILE`; its peak is the larger of its own
  (wait4's maxrss, exact) and its process tree's (with the token counting child it may start)
  sampled every few milliseconds; idle is the same command's peak on a one-line file.

Reported: the validation's verdict, wall time, and peak RSS above idle. MAX_LINE_BYTES is the
setting's default unless `--max-line-bytes` says otherwise. Linux only (/proc).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import orjson

OUT = Path(__file__).parent / "out"
ROOT = Path(__file__).resolve().parent.parent
_WORD_LIST = (
    "the of and to in is was for on that with as by at from this be are have it not or an "
    "customer review product delivery quality price support order refund warranty battery "
    "screen keyboard shipping package arrived damaged excellent terrible average recommend"
)
WORDS = _WORD_LIST.split()


def _request(custom_id: str, text: str) -> bytes:
    body = {"model": "gpt-4o-batch", "messages": [{"role": "user", "content": text}]}
    line = {"custom_id": custom_id, "method": "POST", "url": "/chat/completions", "body": body}
    return orjson.dumps(line) + b"\n"


def make_file(megabytes: int, astral: bool = False) -> Path:
    """One request of about `megabytes` MB between two small ones (written once).

    `astral`: the text also holds emoji, so Python keeps it at 4 bytes per character (the
    costliest case; plain English takes 1).
    """
    OUT.mkdir(exist_ok=True)
    path = OUT / f"line-{megabytes}mb{'-astral' if astral else ''}.jsonl"
    if path.exists():
        return path
    unit = " ".join(WORDS[(i * 7) % len(WORDS)] for i in range(4000)) + " "
    if astral:
        unit = unit.replace(" the ", " the \U0001f4e6 ")
    size = megabytes * 1_000_000
    text = (unit * (size // len(unit) + 1))[:size]
    with path.open("wb") as f:
        f.write(_request("small-1", "What is the capital of France?"))
        f.write(_request("huge", text))
        f.write(_request("small-2", "Summarise: the parcel arrived damaged."))
    return path


def _rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _tree(pid: int) -> list[int]:
    pids = [pid]
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            for child in f.read().split():
                pids.extend(_tree(int(child)))
    except OSError:
        pass
    return pids


def _run_sampled(cmd: list[str], env: dict[str, str]) -> tuple[float, int, bytes]:
    """Run `cmd`; (seconds, peak RSS of its process tree in KB, stdout)."""
    peak = 0
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    assert proc.stdout is not None
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, sum(_rss_kb(p) for p in _tree(proc.pid)))
            done.wait(0.003)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)  # its exact peak; sampling may miss a short one
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - start
    done.set()
    sampler.join()
    return seconds, max(peak, usage.ru_maxrss), out


def _verdict(report: dict[str, object]) -> str:
    if report.get("valid"):
        return f"valid, {report['requests']} requests"
    problems = report.get("problems") or []
    first = problems[0] if isinstance(problems, list) and problems else {}
    return f"rejected: line {first.get('line')} {first.get('code')}"


def host_child(path: Path) -> None:
    """In a fresh process: idle RSS with the encoding built, then validate and report."""
    from batching.jsonlines import read_blocks
    from batching.settings import Settings
    from batching.tokens.encoding import get_encoding
    from batching.validation.validator import ValidationOptions, validate

    required = {"AZURE_OPENAI_ENDPOINT": "http://127.0.0.1:1", "BATCH_STORAGE": "unused"}
    settings = Settings.from_env({**required, **os.environ})
    get_encoding("o200k_base")  # the long-running host has it built already
    options = ValidationOptions(
        max_requests_per_batch=settings.max_requests_per_batch,
        max_bytes_per_batch=settings.max_bytes_per_batch,
        max_line_bytes=settings.max_line_bytes,
    )
    idle = _rss_kb(os.getpid())
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to the current RSS
    start = time.perf_counter()
    report = validate(read_blocks(path, 4 << 20), options)  # blob downloads come in 4 MB chunks
    seconds = time.perf_counter() - start
    hwm = _hwm_kb()
    verdict = _verdict(report.to_dict())
    sys.stdout.buffer.write(orjson.dumps({"idle": idle, "peak": hwm, "s": seconds, "v": verdict}))


def _hwm_kb() -> int:
    with open("/proc/self/status") as f:
        return next(int(x.split()[1]) for x in f if x.startswith("VmHWM:"))


def stack_child(paths: list[Path]) -> None:
    """In a fresh process: the local host (Azurite and the emulator run as their own processes)
    runs each file end to end, from its BlobCreated event to its cleanup; this process's peak
    above its idle RSS (after one small run) is reported per file."""
    import contextlib
    import tempfile

    from azure.storage.blob import BlobServiceClient

    from batching.layout import run_id_for
    from batching.settings import Settings
    from batching.storage.blobs import ensure_containers
    from bench.apphost import app_host
    from devstack import services
    from devstack.watcher import Watcher
    from tests.support.stack import fast_settings

    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        root = Path(tmp)
        az = stack.enter_context(services.azurite(root / "azurite"))
        em = stack.enter_context(
            services.emulator(
                root / "em", batch_duration=1.0, api_key="test-key", storage=az.connection_string
            )
        )
        env = fast_settings(az, em, "lines")
        if os.environ.get("MAX_LINE_BYTES"):
            env["MAX_LINE_BYTES"] = os.environ["MAX_LINE_BYTES"]
        settings = Settings.from_env(env)
        ensure_containers(settings.storage, settings.containers)
        host = stack.enter_context(app_host(root / "host", env))
        blobs = BlobServiceClient.from_connection_string(az.connection_string)
        inputs = blobs.get_container_client(settings.input_container)
        watcher = Watcher(
            inputs, f"{host.base_url}/runtime/webhooks/eventgrid?functionName=on_blob_created"
        )

        def run(name: str, path: Path) -> dict[str, object]:
            """Upload (not measured), then reset the peak and run it through the host."""
            client = inputs.get_blob_client(name)
            with path.open("rb") as f:
                props = client.upload_blob(f, overwrite=True, max_concurrency=1)
            run_id = run_id_for(settings.input_container, name, str(props["etag"]))
            idle = _rss_kb(os.getpid())
            Path("/proc/self/clear_refs").write_text("5")
            start = time.perf_counter()
            watcher.poll_once()
            status = host.wait_for(run_id, timeout=900)
            output = status.get("output") or {}
            seconds = time.perf_counter() - start
            return {"s": seconds, "v": str(output.get("status")), "idle": idle, "peak": _hwm_kb()}

        run("warm.jsonl", make_file(1))  # imports, encoding, clients: the host's idle state
        for path in paths:
            got = run(f"{path.stem}.jsonl", path)
            got["size"] = path.stem.removeprefix("line-").upper()
            sys.stdout.write(orjson.dumps(got).decode() + "\n")
            sys.stdout.flush()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1,50,200", help="line sizes in MB (%(default)s)")
    parser.add_argument("--max-line-bytes", type=int, help="MAX_LINE_BYTES (default: setting's)")
    parser.add_argument("--astral", action="store_true", help="text with emoji (4 B/char)")
    parser.add_argument(
        "--stack", action="store_true", help="also run each file end to end on the local host"
    )
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--stack-child", type=Path, nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if args.max_line_bytes:
        env["MAX_LINE_BYTES"] = str(args.max_line_bytes)
    if args.child:
        host_child(args.child)
        return 0
    if args.stack_child:
        stack_child(args.stack_child)
        return 0
    tiny = OUT / "line-tiny.jsonl"
    OUT.mkdir(exist_ok=True)
    tiny.write_bytes(_request("one", "hello"))
    batchctl = [sys.executable, "-m", "batchctl", "validate", "--json"]
    _, idle_cli, _ = _run_sampled([*batchctl, str(tiny)], env)
    limit = env.get("MAX_LINE_BYTES", "default")
    text = "English with emoji" if args.astral else "English"
    print(f"MAX_LINE_BYTES={limit}; text: {text}; batchctl idle {idle_cli // 1024} MiB")
    head = f"{'line':>6} | {'mode':8} | {'verdict':36} | {'time':>7} | {'peak RSS':>10}"
    print(f"{head} | above idle")
    for mb in (int(s) for s in args.sizes.split(",")):
        path = make_file(mb, args.astral)
        out = subprocess.run(
            [sys.executable, "-m", "bench.bench_lines", "--child", str(path)],
            env=env,
            capture_output=True,
            check=True,
        ).stdout
        host = orjson.loads(out)
        print(
            f"{mb:>4}MB | {'host':8} | {host['v']:36} | {host['s']:6.2f}s | "
            f"{host['peak'] // 1024:>6} MiB | {(host['peak'] - host['idle']) // 1024:>4} MiB"
        )
        seconds, peak, out = _run_sampled([*batchctl, str(path)], env)
        verdict = _verdict(orjson.loads(out))
        print(
            f"{mb:>4}MB | {'batchctl':8} | {verdict:36} | {seconds:6.2f}s | "
            f"{peak // 1024:>6} MiB | {(peak - idle_cli) // 1024:>4} MiB"
        )
    if args.stack:
        paths = [str(make_file(int(s), args.astral)) for s in args.sizes.split(",")]
        proc = subprocess.run(
            [sys.executable, "-m", "bench.bench_lines", "--stack-child", *paths],
            env=env,
            capture_output=True,
            check=True,
        )
        for line in proc.stdout.splitlines():
            got = orjson.loads(line)
            print(
                f"{got['size']:>6} | {'stack':8} | {'run ' + got['v']:36} | {got['s']:6.2f}s | "
                f"{got['peak'] // 1024:>6} MiB | {(got['peak'] - got['idle']) // 1024:>4} MiB"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
