"""`python -m batchctl COMMAND ...`: the operator's command line.

Each command module registers its own subcommands and sets `run` on them; exit status 2 is a
usage error. Only the module of the command given is imported: the run commands pull in the
Azure SDK (~0.4 s), which `batchctl validate` does not need.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# command -> the module that registers it; a command missing here still works (all load)
COMMANDS = {
    "validate": "batchctl.validate",
    "submit": "batchctl.runs",
    "runs": "batchctl.runs",
    "show": "batchctl.runs",
    "cancel": "batchctl.runs",
    "retry": "batchctl.runs",
    "results": "batchctl.runs",
}


def main(argv: Sequence[str] | None = None) -> int:
    args_in = list(sys.argv[1:] if argv is None else argv)
    given = next((a for a in args_in if not a.startswith("-")), None)
    modules = [COMMANDS[given]] if given in COMMANDS else sorted(set(COMMANDS.values()))
    parser = argparse.ArgumentParser(prog="batchctl", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in modules:
        importlib.import_module(module).register(commands)
    args = parser.parse_args(args_in)
    status: int = args.run(args)
    return status


if __name__ == "__main__":
    sys.exit(main())
