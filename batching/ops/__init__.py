"""Operating runs: the runs API's checks, the runs index, listing, retries."""
