"""The steps of a run: intake, collection, results, tables, outputs, cost, and the counts they
share with the orchestrator."""
