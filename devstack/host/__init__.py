"""The local Functions host: indexing, bindings, HTTP, triggers, worker check."""
