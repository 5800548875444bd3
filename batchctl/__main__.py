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
import os
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: batchctl start-up
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any, NoReturn

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


def terminal_columns() -> int:
    """The width `shutil.get_terminal_size` gives argparse ($COLUMNS, else the terminal's,
    else 80), found without importing shutil: argparse builds a formatter for every argument
    added, and shutil brings bz2 and lzma, about 2.5 ms of each start."""
    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns if columns > 0 else 80


class _Formatter(argparse.HelpFormatter):
    def __init__(self, prog: str) -> None:
        super().__init__(prog, width=terminal_columns() - 2)  # - 2: as argparse's own


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose help is formatted by `_Formatter`; its subcommands' too."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)


def main(argv: Sequence[str] | None = None) -> int:
    return _run(argv)[1]


def _run(argv: Sequence[str] | None) -> tuple[argparse.Namespace, int]:
    args_in = list(sys.argv[1:] if argv is None else argv)
    given = next((a for a in args_in if not a.startswith("-")), None)
    parser = _Parser(prog="batchctl", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    if given in COMMANDS:
        importlib.import_module(COMMANDS[given][0]).register(commands)
    # The other commands are listed (for --help and usage errors) but not loaded.
    for name, (_, helptext) in COMMANDS.items():
        if name not in commands.choices:
            commands.add_parser(name, help=helptext)
    args = parser.parse_args(args_in)
    status: int = args.run(args)
    return args, status


def console() -> NoReturn:
    """The `batchctl` script (and `python -m batchctl`): `main`, then exit.

    A command that leaves nothing to release (`exit_at_once` in its defaults: `validate`, whose
    token-counting child is reaped before it returns) exits without the interpreter's teardown,
    which frees every module and object one at a time: 6-8 ms of a 50 ms `batchctl validate`
    (docs/benchmarks.md). Its output is flushed first. Output nobody reads any more
    (`batchctl ... | head`) ends the command with status 120, the interpreter's own status for
    a failed flush at exit, and no traceback.
    """
    try:
        args, status = _run(None)
        if getattr(args, "exit_at_once", False):
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(status)
    except BrokenPipeError:
        # Nothing more can be written there; the interpreter's last flush must not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        status = 120
    sys.exit(status)


if __name__ == "__main__":
    console()
