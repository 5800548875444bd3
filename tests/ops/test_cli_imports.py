"""`batchctl --help` and `batchctl validate` start without the heavy libraries.

A deterministic guard for the start-up time (bench/bench_cli_start.py measures it): each
case runs in a fresh interpreter and lists which of the heavy modules got imported.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from batchctl.__main__ import COMMANDS
from tests.support.stack import ROOT

SAMPLE = ROOT / "samples" / "quickstart.jsonl"
HEAVY = (
    "azure.storage",
    "azure.core",
    "azure.identity",
    "aiohttp",
    "httpx",
    "openai",
    "requests",
    "rich.table",
    "rich.console",
    "tiktoken",
    "batchctl.runs",
    "batchctl.commands",
    "batchctl.client",
    # validate without --count-tokens: no encoding, no counting child, not the app's settings
    "batching.tokens.child",
    "subprocess",
    "gzip",
    "batching.settings",
    # argparse's formatter imports it (with bz2 and lzma) for the terminal's width
    "shutil",
)


def _imported(argv: list[str], watched: tuple[str, ...] = HEAVY) -> list[str]:
    code = (
        "import contextlib, io, json, sys\n"
        "from batchctl.__main__ import main\n"
        "out = io.TextIOWrapper(io.BytesIO())\n"
        "with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):\n"
        f"    main({argv!r})\n"
        f"print(json.dumps([m for m in {watched!r} if m in sys.modules]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return list(json.loads(done.stdout.splitlines()[-1]))


@pytest.mark.parametrize(
    "argv",
    [["--help"], [], ["validate", "--help"]],
    ids=["help", "no-command", "validate-help"],
)
def test_help_imports_no_heavy_module(argv):
    assert _imported(argv) == []


def test_validate_imports_no_heavy_module():
    # The token estimate is approximate unless asked for: no tokenizer, no child process.
    assert _imported(["validate", "--json", str(SAMPLE)]) == []
    # nor typing: its modules take TYPE_CHECKING from a constant (typing is ~5% of start-up)
    schema = ROOT / "samples" / "structured-buildings.jsonl"  # imports the schema checker too
    assert _imported(["validate", "--json", str(schema)], ("typing",)) == []


def test_validate_counting_tokens_of_a_small_file_imports_the_encoding_only():
    # A small file is counted exactly in this process, so tiktoken is expected, with what
    # counting needs (a large file's counting child is started from batching.tokens.child).
    counting = ("tiktoken", "gzip", "batching.tokens.child", "subprocess")
    imported = _imported(["validate", "--json", "--count-tokens", str(SAMPLE)])
    assert [m for m in imported if m not in counting] == []
    assert "tiktoken" in imported


def test_run_commands_help_does_not_load_the_azure_sdk():
    # Only the arguments' module: the commands' work (batchctl.commands) loads when one runs.
    assert _imported(["results", "--help"]) == ["batchctl.runs"]


def test_listed_help_matches_each_command_s_own():
    """The help `batchctl --help` lists without loading a module is the module's own."""
    import argparse
    import importlib

    for name, (module, helptext) in COMMANDS.items():
        parser = argparse.ArgumentParser()
        sub = parser.add_subparsers()
        importlib.import_module(module).register(sub)
        registered = {a.dest: a.help for a in sub._choices_actions}
        assert registered[name] == helptext, name


def test_the_console_script_is_console_and_only_the_intended_packages_install():
    """The script runs `console` (main, then the quick exit), as `python -m batchctl` does."""
    import importlib
    import tomllib

    from batchctl.__main__ import console

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    module, _, function = project["project"]["scripts"]["batchctl"].partition(":")
    assert getattr(importlib.import_module(module), function) is console
    assert project["tool"]["setuptools"]["packages"] == ["batchctl", "batching"]
