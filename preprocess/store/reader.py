"""Reading a store back: stored frames [t0, t1) of a video in a view, touching only the chunks needed.

Safe inside DataLoader workers: HDF5 files are opened lazily, on first read, in the process that
reads, and reopened if the object finds itself in a new process after a fork; pickling drops handles.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..errors import UserError
from ..quantise import dequantise_flow
from . import compression as _compression  # noqa: F401  (registers the HDF5 filter plugins)
from .entries import flow_targets
from .layout import SHARD_RE, VIEW_META, read_json, shard_path, video_id_from_key, video_key, view_dir
from .manifest import Manifest, load_manifest

CHUNK_CACHE_BYTES = 8 * 1024 * 1024


class StoreDamaged(UserError):
    """A shard file, or a chunk in it, cannot be read (its checksum fails, or the file is cut)."""


def open_shard(path: Path) -> h5py.File:
    """Open a finished shard read-only; no HDF5 file locking (shards are immutable, and locks break on NFS)."""
    return h5py.File(path, "r", locking=False, rdcc_nbytes=CHUNK_CACHE_BYTES)


def shard_failures(f: h5py.File) -> list[dict[str, str]]:
    """The failures record of an open shard."""
    raw = f["failures"][()] if "failures" in f else b"[]"
    return json.loads(raw.decode() if isinstance(raw, bytes) else raw)


def deep_read_problems(group: h5py.Group, frames_per_read: int = 256) -> list[str]:
    """Read every dataset of a video's entry in full (each chunk's Fletcher-32 checksum is checked where
    the store has one); one line per dataset that cannot be read."""
    out = []
    for name, data in group.items():
        try:
            for start in range(0, len(data), frames_per_read):
                data[start:start + frames_per_read]
        except OSError as exc:
            out.append(f"{name} is damaged ({' '.join(str(exc).split())})")
    return out


def shard_video_ids(f: h5py.File) -> list[str]:
    return [video_id_from_key(k) for k in f["videos"].keys()]


def list_shards(root: Path, view: str) -> dict[int, Path]:
    """Finished shard files of a view, by shard number."""
    folder = view_dir(root, view)
    out = {}
    if folder.is_dir():
        for p in folder.iterdir():
            m = SHARD_RE.match(p.name)
            if m:
                out[int(m.group(1))] = p
    return out


def list_views(root: Path) -> list[str]:
    """Views present under a store root (folders holding a view.json), in the registry's order."""
    from data_specs.views import VIEWS
    order = {name: i for i, name in enumerate(VIEWS)}
    names = [p.parent.name for p in Path(root).glob(f"*/{VIEW_META}")]
    return sorted(names, key=lambda n: (order.get(n, len(order)), n))


