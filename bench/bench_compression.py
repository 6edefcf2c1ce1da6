"""Choose the HDF5 compression per view: size, write speed and random clip-read speed on frames the pipeline made.

Frames come from `python -m preprocess run` on real clips (or an existing store, --store). For each
view, every compression in preprocess.store.compression.COMPRESSIONS gets its own HDF5 file with the
store's layout (one (T, H, W, C) uint8 dataset per video, chunks of --block-frames frames along time).
Reads are training clips: --clip-blocks consecutive blocks from a random video at a random block
boundary, all files in the page cache, no HDF5 chunk cache (every clip decompresses its chunks).
Timings are medians over --rounds rounds that interleave the compressions (the machine is noisy).
Recommendation per view: within --tolerance of the smallest size, the fastest reader; readers whose
per-round ranges overlap it are tied, and the fastest writer among them wins.

    python bench/bench_compression.py
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import h5py
import numpy as np

from bench._common import (DEFAULT_CLIPS, RESULTS_DIR, environment, fmt, list_clips, md_table, prepare_clips,
                           run_preprocess, short_cmd, shown_command, write_json)
from preprocess.store import Store
from preprocess.store.compression import COMPRESSIONS, compression_kwargs

SIZE_TOLERANCE = 0.10


def load_view_arrays(root: Path, view: str) -> dict[str, np.ndarray]:
    """Every stored video of one view of a store, decompressed into memory."""
    store = Store(root)
    try:
        return {vid: store.read(vid, view) for vid in store.video_ids(view)}
    finally:
        store.close()


def write_file(path: Path, arrays: dict[str, np.ndarray], compression: str, block: int) -> float:
    """Write `arrays` as one chunked dataset per video (the shard writer's layout); return the seconds taken."""
    kwargs = compression_kwargs(compression)
    path.unlink(missing_ok=True)
    start = time.perf_counter()
    with h5py.File(path, "w", libver=("earliest", "v110"), track_order=True) as f:
        group = f.create_group("videos", track_order=True)
        for i, (vid, data) in enumerate(arrays.items()):
            _, h, w, c = data.shape
            ds = group.create_dataset(f"v{i:05d}", shape=data.shape, maxshape=(None, h, w, c), dtype=np.uint8,
                                      chunks=(block, h, w, c), **kwargs)
            ds[...] = data
            ds.attrs["id"] = vid
    return time.perf_counter() - start


def warm_page_cache(path: Path) -> None:
    """Read a file once so that the timed reads come from the page cache."""
    with open(path, "rb") as fh:
        while fh.read(1 << 24):
            pass


def plan_clips(lengths: list[int], n: int, block: int, clip_blocks: int,
               seed: int) -> tuple[list[tuple[int, int]], int]:
    """`n` random (video index, first frame) training clips at block boundaries, and the clip length in frames."""
    clip = block * clip_blocks
    eligible = [i for i, t in enumerate(lengths) if t >= clip]
    if not eligible:  # short videos only: shorten the clip to what the longest video holds, in whole blocks
        clip = max(block, (max(lengths) // block) * block)
        eligible = [i for i, t in enumerate(lengths) if t >= clip]
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        v = int(rng.choice(eligible))
        starts = (lengths[v] - clip) // block + 1
        out.append((v, int(rng.integers(starts)) * block))
    return out, clip


def time_reads(path: Path, n_videos: int, plan: list[tuple[int, int]], clip: int) -> float:
    """Seconds to read every planned clip from an open file (no HDF5 chunk cache; the open is not timed)."""
    with h5py.File(path, "r", locking=False, rdcc_nbytes=0) as f:
        datasets = [f["videos"][f"v{i:05d}"] for i in range(n_videos)]
        start = time.perf_counter()
        for v, t0 in plan:
            datasets[v][t0:t0 + clip]
        return time.perf_counter() - start


def bench_view(arrays: dict[str, np.ndarray], compressions: list[str], folder: Path, block: int, clip_blocks: int,
               reads: int, rounds: int, write_rounds: int, seed: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Measure every compression on one view's arrays; return one row per compression and the workload."""
    folder.mkdir(parents=True, exist_ok=True)
    frames = sum(len(a) for a in arrays.values())
    raw = sum(a.nbytes for a in arrays.values())
    lengths = [len(a) for a in arrays.values()]
    paths = {c: folder / f"{c}.h5" for c in compressions}
    write_s: dict[str, list[float]] = {c: [] for c in compressions}
    for _ in range(write_rounds):
        for c in compressions:
            write_s[c].append(write_file(paths[c], arrays, c, block))
    sizes = {c: os.path.getsize(paths[c]) for c in compressions}
    for c in compressions:  # the bytes must come back exactly
        with h5py.File(paths[c], "r", locking=False) as f:
            for i, a in enumerate(arrays.values()):
                if not np.array_equal(f["videos"][f"v{i:05d}"][()], a):
                    raise RuntimeError(f"{c}: video {i} does not read back identically")
        warm_page_cache(paths[c])
    plan, clip = plan_clips(lengths, reads, block, clip_blocks, seed)
    clip_bytes = raw / frames * clip
    read_s: dict[str, list[float]] = {c: [] for c in compressions}
    for r in range(rounds):
        order = compressions if r % 2 == 0 else compressions[::-1]
        for c in order:
            read_s[c].append(time_reads(paths[c], len(arrays), plan, clip))
    rows = []
    for c in compressions:
        w = statistics.median(write_s[c])
        rd = statistics.median(read_s[c])
        rows.append({
            "compression": c, "file_bytes": sizes[c], "bytes_per_frame": sizes[c] / frames,
            "ratio": raw / sizes[c], "write_seconds": w, "write_mb_per_s": raw / w / 1e6,
            "write_ms_per_frame": 1e3 * w / frames,
            "read_seconds": rd, "clips_per_s": len(plan) / rd, "read_mb_per_s": len(plan) * clip_bytes / rd / 1e6,
            "ms_per_clip": 1e3 * rd / len(plan),
            "clips_per_s_range": [len(plan) / max(read_s[c]), len(plan) / min(read_s[c])],
            "write_seconds_all": write_s[c], "read_seconds_all": read_s[c],
        })
    workload = {"videos": len(arrays), "frames": frames, "raw_bytes": raw, "raw_bytes_per_frame": raw / frames,
                "frame_shapes": sorted({tuple(a.shape[1:]) for a in arrays.values()}),
                "clip_frames": clip, "clips_per_round": len(plan), "rounds": rounds, "write_rounds": write_rounds}
    return rows, workload


def recommend(rows: list[dict[str, Any]], tolerance: float = SIZE_TOLERANCE) -> tuple[str, str]:
    """Fastest clip reads among the compressions within `tolerance` of the smallest size; ties go to faster writes.

    Two read speeds are a tie when their per-round ranges overlap (the machine's noise cannot tell them apart).
    """
    smallest = min(r["bytes_per_frame"] for r in rows)
    near = [r for r in rows if r["bytes_per_frame"] <= (1 + tolerance) * smallest]
    fastest = max(near, key=lambda r: r["clips_per_s"])
    tied = [r for r in near if r["clips_per_s_range"][1] >= fastest["clips_per_s_range"][0]]
    best = min(tied, key=lambda r: r["write_ms_per_frame"])
    rule = (f"within {100 * tolerance:.0f}% of the smallest bytes/frame "
            f"({', '.join(r['compression'] for r in near)}), the fastest clip reads ({fastest['compression']}); "
            f"compressions whose per-round read ranges overlap it count as tied "
            f"({', '.join(r['compression'] for r in tied)}) and the fastest writer of those wins")
    return best["compression"], rule


def view_table(rows: list[dict[str, Any]], default: str | None) -> str:
    """Markdown table of one view's measurements."""
    out = []
    for r in sorted(rows, key=lambda r: r["bytes_per_frame"]):
        name = r["compression"] + (" (current default)" if r["compression"] == default else "")
        lo, hi = r["clips_per_s_range"]
        out.append([name, fmt(r["bytes_per_frame"], 0), f"{r['ratio']:.2f}", fmt(r["write_mb_per_s"], 0),
                    fmt(r["write_ms_per_frame"], 2), fmt(r["clips_per_s"], 0), f"{lo:,.0f}-{hi:,.0f}",
                    fmt(r["ms_per_clip"], 2), fmt(r["read_mb_per_s"], 0)])
    return md_table(["compression", "bytes/frame", "ratio", "write MB/s", "write ms/frame", "read clips/s",
                     "clips/s range (rounds)", "ms/clip", "read MB/s"], out)


def build_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--clips", default=str(DEFAULT_CLIPS), help="folder of videos (read in place, never copied)")
    p.add_argument("--limit", type=int, default=4, help="use the first N clips, sorted by name (0: all)")
    p.add_argument("--max-frames", type=int, default=0,
                   help="trim every clip to its first N frames (re-encoded copies in the work folder); 0: whole clips")
    p.add_argument("--store", default=None,
                   help="read the frames from this existing store instead of running the pipeline")
    p.add_argument("--views", default="rgb,flow_tvl1", help="views to make (and measure)")
    p.add_argument("--jobs", type=int, default=2, help="--jobs of the preprocess run")
    p.add_argument("--compressions", default=",".join(COMPRESSIONS), help="compressions to measure")
    p.add_argument("--block-frames", type=int, default=5, help="chunk length along time, frames")
    p.add_argument("--clip-blocks", type=int, default=8, help="consecutive blocks per training clip")
    p.add_argument("--reads", type=int, default=120, help="random clips read per compression per round")
    p.add_argument("--rounds", type=int, default=7, help="read rounds (median reported)")
    p.add_argument("--write-rounds", type=int, default=3, help="write rounds (median reported)")
    p.add_argument("--tolerance", type=float, default=SIZE_TOLERANCE,
                   help="size tolerance of the recommendation rule (0.10 = within 10%% of the smallest)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random clip plan")
    p.add_argument("--work", default=None, help="work folder (default: a temporary folder, removed afterwards)")
    p.add_argument("--json", default=str(RESULTS_DIR / "compression.json"), help="where to write the result")
    return p


def main(argv: list[str] | None = None) -> int:
    """Make (or open) a store, measure every compression per view, print tables and recommendations."""
    from data_specs.views import VIEWS

    args = build_parser().parse_args(argv)
    command = shown_command([sys.argv[0], *(argv if argv is not None else sys.argv[1:])])
    print(f"$ {command}\n", flush=True)
    compressions = [c.strip() for c in args.compressions.split(",") if c.strip()]
    for c in compressions:
        compression_kwargs(c)  # unknown names fail here, before any work
    views = [v.strip() for v in args.views.split(",") if v.strip()]
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="bench-compression-"))
    work.mkdir(parents=True, exist_ok=True)
    source: dict[str, Any]
    result: dict[str, Any] = {"command": command, "environment": environment(), "views": {}}
    try:
        if args.store:
            root = Path(args.store)
            source = {"store": str(root)}
        else:
            clips = list_clips(args.clips, args.limit)
            videos, _ = prepare_clips(clips, work / "videos", args.max_frames or None)
            root = work / "store"
            run = run_preprocess(videos, root, ",".join(views), args.jobs, 128, 3)
            source = {"clips": [str(c) for c in clips], "max_frames": args.max_frames, "cmd": run["cmd"],
                      "preprocess_wall_seconds": run["outer_wall_seconds"]}
            print(f"made the store in {run['outer_wall_seconds']:.1f} s: {short_cmd(run['cmd'])}", flush=True)
        result["source"] = source
        for view in views:
            arrays = load_view_arrays(root, view)
            if not arrays:
                print(f"{view}: no stored videos, skipped")
                continue
            rows, workload = bench_view(arrays, compressions, work / "compression" / view, args.block_frames,
                                        args.clip_blocks, args.reads, args.rounds, args.write_rounds, args.seed)
            best, rule = recommend(rows, args.tolerance)
            default = VIEWS[view].compression if view in VIEWS else None
            result["views"][view] = {"workload": workload, "rows": rows, "recommendation": best, "rule": rule,
                                     "current_default": default}
            shapes = ", ".join("x".join(map(str, s)) for s in workload["frame_shapes"])
            print(f"\n## {view}: {workload['videos']} videos, {workload['frames']} frames ({shapes}), "
                  f"{workload['raw_bytes_per_frame']:,.0f} raw bytes/frame; clip = {workload['clip_frames']} "
                  f"frames, {workload['clips_per_round']} clips x {workload['rounds']} rounds\n", flush=True)
            print(view_table(rows, default))
            print(f"\nrecommendation for {view}: **{best}** (rule: {rule}; current default {default})", flush=True)
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    print("\nrecommendations: " + "; ".join(f"{v} -> {r['recommendation']}" for v, r in result["views"].items()))
    path = write_json(Path(args.json), result)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
