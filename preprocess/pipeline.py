"""One unit of batch work: decode every video of one shard once and write each missing view's shard.

Runs in a worker process (worker_pool.py on one machine, or a Dask worker); a video that fails goes into
every view's failures record with its reason and the shard goes on.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np

from data_specs import VideoRecord

from .decode import FramePair, VideoMeta, decode_pairs
from .errors import VideoError
from .flow.server import FlowServerError, ServerAddress
from .store.claims import ShardBusy, ShardClaim, remove_partials
from .store.layout import shard_path
from .store.entries import flow_target_entry, video_attrs
from .store.writer import ShardWriter
from .views import ViewOptions, build_view, library_versions

BATCH_FRAMES = 30  # frames decoded before the views compute them; a torch flow takes --flow-batch at once


@dataclass
class ShardTask:
    """What a worker needs to make one shard of some views."""

    root: str
    shard: int
    records: list[VideoRecord]
    views: list[str]
    options: ViewOptions
    decode_threads: int = 1
    cv_threads: int = 1
    crashed: dict[str, str] = field(default_factory=dict)  # video id -> why its worker died; not retried
    replace: bool = False  # make the views even where a finished shard exists (run --retry-failed)
    flow_server: ServerAddress | None = None  # where the torch TV-L1 is computed, when not in the worker


@dataclass
class ShardResult:
    """What a worker reports back: counts, failures and where its time went."""

    shard: int
    videos: int = 0
    stored_frames: int = 0
    decoded_frames: int = 0
    failures: list[dict[str, str]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    busy: str = ""  # why the shard was left alone: another live process is making it


def process_shard(task: ShardTask, on_video: Callable[[str | None], None] | None = None) -> ShardResult:
    """Make the missing views of one shard; publish each view's shard file only when it is complete.
    `on_video(id)` is called as each video starts and `on_video(None)` after the last, so that a supervisor
    knows which video, if any, a worker that died was making."""
    cv2.setNumThreads(task.cv_threads)
    _set_torch_threads(task)
    result = ShardResult(task.shard)
    try:
        with ShardClaim(Path(task.root), task.shard):
            return _make_shard(task, on_video, result)
    except ShardBusy as exc:  # a duplicate of this job runs: leave the shard to it, and say so
        result.busy = str(exc)
        return result
    except OSError as exc:  # a bad video is caught per video: this is the store (read-only, full, gone)
        raise StoreWriteError(f"writing the store failed: {exc}") from exc


def _make_shard(task: ShardTask, on_video: Callable[[str | None], None] | None, result: ShardResult) -> ShardResult:
    """process_shard's work, under the shard's claim (so every partial file of the shard is stale)."""
    started = time.perf_counter()
    root = Path(task.root)
    views = [v for v in task.views if task.replace or not shard_path(root, v, task.shard).exists()]
    if not views:
        return result
    computers = [build_view(v, task.options, task.flow_server) for v in views]
    versions = library_versions()
    writers = []
    for comp in computers:
        remove_partials(root, comp.name, task.shard)
        writers.append(ShardWriter(root, comp.name, task.shard, {**comp.attrs, "versions": versions},
                                   comp.compression, task.options.block_frames))
    decode_s = write_s = 0.0
    try:
        for record in task.records:
            if record.id in task.crashed:
                _record_failure(record, task.crashed[record.id], computers, writers, result)
                continue
            if on_video is not None:
                on_video(record.id)
            d, w = _process_video(record, task, computers, writers, result)
            decode_s += d
            write_s += w
        if on_video is not None:
            on_video(None)
        for writer in writers:
            t = time.perf_counter()
            writer.commit()
            write_s += time.perf_counter() - t
    except BaseException:
        for writer in writers:
            writer.discard()
        raise
    result.seconds = {"decode": decode_s, "write": write_s, "total": time.perf_counter() - started}
    for comp in computers:
        result.seconds[f"view:{comp.name}"] = comp.seconds
    return result


def _set_torch_threads(task: ShardTask) -> None:
    """A torch flow on the CPU runs as many threads as OpenCV does per worker (the workers fill the cores)."""
    if task.options.flow_impl != "opencv" and task.flow_server is None:
        import torch
        torch.set_num_threads(task.cv_threads)


def batch_frames(options: ViewOptions) -> int:
    """Frames gathered before the views compute: a batched flow gets whole --flow-batch batches."""
    return max(BATCH_FRAMES, options.flow_batch) if options.flow_impl != "opencv" else BATCH_FRAMES


class StoreWriteError(RuntimeError):
    """Writing the store failed (disk full, permissions): fatal for the task, unlike a bad video."""


def _store_io(fn: Any, *args: Any) -> None:
    try:
        fn(*args)
    except Exception as exc:
        raise StoreWriteError(f"writing the store failed: {exc}") from exc


def _process_video(record: VideoRecord, task: ShardTask, computers: list, writers: list[ShardWriter],
                   result: ShardResult) -> tuple[float, float]:
    """Decode one video once and feed every view; on failure, record it in every view."""
    meta = VideoMeta()
    with_next = any(c.needs_next for c in computers)
    with_source = any(c.needs_source for c in computers)
    for comp in computers:
        comp.reset()
    indices: list[int] = []
    times: list[float] = []
    targets: list[int] = []
    decode_s = write_s = 0.0
    for writer in writers:
        writer.begin_video(record.id)
    try:
        frames = decode_pairs(record.path, task.options.stride, task.options.size, with_next, meta,
                              threads=task.decode_threads, with_source=with_source, policy=task.options.frames)
        batch: list[FramePair] = []
        batch_size = batch_frames(task.options)
        while True:
            t = time.perf_counter()
            pair = next(frames, None)
            decode_s += time.perf_counter() - t
            if pair is not None:
                batch.append(pair)
            if batch and (pair is None or len(batch) == batch_size):
                indices.extend(p.index for p in batch)
                times.extend(p.time for p in batch)
                targets.extend(p.next_index for p in batch)
                for comp, writer in zip(computers, writers):
                    out = comp.compute(batch)
                    t = time.perf_counter()
                    _store_io(writer.append, out)
                    write_s += time.perf_counter() - t
                batch = []
            if pair is None:
                break
        attrs = video_attrs(record, meta)
        t = time.perf_counter()
        for comp, writer in zip(computers, writers):
            extra = flow_target_entry(meta, targets) if comp.needs_next else ({}, {})
            _store_io(writer.end_video, np.asarray(indices), np.asarray(times), {**attrs, **extra[1]}, extra[0])
        write_s += time.perf_counter() - t
        result.videos += 1
        result.stored_frames += len(indices)
        result.decoded_frames += meta.decoded_frames
    except (StoreWriteError, FlowServerError):
        raise
    except Exception as exc:  # a bad video must not stop the batch; the reason is recorded
        reason = str(exc) if isinstance(exc, VideoError) else f"{type(exc).__name__}: {' '.join(str(exc).split())}"
        for writer in writers:
            writer.abort_video()
        _record_failure(record, reason, computers, writers, result)
    return decode_s, write_s


def _record_failure(record: VideoRecord, reason: str, computers: list, writers: list[ShardWriter],
                    result: ShardResult) -> None:
    """Put a failed video, with its reason, into every view's failures record."""
    for writer in writers:
        writer.add_failure(record.id, record.path, reason)
    result.failures.extend({"view": comp.name, "id": record.id, "path": record.path, "reason": reason}
                           for comp in computers)
