"""A local stand-in for the Azure OpenAI Batch API (files + batches), for tests and local runs.

Run it with `python -m emulator`; the README's emulator section lists its flags and control API.
"""
