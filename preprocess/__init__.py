"""Offline view generation for multi-view video self-supervised learning: videos -> chunked HDF5 stores."""

__version__ = "0.1.0"
