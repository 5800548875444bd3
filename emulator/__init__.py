"""A local stand-in for the Azure OpenAI Batch API (files + batches), for tests and local runs.

Run it with `python -m emulator`; see docs/emulator.md for the flags and the control API.
"""
