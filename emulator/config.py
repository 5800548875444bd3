"""The emulator's settings: command-line flags with environment-variable fallbacks."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from emulator.blobs import account_name

DEFAULT_DEPLOYMENT = "gpt-4o-batch=gpt-4o"
# The service's default enqueued-token quota for gpt-4o Global Batch deployments.
DEFAULT_TOKEN_LIMIT = 200_000_000
DEFAULT_BATCH_DURATION = 30.0


@dataclass(frozen=True)
class Deployment:
    """A configured deployment: the model it serves and its enqueued-token quota."""

    name: str
    model: str
    token_limit: int = DEFAULT_TOKEN_LIMIT


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8765
    api_key: str | None = None
    deployments: tuple[Deployment, ...] = (Deployment("gpt-4o-batch", "gpt-4o"),)
    batch_duration: float = DEFAULT_BATCH_DURATION
    data_dir: Path | None = None
    upstream: str | None = None
    storage_connection_strings: tuple[str, ...] = ()

    def deployment(self, name: str) -> Deployment | None:
        return next((d for d in self.deployments if d.name == name), None)


def parse_deployment(spec: str) -> Deployment:
    """`NAME=MODEL[:TOKEN_LIMIT]`, e.g. `gpt-4o-batch=gpt-4o:50000000`."""
    name, sep, rest = spec.strip().partition("=")
    if not sep or not name or not rest:
        raise ValueError(f"deployment must look like NAME=MODEL[:TOKEN_LIMIT], got {spec!r}")
    model, sep, limit = rest.partition(":")
    if not model:
        raise ValueError(f"deployment {spec!r} names no model")
    if not sep:
        return Deployment(name, model)
    try:
        token_limit = int(limit.replace("_", ""))
    except ValueError:
        raise ValueError(f"token limit of deployment {spec!r} is not an integer") from None
    if token_limit <= 0:
        raise ValueError(f"token limit of deployment {spec!r} must be positive")
    return Deployment(name, model, token_limit)


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be a positive number of seconds")
    return value


def parse_settings(argv: Sequence[str], env: Mapping[str, str] = os.environ) -> Settings:
    """Flags win over EMULATOR_* variables, which win over the defaults."""
    parser = argparse.ArgumentParser(
        prog="python -m emulator",
        description="Local Azure OpenAI Batch API emulator.",
        epilog="Environment variables set the same: EMULATOR_HOST, EMULATOR_PORT, "
        "EMULATOR_API_KEY, EMULATOR_DEPLOYMENTS (comma-separated), EMULATOR_BATCH_DURATION, "
        "EMULATOR_DATA_DIR, EMULATOR_UPSTREAM, EMULATOR_STORAGE_CONNECTION_STRING. Flags win. "
        "See docs/emulator.md.",
    )
    parser.add_argument("--host", default=env.get("EMULATOR_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(env.get("EMULATOR_PORT", "8765")))
    parser.add_argument(
        "--api-key",
        default=env.get("EMULATOR_API_KEY") or None,
        help="required `api-key` header value; Bearer tokens are always accepted",
    )
    parser.add_argument(
        "--deployment",
        action="append",
        metavar="NAME=MODEL[:TOKEN_LIMIT]",
        help=f"repeatable; default {DEFAULT_DEPLOYMENT} with {DEFAULT_TOKEN_LIMIT:,} tokens",
    )
    parser.add_argument(
        "--batch-duration",
        type=_positive_float,
        default=_positive_float(env.get("EMULATOR_BATCH_DURATION", str(DEFAULT_BATCH_DURATION))),
        help="seconds from creation to completion of a batch",
    )
    parser.add_argument("--data-dir", type=Path, default=env.get("EMULATOR_DATA_DIR") or None)
    parser.add_argument(
        "--upstream",
        default=env.get("EMULATOR_UPSTREAM") or None,
        help="OpenAI-compatible base URL that answers each request instead of synthesizing it",
    )
    parser.add_argument(
        "--storage-connection-string",
        action="append",
        metavar="CONNECTION_STRING",
        help="repeatable: a storage account the service's identity reaches in blob mode "
        "(input_blob, output_folder), matched to URLs by its AccountName",
    )
    args = parser.parse_args(list(argv))
    specs: list[str] = args.deployment or [
        s for s in env.get("EMULATOR_DEPLOYMENTS", DEFAULT_DEPLOYMENT).split(",") if s.strip()
    ]
    try:
        deployments = tuple(parse_deployment(s) for s in specs)
    except ValueError as exc:
        parser.error(str(exc))
    if len({d.name for d in deployments}) != len(deployments):
        parser.error("a deployment name is given twice")
    storage: list[str] = args.storage_connection_string or [
        s for s in [env.get("EMULATOR_STORAGE_CONNECTION_STRING", "").strip()] if s
    ]
    for cs in storage:
        try:
            account_name(cs)
        except ValueError as exc:
            parser.error(f"--storage-connection-string: {exc}")
    return Settings(
        host=args.host,
        port=args.port,
        api_key=args.api_key,
        deployments=deployments,
        batch_duration=args.batch_duration,
        data_dir=args.data_dir,
        upstream=args.upstream.rstrip("/") if args.upstream else None,
        storage_connection_strings=tuple(storage),
    )
