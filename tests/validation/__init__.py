"""Validation, token estimates and splitting of JSONL input."""
