"""The Function App: creates the DFApp and registers the blueprints; nothing else."""

import azure.durable_functions as df

from activities import batches, intake, outputs
from orchestrators import run_file
from triggers import blob_created, dashboard, health, reconcile, runs_api

app = df.DFApp()

for blueprint in (
    blob_created.bp,
    reconcile.bp,
    health.bp,
    runs_api.bp,
    dashboard.bp,
    run_file.bp,
    intake.bp,
    batches.bp,
    outputs.bp,
):
    app.register_functions(blueprint)
