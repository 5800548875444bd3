"""A small Durable Functions app exercising every feature the local host supports.

`make_app()` builds a fresh `DFApp` from the blueprints, as a `function_app.py` would.
"""

from __future__ import annotations

import azure.durable_functions as df
import azure.functions as func

from tests.toyapp import orchestrations, triggers


def make_app() -> df.DFApp:
    app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)
    app.register_functions(orchestrations.bp)
    app.register_functions(triggers.bp)
    return app
