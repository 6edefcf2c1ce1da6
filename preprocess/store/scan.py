"""Walk a store root once and describe it: what each view holds, what fails, what is inconsistent.

`verify` prints the problems; `info` prints the summary. One scan serves both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .layout import PARTIAL_RE, VIEW_META, read_json, video_id_from_key, view_dir
from .manifest import Manifest, load_manifest
from .entries import flow_targets
from .reader import deep_read_problems, list_shards, list_views, open_shard, shard_failures


@dataclass
class VideoEntry:
    shard: int
    frames: int
    frame_shape: tuple[int, ...]
    frame_indices: np.ndarray
    missing_end_frames: int = 0
    long_side_capped: bool = False
    repeated_successors: int = 0   # stored frames whose source successor repeats them (flow views)
    skipped_repeats: int = 0       # stored frames whose flow goes past t+1 (flow views)


@dataclass
class ViewScan:
    """What one view of a store holds."""

    name: str
    meta: dict[str, Any]
    shard_ids: set[int] = field(default_factory=set)
    bytes: int = 0
    videos: dict[str, VideoEntry] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    partials: int = 0

    @property
    def frames(self) -> int:
        return sum(v.frames for v in self.videos.values())


@dataclass
class StoreScan:
    """A whole store: its manifest, its views, and every problem found."""

    root: Path
    manifest: Manifest
    views: dict[str, ViewScan]
    problems: list[str]


def scan_store(root: Path, deep: bool = False) -> StoreScan:
    """Read every shard's metadata (and, with deep=True, decompress every frame) and check the contract."""
    root = Path(root)
    manifest = load_manifest(root)
    problems: list[str] = []
    views: dict[str, ViewScan] = {}
    names = list_views(root)
    if not names:
        problems.append(f"{root}: no views (no */{VIEW_META})")
    for name in names:
        meta = read_json(view_dir(root, name) / VIEW_META)
        views[name] = _scan_view(root, name, meta, manifest, deep, problems)
    _check_alignment(manifest, views, problems)
    return StoreScan(root, manifest, views, problems)


def _scan_view(root: Path, name: str, meta: dict[str, Any], manifest: Manifest, deep: bool,
               problems: list[str]) -> ViewScan:
    scan = ViewScan(name, meta)
    scan.partials = sum(1 for p in view_dir(root, name).iterdir() if PARTIAL_RE.match(p.name))
    shards = list_shards(root, name)
    missing = [k for k in range(manifest.num_shards) if k not in shards]
    if missing:
        problems.append(f"{name}: {len(missing)} of {manifest.num_shards} shards missing "
                        f"(first: shard-{missing[0]:05d}.h5); the job has not finished: re-run it")
    for k in sorted(shards):
        path = shards[k]
        if k >= manifest.num_shards:
            problems.append(f"{name}: unexpected shard {path.name} (the manifest has {manifest.num_shards} shards)")
            continue
        scan.bytes += path.stat().st_size
        try:
            _scan_shard(path, k, name, meta, manifest, deep, scan, problems)
        except Exception as exc:  # anything HDF5 can throw at a damaged file
            problems.append(f"{name}: unreadable shard {path}: {' '.join(str(exc).split())}")
            continue
        scan.shard_ids.add(k)
    return scan


def _scan_shard(path: Path, shard: int, name: str, meta: dict[str, Any], manifest: Manifest, deep: bool,
                scan: ViewScan, problems: list[str]) -> None:
    expected = {r.id for r in manifest.shard_records(shard)}
    channels = int(meta.get("channels", 0))
    with open_shard(path) as f:
        if not f.attrs.get("complete", False):
            problems.append(f"{name}: shard {path.name} is not marked complete")
        failures = {x["id"]: x["reason"] for x in shard_failures(f)}
        for key, group in f["videos"].items():
            vid = video_id_from_key(key)
            if vid in scan.videos:
                problems.append(f"{name}: video {vid!r} stored twice (shards {scan.videos[vid].shard} and {shard})")
                continue
            if vid not in expected:
                problems.append(f"{name}: video {vid!r} in {path.name} does not belong to that shard")
            frames = group["frames"]
            indices = group["frame_indices"][()]
            if frames.shape[0] != len(indices) or frames.shape[0] != group["times"].shape[0]:
                problems.append(f"{name}: video {vid!r} has {frames.shape[0]} frames but "
                                f"{len(indices)} frame indices")
            if frames.shape[-1] != channels:
                problems.append(f"{name}: video {vid!r} has {frames.shape[-1]} channels, view says {channels}")
            if len(indices) and (np.any(np.diff(indices) <= 0) or indices[0] < 0):
                problems.append(f"{name}: video {vid!r} frame indices are not increasing")
            targets = flow_targets(group)
            if targets is not None and (len(targets) != len(indices) or np.any(targets <= indices)):
                problems.append(f"{name}: video {vid!r} has flow targets that do not follow its frame indices")
            if deep:
                problems.extend(f"{name}: video {vid!r} in {path.name}: {p}" for p in deep_read_problems(group))
            scan.videos[vid] = VideoEntry(
                shard, int(frames.shape[0]), tuple(frames.shape[1:]), indices,
                missing_end_frames=int(group.attrs.get("missing_end_frames", 0)),
                long_side_capped=bool(group.attrs.get("long_side_capped", False)),
                repeated_successors=int(group.attrs.get("repeated_successors", 0)),
                skipped_repeats=0 if targets is None else int(np.count_nonzero(targets[:len(indices)] != indices + 1)))
        for vid, reason in failures.items():
            if vid in scan.videos:
                problems.append(f"{name}: video {vid!r} is both stored and recorded as failed")
            scan.failures[vid] = reason
        for vid in sorted(expected - set(scan.videos) - set(failures)):
            problems.append(f"{name}: video {vid!r} is missing from {path.name} and not recorded as failed")


def _check_alignment(manifest: Manifest, views: dict[str, ViewScan], problems: list[str]) -> None:
    """Every video must be in all views or none, with the same frame indices everywhere."""
    names = list(views)
    for record in manifest.records:
        have = [v for v in names if record.id in views[v].videos]
        if not have:
            continue
        lacking = [v for v in names if v not in have]
        for v in lacking:
            if manifest.shard_of(record.id) in views[v].shard_ids:
                why = views[v].failures.get(record.id, "absent")
                problems.append(f"video {record.id!r}: in {have[0]} but not in {v} ({why})")
        ref = views[have[0]].videos[record.id].frame_indices
        for v in have[1:]:
            other = views[v].videos[record.id].frame_indices
            if len(other) != len(ref) or not np.array_equal(other, ref):
                problems.append(f"video {record.id!r}: frame indices differ between {have[0]} ({len(ref)} frames) "
                                f"and {v} ({len(other)} frames)")

