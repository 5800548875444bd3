"""`python -m emulator`: serve the emulator with uvicorn (flags: `python -m emulator --help`)."""

from __future__ import annotations

import logging
import sys

import uvicorn

from emulator.app import create_app
from emulator.config import parse_settings


def main(argv: list[str] | None = None) -> None:
    settings = parse_settings(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("emulator").info(
        "emulator on http://%s:%d, deployments %s, batches take %ss, data in %s%s",
        settings.host,
        settings.port,
        ", ".join(f"{d.name}={d.model}:{d.token_limit}" for d in settings.deployments),
        settings.batch_duration,
        settings.data_dir or "memory",
        f", upstream {settings.upstream}" if settings.upstream else "",
    )
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
