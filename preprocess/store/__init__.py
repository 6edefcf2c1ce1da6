"""The store contract: layout, manifest, shard writer, reader and checks."""

from .reader import Store

__all__ = ["Store"]
