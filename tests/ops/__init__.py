"""Operating runs: the runs API, batchctl, the dashboard, logs."""
