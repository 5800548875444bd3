"""The steps of a run: intake, collection, results, tables, outputs, cost."""
