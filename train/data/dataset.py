"""Aligned multi-view clips from a store: DataLoader workers only read and cut (crop, flip) uint8 frames.

Every view of a sample uses the same stored-frame window (that is what "aligned" means); each view gets
its own crop position and flip, consistent over the whole clip. All randomness of sample `index` comes
from `np.random.default_rng([seed, epoch, index])`, so a (seed, epoch, index) triple always gives the same
sample, in any worker, on any resume. The float arithmetic happens later, on the device (`augment.py`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from data_specs import VideoRecord
from preprocess.errors import UserError
from preprocess.store import Store
from preprocess.store.layout import shard_path
from preprocess.store.reader import open_shard, shard_failures

from .sampling import PLACEMENTS, SHORT_POLICIES, crop_box, crop_side, dense_windows, even_windows, window_indices

log = logging.getLogger(__name__)

# COCO-17 keypoints: 0 nose, then (left, right) pairs: eyes, ears, shoulders, elbows, wrists, hips, knees, ankles.
COCO17_FLIP_PAIRS: tuple[tuple[int, int], ...] = (
    (1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16))
# Channel pairs that a horizontal flip swaps, by view kind (kinds not listed flip pixels only).
FLIP_PAIRS_BY_KIND: dict[str, tuple[tuple[int, int], ...]] = {"pose": COCO17_FLIP_PAIRS}
# Kinds that are never flipped: flipping flow would also need u -> -u.
NO_FLIP_KINDS: frozenset[str] = frozenset({"flow"})


class DataError(UserError):
    """A store or selection that cannot feed training; the message is one line naming what is wrong."""


def flip_permutation(channels: int, pairs: tuple[tuple[int, int], ...]) -> np.ndarray:
    """Channel order after a horizontal flip: each (left, right) pair swapped, the rest kept."""
    perm = np.arange(channels)
    for a, b in pairs:
        if max(a, b) >= channels:
            raise DataError(f"flip pair ({a}, {b}) needs {max(a, b) + 1} channels, the view has {channels}")
        perm[a], perm[b] = b, a
    return perm


@dataclass(frozen=True)
class ViewCut:
    """How one view is cut: square crop side, whether it may flip, and the channel order after a flip."""

    name: str
    kind: str
    side: int
    flippable: bool
    flip_perm: torch.Tensor | None


def cut_clip(frames: torch.Tensor, top: int, left: int, side: int, flip: bool,
             flip_perm: torch.Tensor | None = None, index: torch.Tensor | None = None) -> torch.Tensor:
    """Crop uint8 frames (T, H, W, C) to a side×side square at (top, left), take frames `index` (all when
    None), flip horizontally if asked (and reorder channels by `flip_perm`). Without a flip or an index the
    result is a strided view of `frames`: the DataLoader's collate copies it once, straight into the batch
    (in a worker: into shared memory), instead of a copy here and another there.

    Done with torch: its flip copies ~10x faster than numpy's negative-stride copy of 2-3 channel uint8.
    """
    out = frames[:, top:top + side, left:left + side]
    if index is not None:
        out = out.index_select(0, index)
    if flip:
        out = out.flip(2)
        if flip_perm is not None:
            out = out.index_select(3, flip_perm)
    return out


def read_span(store: Store, video_id: str, view: str, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """One store read of the frames [min(idx), max(idx)], and `idx` relative to it (None: the span is idx)."""
    t0, t1 = int(idx.min()), int(idx.max()) + 1
    data = store.read(video_id, view, t0, t1)
    if t1 - t0 == len(idx) and np.array_equal(idx, np.arange(t0, t1)):
        return data, None
    return data, idx - t0


def _open_store(root: str | Path) -> Store:
    """The store at `root`, or a DataError saying why it is not one."""
    try:
        return Store(root)
    except UserError as exc:
        raise DataError(str(exc)) from None


def _view_cuts(store: Store, views: list[str], crop_fraction: float) -> list[ViewCut]:
    """Check the requested views against the store and derive how each is cut."""
    if not views:
        raise DataError("no views requested")
    if len(set(views)) != len(views):
        raise DataError(f"views repeat: {', '.join(views)}")
    absent = [v for v in views if v not in store.view_meta]
    if absent:
        raise DataError(f"view(s) {', '.join(absent)} not in store {store.root} "
                        f"(it has: {', '.join(store.views) or 'none'})")
    cuts = []
    for v in views:
        meta = store.view_meta[v]
        kind, channels = str(meta.get("kind", "")), int(meta["channels"])
        pairs = FLIP_PAIRS_BY_KIND.get(kind)
        try:
            perm = torch.from_numpy(flip_permutation(channels, pairs)) if pairs else None
        except DataError as exc:
            raise DataError(f"view {v} ({kind}): {exc}") from None
        cuts.append(ViewCut(v, kind, crop_side(int(meta["size"]), crop_fraction), kind not in NO_FLIP_KINDS, perm))
    return cuts


def _select(records: list[VideoRecord], split: str | None, subset: str | None) -> tuple[list[VideoRecord], str]:
    """Records of (split, subset) in manifest order, and a name for the selection used in messages."""
    if split is None:
        if subset is not None:
            raise DataError(f"subset {subset!r} given without a split")
        return list(records), "the store"
    known = sorted({s for r in records for s in r.splits})
    if split not in known:
        raise DataError(f"no video of the store is in split {split!r} (splits: {', '.join(known) or 'none'})")
    if subset is None:
        return [r for r in records if split in r.splits], f"split {split}"
    chosen = [r for r in records if r.splits.get(split) == subset]
    if not chosen:
        have = sorted({r.splits[split] for r in records if split in r.splits})
        raise DataError(f"split {split} has no {subset!r} videos (it has: {', '.join(have)})")
    return chosen, f"split {split}/{subset}"


def _by_id(records: list[VideoRecord], ids: list[str]) -> list[VideoRecord]:
    """The records of `ids`, in that order; a DataError names the first id the store does not list."""
    known = {r.id: r for r in records}
    missing = [i for i in ids if i not in known]
    if missing:
        raise DataError(f"{len(missing)} chosen video(s) are not in the store (first: {missing[0]})")
    if not ids:
        raise DataError("no video chosen")
    return [known[i] for i in ids]


def _missing_reason(store: Store, video_id: str, view: str) -> str:
    """Why a video is not in a view: the failure the store recorded, or what is absent."""
    shard = store.manifest.shard_of(video_id)
    path = shard_path(store.root, view, shard)
    if not path.exists():
        return f"its shard {path.name} is missing (store incomplete)"
    with open_shard(path) as f:
        reason = next((x["reason"] for x in shard_failures(f) if x["id"] == video_id), None)
    return reason or "not stored"


def _check_stored(store: Store, records: list[VideoRecord], views: list[str], what: str) -> None:
    """Raise a DataError naming the first view that lacks videos of the selection."""
    for view in views:
        present = set(store.video_ids(view))
        missing = [r.id for r in records if r.id not in present]
        if missing:
            first = ", ".join(missing[:3]) + (", ..." if len(missing) > 3 else "")
            raise DataError(f"view {view} lacks {len(missing)} of the {len(records)} videos of {what} "
                            f"(first: {first}); {missing[0]}: {_missing_reason(store, missing[0], view)}")


def _drop_failed(store: Store, records: list[VideoRecord], views: list[str], what: str) -> list[VideoRecord]:
    """`records` without the videos the store records as failed in any of `views` (with a warning that counts
    them); a video absent without a failure record stays, for `_check_stored` to report."""
    failed: dict[str, str] = {}
    for view in views:
        present = set(store.video_ids(view))
        for r in records:
            if r.id not in present and r.id not in failed:
                shard = shard_path(store.root, view, store.manifest.shard_of(r.id))
                if shard.exists():
                    with open_shard(shard) as f:
                        reason = next((x["reason"] for x in shard_failures(f) if x["id"] == r.id), None)
                    if reason is not None:
                        failed[r.id] = f"{view}: {reason}"
    if failed:
        first = next(iter(failed))
        log.warning("%s: data.skip_failed: left out %d of the %d videos of %s recorded as failed (first: %s, %s)",
                    store.root, len(failed), len(records), what, first, failed[first])
    return [r for r in records if r.id not in failed]


def _frame_counts(store: Store, ids: list[str], views: list[str]) -> list[int]:
    """Stored frames per video, checked equal in every view (aligned views)."""
    counts = []
    for vid in ids:
        per_view = {v: store.num_frames(vid, v) for v in views}
        if len(set(per_view.values())) > 1:
            shown = ", ".join(f"{v} {n}" for v, n in per_view.items())
            raise DataError(f"video {vid} is not aligned across views ({shown} frames): "
                            f"check the store with `python -m preprocess verify`")
        counts.append(next(iter(per_view.values())))
    return counts


def subset_indices(n: int, fraction: float, seed: int) -> np.ndarray:
    """A seeded, sorted choice of round(fraction·n) of range(n) (at least one), all of it for fraction 1."""
    if not 0.0 < fraction <= 1.0:
        raise DataError(f"fraction must be in (0, 1], got {fraction}")
    if fraction == 1.0:
        return np.arange(n)
    k = max(1, int(round(fraction * n)))
    return np.sort(np.random.default_rng([seed, n]).choice(n, size=k, replace=False))


class MultiViewClips(Dataset):
    """Clips of N·K stored frames from every requested view of a store, time-aligned, cropped and flipped.

    Item i is {"index": i, "label": int, <view>: uint8 tensor (N·K, c, c, C)}, with c = round(crop_fraction ·
    the view's short side). Train: random window, crop and flip (per view); eval: centred, no flip. The videos
    are a split's (or all), or exactly `video_ids` in that order when given. Call
    `set_epoch(e)` before each epoch; with persistent DataLoader workers it would not reach the workers.
    """

    def __init__(self, root: str | Path, views: list[str], split: str | None = None, subset: str | None = None,
                 num_blocks: int = 8, block_frames: int = 5, short: str = "spread", train: bool = True,
                 crop_fraction: float = 0.875, fraction: float = 1.0, seed: int = 0,
                 video_ids: list[str] | None = None, skip_failed: bool = False) -> None:
        self.num_failed_skipped = 0
        if short not in SHORT_POLICIES:
            raise DataError(f"short must be one of {', '.join(SHORT_POLICIES)}, got {short!r}")
        if num_blocks < 1 or block_frames < 1:
            raise DataError(f"num_blocks and block_frames must be >= 1, got {num_blocks} and {block_frames}")
        if seed < 0:
            raise DataError(f"seed must be >= 0, got {seed}")
        self.store = _open_store(root)
        self.views = list(views)
        self.cuts = _view_cuts(self.store, self.views, crop_fraction)
        self.num_blocks, self.block_frames, self.short = num_blocks, block_frames, short
        self.train, self.seed, self.epoch = train, seed, 0
        try:
            if video_ids is None:
                records, what = _select(self.store.manifest.records, split, subset)
            else:
                records, what = _by_id(self.store.manifest.records, video_ids), f"{len(video_ids)} chosen videos"
            if skip_failed:
                kept = _drop_failed(self.store, records, self.views, what)
                self.num_failed_skipped = len(records) - len(kept)
                records = kept
            _check_stored(self.store, records, self.views, what)
            counts = _frame_counts(self.store, [r.id for r in records], self.views)
        except DataError:
            raise
        except UserError as exc:  # e.g. a shard file missing: the store's own one-line message
            raise DataError(str(exc)) from None
        finally:
            self.store.close()  # no HDF5 handle may cross a fork into the DataLoader workers
        keep = [i for i, n in enumerate(counts)
                if window_indices(n, num_blocks, block_frames, None, short) is not None]
        self.num_skipped = len(records) - len(keep)
        if self.num_skipped:
            log.warning("%s: skipped %d of %d videos of %s shorter than %d stored frames", self.store.root,
                        self.num_skipped, len(records), what, num_blocks * block_frames)
        if not keep:
            raise DataError(f"no video to sample from {what} in {self.store.root}"
                            + (f" ({self.num_skipped} shorter than one clip skipped)" if self.num_skipped else ""))
        keep = [keep[i] for i in subset_indices(len(keep), fraction, seed)]
        self.records: list[VideoRecord] = [records[i] for i in keep]
        self.num_frames: list[int] = [counts[i] for i in keep]

    @property
    def crop_sides(self) -> dict[str, int]:
        """The square crop side c of every view."""
        return {c.name: c.side for c in self.cuts}

    @property
    def video_ids(self) -> list[str]:
        """Ids of the sampled videos, in dataset order."""
        return [r.id for r in self.records]

    def item_spec(self) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
        """Shape and dtype of every key of an item (all items alike), for loaders that preallocate batches."""
        length = self.num_blocks * self.block_frames
        spec: dict[str, tuple[tuple[int, ...], torch.dtype]] = {"index": ((), torch.int64), "label": ((), torch.int64)}
        for cut in self.cuts:
            spec[cut.name] = ((length, cut.side, cut.side, int(self.store.view_meta[cut.name]["channels"])), torch.uint8)
        return spec

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose random draws `__getitem__` makes."""
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        self.epoch = int(epoch)

    def __len__(self) -> int:
        """Number of samples."""
        return len(self.records)

    def window(self, index: int, rng: np.random.Generator | None) -> np.ndarray:
        """The stored-frame indices of sample `index` (the same for every view)."""
        idx = window_indices(self.num_frames[index], self.num_blocks, self.block_frames, rng, self.short)
        assert idx is not None  # videos without a window were dropped at build time
        return idx

    def read_frames(self, video_id: str, cut: ViewCut, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """uint8 (S, H, W, C) frames of one view holding the window, and the window's indices into them (None:
        all, in order); the only I/O of a sample, which a subclass may replace."""
        return read_span(self.store, video_id, cut.name, idx)

    def __getitem__(self, index: int) -> dict[str, Any]:
        """Sample `index` of the current epoch: {"index", "label", <view>: uint8 (N·K, c, c, C)}."""
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} clips")
        index %= len(self)
        rng = np.random.default_rng([self.seed, self.epoch, index]) if self.train else None
        return {"index": index, **self.clip(index, self.window(index, rng), rng)}

    def clip(self, video: int, idx: np.ndarray, rng: np.random.Generator | None) -> dict[str, Any]:
        """{"label", <view>: uint8 (len(idx), c, c, C)} of video number `video` at stored frames `idx`; crop and
        flip drawn from `rng` (centred, no flip without)."""
        record = self.records[video]
        sample: dict[str, Any] = {"label": int(record.label)}
        for cut in self.cuts:
            frames, local = self.read_frames(record.id, cut, idx)
            try:
                top, left = crop_box(frames.shape[1], frames.shape[2], cut.side, rng)
            except ValueError as exc:
                raise DataError(f"video {record.id}, view {cut.name}: {exc}") from None
            flip = rng is not None and bool(rng.random() < 0.5) and cut.flippable
            sample[cut.name] = cut_clip(torch.from_numpy(frames), top, left, cut.side, flip, cut.flip_perm,
                                        None if local is None else torch.from_numpy(local))
        return sample


class DenseClips(MultiViewClips):
    """Every test-time window of every video: the video cut into N-block clips overlapping by `overlap`
    (half, as DPC/CoCon test), centre crop, no flip. Item i is {"index": i, "video": v, "label", <view>...};
    `max_windows` > 0 keeps that many evenly spaced windows per video (for features over long videos).
    `placement="even"` instead cuts exactly `max_windows` clips with evenly spaced starts (TCLR's test clips,
    `sampling.even_windows`; `overlap` unused). No test video is ever skipped: one shorter than a clip gets
    one spread window, whatever `short` says."""

    def __init__(self, *args: Any, overlap: float = 0.5, max_windows: int = 0, placement: str = "windows",
                 **kwargs: Any) -> None:
        if placement not in PLACEMENTS or (placement == "even" and max_windows < 1):
            raise ValueError(f"placement must be one of {PLACEMENTS} (even with max_windows >= 1), got "
                             f"{placement!r} with {max_windows}")
        kwargs["train"] = False
        kwargs["short"] = "spread"
        super().__init__(*args, **kwargs)
        self.items: list[tuple[int, np.ndarray]] = []
        for v, n in enumerate(self.num_frames):
            if placement == "even":
                self.items += [(v, w) for w in even_windows(n, self.num_blocks, self.block_frames, max_windows)]
                continue
            windows = dense_windows(n, self.num_blocks, self.block_frames, overlap)
            if 0 < max_windows < len(windows):
                windows = [windows[i] for i in np.linspace(0, len(windows) - 1, max_windows).round().astype(int)]
            self.items += [(v, w) for w in windows]

    def __len__(self) -> int:
        return len(self.items)

    def item_spec(self) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
        return {**super().item_spec(), "video": ((), torch.int64)}

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} windows")
        index %= len(self)
        video, idx = self.items[index]
        return {"index": index, "video": video, **self.clip(video, idx, None)}
