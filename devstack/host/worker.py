"""The real Python worker's verdict on an app, asked from the app's own Python.

The worker library that Azure runs (`azure-functions-runtime`) needs Python 3.13, and the app
deploys on 3.11, so the check runs in a venv of its own (`make worker` creates `.venv-worker`)
as a child process: `devstack/host/workercheck.py`. The local host asks it before serving, and a
test asks it about the real app, so an app that Azure would refuse is refused here first.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from devstack.services import ROOT

CHECK_SCRIPT = Path(__file__).resolve().with_name("workercheck.py")
WORKER_VENV = ROOT / ".venv-worker"


class WorkerUnavailableError(RuntimeError):
    """The worker venv is missing: the check cannot run, so nothing may be served."""


class WorkerRefusedError(RuntimeError):
    """The worker refused one or more functions, or the whole app."""

    def __init__(self, verdict: WorkerVerdict) -> None:
        self.verdict = verdict
        super().__init__("\n".join(e.message for e in verdict.errors))


@dataclass(frozen=True)
class LoadError:
    function: str | None  # None: the app itself could not be indexed
    message: str  # the worker's own text, as the host would show it


@dataclass(frozen=True)
class WorkerVerdict:
    loaded: tuple[str, ...]
    errors: tuple[LoadError, ...]

    @property
    def ok(self) -> bool:
        return not self.errors


def worker_python() -> Path:
    """The worker venv's interpreter (`WORKER_PYTHON` overrides it)."""
    override = os.environ.get("WORKER_PYTHON")
    path = Path(override) if override else WORKER_VENV / "bin" / "python"
    if not path.exists():
        raise WorkerUnavailableError(
            f"the Python worker check needs {path}: run `make worker` (Python 3.13 from pyenv)"
        )
    return path


def index_app(app_dir: Path = ROOT, timeout: float = 120.0) -> WorkerVerdict:
    """Index the app in `app_dir` exactly as the worker does at start-up."""
    proc = subprocess.run(  # noqa: S603 - fixed interpreter and script, no shell
        [str(worker_python()), str(CHECK_SCRIPT), str(app_dir)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    lines = proc.stdout.strip().splitlines()
    try:
        raw = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError) as exc:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise WorkerUnavailableError(f"the worker check did not answer: {tail}") from exc
    return WorkerVerdict(
        loaded=tuple(raw["functions"]),
        errors=tuple(LoadError(e["function"], e["message"]) for e in raw["errors"]),
    )


def require_loadable(app_dir: Path = ROOT) -> WorkerVerdict:
    """The verdict when every function loads; `WorkerRefusedError` otherwise."""
    verdict = index_app(app_dir)
    if not verdict.ok:
        raise WorkerRefusedError(verdict)
    return verdict
