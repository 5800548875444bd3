"""`batchctl COMMAND ...`: the operator's command line.

Each command module registers its own subcommands and sets `run` on them; exit status 2 is a
usage error. Only the module of the command given is imported, and the modules import their
heavy dependencies (the Azure SDK, httpx, rich) where they use them: `batchctl --help` lists the
commands from `COMMANDS` without importing any command module, and `batchctl validate` loads
neither the Azure SDK nor the run commands (tests/ops/test_cli_imports.py guards both).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# command -> (the module that registers it, its one-line help as `batchctl --help` lists it)
COMMANDS = {
    "validate": ("batchctl.validate", "check a batch input file (.jsonl)"),
    "submit": ("batchctl.runs", "upload JSONL files into the input container"),
    "runs": ("batchctl.runs", "list runs with their progress"),
    "show": ("batchctl.runs", "a run's detail"),
    "cancel": ("batchctl.runs", "cancel a running run"),
    "retry": ("batchctl.runs", "reprocess a run that did not complete"),
    "results": ("batchctl.runs", "a run's results in input order, as JSONL or CSV"),
}


def main(argv: Sequence[str] | None = None) -> int:
    args_in = list(sys.argv[1:] if argv is None else argv)
    given = next((a for a in args_in if not a.startswith("-")), None)
    parser = argparse.ArgumentParser(prog="batchctl", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    if given in COMMANDS:
        importlib.import_module(COMMANDS[given][0]).register(commands)
    # The other commands are listed (for --help and usage errors) but not loaded.
    for name, (_, helptext) in COMMANDS.items():
        if name not in commands.choices:
            commands.add_parser(name, help=helptext)
    args = parser.parse_args(args_in)
    status: int = args.run(args)
    return status


if __name__ == "__main__":
    sys.exit(main())
