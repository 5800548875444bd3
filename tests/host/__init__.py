"""The local Functions host: durable semantics, HTTP, limits, the worker check."""
