"""The store manifest: which videos a store holds, their labels and splits, the stride, and which
shard each video belongs to. Written once when a store is created; every later run and every array
job of the same store checks that it agrees, so shards never shift under a resumed job."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from data_specs import VideoList, VideoRecord

from ..errors import UserError
from .layout import FORMAT, MANIFEST, create_json_once

MAX_VIDEOS_PER_SHARD = 32
TARGET_SHARDS = 256


def default_videos_per_shard(num_videos: int) -> int:
    """Small shards for small sets (parallelism), at most 32 videos (work lost to a kill stays small)."""
    return max(1, min(MAX_VIDEOS_PER_SHARD, math.ceil(num_videos / TARGET_SHARDS)))


@dataclass
class Manifest:
    """The fixed part of a store: videos in id order, shard size, frame stride."""

    dataset: str
    videos_root: str
    classes: list[str]
    stride: int
    videos_per_shard: int
    records: list[VideoRecord]
    missing: list[str] = field(default_factory=list)
    format: str = FORMAT

    @property
    def num_shards(self) -> int:
        return math.ceil(len(self.records) / self.videos_per_shard)

    def shard_records(self, shard: int) -> list[VideoRecord]:
        start = shard * self.videos_per_shard
        return self.records[start:start + self.videos_per_shard]

    def shard_of(self, video_id: str) -> int:
        return self._index()[video_id] // self.videos_per_shard

    def record(self, video_id: str) -> VideoRecord:
        return self.records[self._index()[video_id]]

    def _index(self) -> dict[str, int]:
        if not hasattr(self, "_idx"):
            self._idx = {r.id: i for i, r in enumerate(self.records)}
        return self._idx

    def to_json(self) -> dict[str, Any]:
        return {
            "format": self.format, "dataset": self.dataset, "videos_root": self.videos_root,
            "classes": self.classes, "stride": self.stride, "videos_per_shard": self.videos_per_shard,
            "records": [r.to_json() for r in self.records], "missing": self.missing,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Manifest":
        return cls(dataset=d["dataset"], videos_root=d["videos_root"], classes=list(d["classes"]),
                   stride=int(d["stride"]), videos_per_shard=int(d["videos_per_shard"]),
                   records=[VideoRecord.from_json(r) for r in d["records"]],
                   missing=list(d.get("missing", [])), format=d.get("format", FORMAT))


def load_manifest(root: Path) -> Manifest:
    """Read ROOT/manifest.json, or say in one line that ROOT is not a store."""
    path = Path(root) / MANIFEST
    if not path.is_file():
        raise UserError(f"{root} is not a store (no {MANIFEST}); create it with `python -m preprocess run`")
    try:
        data = json.loads(path.read_text())
        manifest = Manifest.from_json(data)
    except (ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{path} is unreadable or damaged: {exc}") from None
    if manifest.format != FORMAT:
        raise UserError(f"{path} has format {manifest.format!r}; this version reads {FORMAT!r}")
    return manifest


def create_or_check_manifest(root: Path, videos: VideoList, stride: int,
                             videos_per_shard: int | None) -> Manifest:
    """Create the manifest of a new store, or check that an existing store was made from the same list."""
    if not videos.records:
        raise UserError(f"no videos to process under {videos.videos_root}")
    wanted = Manifest(dataset=videos.dataset, videos_root=videos.videos_root, classes=list(videos.classes),
                      stride=stride,
                      videos_per_shard=videos_per_shard or default_videos_per_shard(len(videos.records)),
                      records=list(videos.records), missing=list(videos.missing))
    existing_path = Path(root) / MANIFEST
    if existing_path.exists():
        have = load_manifest(root)
    else:
        have = Manifest.from_json(create_json_once(existing_path, wanted.to_json()))
    _check_same(root, have, wanted, videos_per_shard)
    # Same ids in the same order; take this run's paths so that a moved dataset folder still works.
    have.records = list(wanted.records)
    return have


def _check_same(root: Path, have: Manifest, wanted: Manifest, videos_per_shard: int | None) -> None:
    if have.stride != wanted.stride:
        raise UserError(f"{root} was made with --stride {have.stride}, this run asks {wanted.stride}: "
                        f"use the same stride or another --out")
    if videos_per_shard and have.videos_per_shard != videos_per_shard:
        raise UserError(f"{root} was made with --videos-per-shard {have.videos_per_shard}, "
                        f"this run asks {videos_per_shard}: drop the option or use another --out")
    have_ids = {r.id: r for r in have.records}
    want_ids = {r.id: r for r in wanted.records}
    if have_ids.keys() != want_ids.keys():
        added = sorted(want_ids.keys() - have_ids.keys())
        removed = sorted(have_ids.keys() - want_ids.keys())
        raise UserError(f"{root} was made from a different video list ({len(added)} new, {len(removed)} gone, "
                        f"e.g. {(added or removed)[0]!r}): use another --out for a different list")
    changed = [i for i, r in want_ids.items() if have_ids[i].label != r.label or have_ids[i].splits != r.splits]
    if changed:
        raise UserError(f"{root} has other labels or splits for {len(changed)} videos (e.g. {changed[0]!r}) "
                        f"than this run's annotations: use another --out")