class Store:
    """Read-only access to a store root: `read(video_id, view, t0, t1)` returns uint8 (T, H, W, C)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.manifest: Manifest = load_manifest(self.root)
        self.views: list[str] = list_views(self.root)
        self.view_meta: dict[str, dict[str, Any]] = {
            v: read_json(view_dir(self.root, v) / VIEW_META) for v in self.views}
        self._files: dict[tuple[str, int], h5py.File] = {}
        self._pid = os.getpid()

    # -- handles -------------------------------------------------------------------------------
    def _file(self, view: str, shard: int) -> h5py.File:
        if self._pid != os.getpid():  # inherited across a fork: never reuse the parent's handles
            self._files, self._pid = {}, os.getpid()
        key = (view, shard)
        if key not in self._files:
            path = shard_path(self.root, view, shard)
            if not path.exists():
                raise UserError(f"{path} is missing: the store is incomplete (re-run the preprocess job)")
            try:
                self._files[key] = open_shard(path)
            except OSError as exc:
                raise StoreDamaged(f"{path} is damaged ({' '.join(str(exc).split())}): run `python -m preprocess "
                                   f"run` with the same options to set it aside and remake it") from None
        return self._files[key]

    def _shard_file(self, video_id: str, view: str) -> h5py.File:
        """The open shard that holds a video's entry in a view (a UserError for an unknown view or video)."""
        if view not in self.view_meta:
            raise UserError(f"view {view!r} is not in {self.root} (it has: {', '.join(self.views) or 'none'})")
        try:
            shard = self.manifest.shard_of(video_id)
        except KeyError:
            raise UserError(f"video {video_id!r} is not in {self.root}") from None
        return self._file(view, shard)

    def _group(self, video_id: str, view: str) -> h5py.Group:
        f = self._shard_file(video_id, view)
        key = video_key(video_id)
        if key not in f["videos"]:
            reason = next((x["reason"] for x in shard_failures(f) if x["id"] == video_id), "not stored")
            raise UserError(f"video {video_id!r} has no {view} frames in {self.root}: {reason}")
        return f["videos"][key]

    def close(self) -> None:
        for f in self._files.values():
            try:
                f.close()
            except Exception:
                pass
        self._files = {}

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_files"] = {}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._pid = os.getpid()

    # -- queries -------------------------------------------------------------------------------
    def video_ids(self, view: str) -> list[str]:
        """Ids of the videos stored in a view (failed ones excluded), in manifest order."""
        present: set[str] = set()
        for shard in range(self.manifest.num_shards):
            try:
                present.update(shard_video_ids(self._file(view, shard)))
            except UserError:
                continue
        return [r.id for r in self.manifest.records if r.id in present]

    def num_frames(self, video_id: str, view: str) -> int:
        return self.frame_shape(video_id, view)[0]

    def frame_shape(self, video_id: str, view: str) -> tuple[int, ...]:
        """(T, H, W, C) of a video's stored frames in a view, read from the metadata only."""
        return tuple(int(n) for n in self._frames(video_id, view).shape)

    def _frames(self, video_id: str, view: str) -> h5py.h5d.DatasetID:
        """A video's frames dataset, opened with one low-level call: a training read opens it for every clip,
        and h5py's Group/Dataset wrappers cost more than reading a chunk."""
        f = self._shard_file(video_id, view)
        try:
            return h5py.h5d.open(f.id, f"videos/{video_key(video_id)}/frames".encode())
        except KeyError:
            return self._group(video_id, view)["frames"].id  # raises the one line that says why it is absent

    def frame_indices(self, video_id: str, view: str) -> np.ndarray:
        """Source frame index of every stored frame (identical across the views of a video)."""
        return self._group(video_id, view)["frame_indices"][()]

    def flow_targets(self, video_id: str, view: str) -> np.ndarray:
        """Source frame each stored flow frame goes to (frame_indices + 1 in a store made before targets
        were recorded, which always used t+1)."""
        group = self._group(video_id, view)
        targets = flow_targets(group)
        return group["frame_indices"][()] + 1 if targets is None else targets

    def times(self, video_id: str, view: str) -> np.ndarray:
        return self._group(video_id, view)["times"][()]

    def video_attrs(self, video_id: str, view: str) -> dict[str, Any]:
        return dict(self._group(video_id, view).attrs)

    def read(self, video_id: str, view: str, t0: int = 0, t1: int | None = None, pixels: bool = False,
             box: tuple[int, int, int, int] | None = None, out: np.ndarray | None = None) -> np.ndarray:
        """Stored frames [t0, t1) as uint8 (T, H, W, C), or only the rectangle box = (top, left, height, width)
        of each (HDF5 copies just that out of the decompressed chunks), written into `out` when given (a
        C-contiguous uint8 array of that shape, e.g. a row of a loader's batch); for a flow view with
        pixels=True, float32 pixels. Every chunk's Fletcher-32 checksum is checked where the store has one."""
        frames = self._frames(video_id, view)
        n, height, width, channels = frames.shape
        t1 = n if t1 is None else t1
        if not 0 <= t0 <= t1 <= n:
            raise IndexError(f"frames [{t0}, {t1}) out of range for {video_id!r} in {view} ({n} stored)")
        top, left, rows, cols = (0, 0, height, width) if box is None else box
        if not (0 <= top and 0 <= left and 0 <= rows and 0 <= cols and top + rows <= height and left + cols <= width):
            raise IndexError(f"box {box} out of range for {height}x{width} frames of {video_id!r} in {view}")
        shape = (t1 - t0, rows, cols, channels)
        if out is None:
            data = np.empty(shape, dtype=frames.dtype)
        elif out.shape != shape or out.dtype != frames.dtype or not out.flags.c_contiguous:
            raise ValueError(f"out must be a C-contiguous {frames.dtype} array of shape {shape}, got {out.dtype} "
                             f"{out.shape}")
        else:
            data = out
        if data.size:
            space = frames.get_space()
            space.select_hyperslab((t0, top, left, 0), data.shape)
            try:
                frames.read(h5py.h5s.create_simple(data.shape), space, data)
            except OSError as exc:
                raise StoreDamaged(f"frames [{t0}, {t1}) of {video_id!r} in {self._shard_file(video_id, view).filename}"
                                   f" are damaged ({' '.join(str(exc).split())}): check with `python -m preprocess "
                                   f"verify --deep {self.root}`") from None
        if pixels:
            meta = self.view_meta[view]
            if meta.get("kind") != "flow":
                raise ValueError(f"pixels=True is for flow views; {view} is {meta.get('kind')}")
            return dequantise_flow(data, float(meta["params"]["bound"]))
        return data
