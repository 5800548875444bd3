"""Helpers shared by the tests: the local stack, the toy app, the emulator client."""
