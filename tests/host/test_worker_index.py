"""The real Python worker (azure-functions-runtime, Python 3.13) indexes and loads the app.

Azure's worker refuses a function whose binding annotation is not a class (for example
`dict[str, Any]`), and one refused function fails the indexing of the whole app on the host.
These tests run the worker's own start-up path (`devstack/host/workercheck.py`) in `.venv-worker`.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import function_app
from devstack.bindings import functions_of
from devstack.host.worker import index_app
from devstack.services import ROOT

REFUSED_APP = textwrap.dedent(
    """
    from typing import Any

    import azure.durable_functions as df

    app = df.DFApp()


    @app.activity_trigger(input_name="payload")
    def typed_as_alias(payload: dict[str, Any]) -> dict[str, Any]:
        return payload


    @app.activity_trigger(input_name="payload")
    def typed_as_any(payload: Any) -> Any:
        return payload
    """
)


def test_the_worker_loads_every_function_the_app_declares() -> None:
    declared = {f.get_function_name() for f in functions_of(function_app.app)}
    verdict = index_app(ROOT)
    assert [e.message for e in verdict.errors] == []
    assert set(verdict.loaded) == declared
    assert len(declared) == 23


def test_the_worker_refuses_a_non_type_annotation_naming_the_function(tmp_path: Path) -> None:
    (tmp_path / "function_app.py").write_text(REFUSED_APP)
    verdict = index_app(tmp_path)
    assert verdict.loaded == ("typed_as_any",)
    assert [(e.function, e.message) for e in verdict.errors] == [
        (
            "typed_as_alias",
            "cannot load the typed_as_alias function: binding payload has invalid non-type "
            "annotation dict[str, typing.Any]",
        )
    ]


def test_an_app_that_cannot_be_imported_is_refused_as_a_whole(tmp_path: Path) -> None:
    (tmp_path / "function_app.py").write_text("import no_such_module_here\n")
    verdict = index_app(tmp_path)
    assert verdict.loaded == ()
    assert len(verdict.errors) == 1
    assert verdict.errors[0].function is None
    assert "no_such_module_here" in verdict.errors[0].message


def test_the_local_host_stops_with_the_workers_message_instead_of_serving(tmp_path: Path) -> None:
    (tmp_path / "function_app.py").write_text(REFUSED_APP)
    proc = subprocess.run(
        [sys.executable, "-m", "devstack", "--no-ui", "--app-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2
    assert "The Python worker refuses this app" in proc.stderr
    assert (
        "cannot load the typed_as_alias function: binding payload has invalid non-type "
        "annotation dict[str, typing.Any]"
    ) in proc.stderr
    assert "Local stack is up" not in proc.stdout
