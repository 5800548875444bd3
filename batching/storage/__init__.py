"""Blob storage: references, streaming reads and writes, moves, Data Lake."""
