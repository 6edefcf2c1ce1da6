"""A copy of a store with the Fletcher-32 checksums taken off every chunk (same chunks, same compression), to
measure what checksums cost a reader: `bench_train_data.py --checksum-cost` reads both, interleaved."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py

from preprocess.store.compression import COMPRESSIONS  # noqa: F401  (registers the HDF5 filter plugins)


def _rewrite_without_checksum(group: h5py.Group, name: str) -> None:
    """Replace a chunked dataset by one with the same chunks and filters, Fletcher-32 left out."""
    item = group[name]
    data, chunks, dtype, shape = item[...], item.chunks, item.dtype, item.shape
    maxshape = tuple(h5py.h5s.UNLIMITED if m is None else m for m in item.maxshape)
    plist = item.id.get_create_plist()
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_chunk(chunks)
    for i in range(plist.get_nfilters()):
        code, flags, values, _ = plist.get_filter(i)
        if code != h5py.h5z.FILTER_FLETCHER32:
            dcpl.set_filter(code, flags, values)
    del group[name]
    space = h5py.h5s.create_simple(shape, maxshape)
    out = h5py.Dataset(h5py.h5d.create(group.id, name.encode(), h5py.h5t.py_create(dtype), space, dcpl=dcpl))
    if data.size:
        out[...] = data


def copy_without_checksums(store: Path, dest: Path) -> Path:
    """Copy a store root; rewrite each shard's chunked datasets without Fletcher-32."""
    shutil.copytree(store, dest)
    for shard in dest.glob("*/shard-*.h5"):
        with h5py.File(shard, "a", locking=False) as f:
            names: list[str] = []
            f.visititems(lambda n, obj: names.append(n) if isinstance(obj, h5py.Dataset) and obj.fletcher32 else None)
            for n in names:
                parent, _, leaf = n.rpartition("/")
                _rewrite_without_checksum(f[parent] if parent else f, leaf)
    return dest
