"""A small Durable Functions app exercising every feature the local host supports.

`make_app()` builds a fresh `DFApp` from the blueprints, as a `function_app.py` would.
"""

from __future__ import annotations

from datetime import UTC, datetime

import azure.durable_functions as df
import azure.functions as func

from tests.support.toyapp import orchestrations, triggers

# Where the toy app's virtual clock starts.
START = datetime(2024, 1, 1, tzinfo=UTC)


def make_app() -> df.DFApp:
    app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)
    app.register_functions(orchestrations.bp)
    app.register_functions(triggers.bp)
    return app
