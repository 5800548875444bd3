"""The app end to end on the local stack, and its run-level building blocks."""
