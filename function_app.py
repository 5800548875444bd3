"""The Function App: creates the DFApp and registers the blueprints; nothing else."""

import azure.durable_functions as df

from activities import batches, intake, outputs
from orchestrators import run_file
from triggers import blob_created, health, reconcile

app = df.DFApp()

for blueprint in (
    blob_created.bp,
    reconcile.bp,
    health.bp,
    run_file.bp,
    intake.bp,
    batches.bp,
    outputs.bp,
):
    app.register_functions(blueprint)
