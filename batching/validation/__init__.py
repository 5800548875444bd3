"""Pure validation of JSONL batch input: no Azure imports, no I/O."""
