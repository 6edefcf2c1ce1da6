"""HDF5 compression filters by name; every process that reads a store imports hdf5plugin through here."""

from __future__ import annotations

from typing import Any

import hdf5plugin

COMPRESSIONS: dict[str, dict[str, Any]] = {
    "none": {},
    "gzip-1": {"compression": "gzip", "compression_opts": 1},
    "gzip-4": {"compression": "gzip", "compression_opts": 4},
    "lzf": {"compression": "lzf"},
    "blosc-lz4": dict(hdf5plugin.Blosc(cname="lz4", clevel=5, shuffle=hdf5plugin.Blosc.NOSHUFFLE)),
    "blosc-zstd-1": dict(hdf5plugin.Blosc(cname="zstd", clevel=1, shuffle=hdf5plugin.Blosc.NOSHUFFLE)),
    "lz4": dict(hdf5plugin.LZ4()),
    "zstd-1": dict(hdf5plugin.Zstd(clevel=1)),
    "zstd-3": dict(hdf5plugin.Zstd(clevel=3)),
    "zstd-9": dict(hdf5plugin.Zstd(clevel=9)),
}


def compression_kwargs(name: str) -> dict[str, Any]:
    """h5py create_dataset keyword arguments for a compression name."""
    if name not in COMPRESSIONS:
        from ..errors import UserError
        raise UserError(f"unknown compression {name!r}; choose from {', '.join(COMPRESSIONS)}")
    return dict(COMPRESSIONS[name])
