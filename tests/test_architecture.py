"""What import-linter cannot say about external namespace packages, checked from the source.

`make lint` runs the layer contracts (pyproject.toml, [tool.importlinter]); `azure.functions` and
`azure.durable_functions` are subpackages of the external `azure` namespace, which import-linter
cannot forbid on their own, so the rule "batching is plain Python" is checked here.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FUNCTIONS_BINDINGS = ("azure.functions", "azure.durable_functions")


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def _offending(folder: str, prefixes: tuple[str, ...]) -> dict[str, list[str]]:
    found = {}
    for path in sorted((ROOT / folder).rglob("*.py")):
        bad = sorted(n for n in _imports(path) if n.startswith(prefixes))
        if bad:
            found[str(path.relative_to(ROOT))] = bad
    return found


def test_batching_never_imports_the_functions_bindings() -> None:
    assert _offending("batching", FUNCTIONS_BINDINGS) == {}


def test_the_checker_sees_an_offending_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("import azure.functions as func\nfrom azure.durable_functions import X\n")
    assert _imports(module) == {"azure.functions", "azure.durable_functions"}


def test_validation_and_tokens_are_pure() -> None:
    """No Azure SDK and none of the packages that do I/O: they run anywhere, as fast as parsing."""
    impure = (
        "azure",
        "openai",
        "batching.storage",
        "batching.service",
        "batching.steps",
        "batching.ops",
    )
    assert _offending("batching/validation", impure) == {}
    assert _offending("batching/tokens", impure) == {}
