"""The training data path alone: aligned multi-view blocks per second per worker, ours vs a DPC-style loader.

Ours (`train.data.MultiViewClips`) reads each clip's window from the HDF5 store with one read per view
(every chunk's Fletcher-32 checksum checked; only the crop copied out, into the batch slot when there is
one); the baseline (`bench/baseline_jpeg_loader.py`) opens one JPEG per frame with PIL, as DPC's
`pil_loader`, from folders written from the same store's frames. Both pick the same N×K window (8×5 stored
frames, stride 3), do the same integer crop and flip and return uint8 tensors: no float arithmetic in either.
Ours goes through `train.data.loader.SlotLoader` (what the trainer uses), the baseline through
`torch.utils.data.DataLoader` (what DPC uses), with W = 0 (main process) and 1 workers, batch 8; each also
through the other loader, for the record. One block = K frames of every requested view.

    .venv/bin/python bench/bench_train_data.py                      # real clips, rgb + flow_farneback
    .venv/bin/python bench/bench_train_data.py --store ROOT --views rgb,flow_tvl1
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from bench._common import (DEFAULT_CLIPS, RESULTS_DIR, environment, fmt, link_clips, list_clips, md_table, ratio,
                           run_preprocess, short_cmd, shown_command, tree_bytes, write_json)
from bench.baseline_jpeg_loader import JpegClips, write_jpeg_folders
from bench.checksum_copy import copy_without_checksums
from train.data import MultiViewClips
from train.data.loader import SlotLoader

STRIDE = 3
SIZE = 128
FLOOR = "DataLoader alone (no I/O)"
OURS, OURS_TORCH, BASE, BASE_SLOTS = "ours", "ours, DataLoader", "baseline", "baseline, slot loader"
NO_CHECKSUMS = "ours, no Fletcher-32"


class Canned(Dataset):
    """The DataLoader alone: every item is a fresh copy of one prepared sample (no reading, no cutting)."""

    def __init__(self, sample: dict[str, Any], length: int) -> None:
        self.sample, self.length = sample, length

    def set_epoch(self, epoch: int) -> None:
        """Nothing to choose."""

    def __len__(self) -> int:
        """Number of samples."""
        return self.length

    def __getitem__(self, k: int) -> dict[str, Any]:
        """A copy of the prepared sample."""
        return {key: v.clone() if torch.is_tensor(v) else v for key, v in self.sample.items()}


class Repeat(Dataset):
    """`length` samples cycling through a dataset, epoch k // len for sample k (new windows and crops each pass)."""

    def __init__(self, dataset: Any, length: int) -> None:
        self.dataset, self.length = dataset, length

    def __len__(self) -> int:
        """Number of samples."""
        return self.length

    def item_spec(self) -> dict[str, Any]:
        """The wrapped dataset's item shapes (for the slot loader)."""
        return self.dataset.item_spec()

    def __getitem__(self, k: int) -> dict[str, Any]:
        """Sample k % len of epoch k // len."""
        n = len(self.dataset)
        self.dataset.set_epoch(k // n)
        return self.dataset[k % n]

    def fill_rows(self, k: int, rows: dict[str, torch.Tensor]) -> dict[str, Any]:
        """Sample k written into a slot loader's rows, when the wrapped dataset can (as training reads it)."""
        if not hasattr(self.dataset, "fill_rows"):
            return self[k]
        n = len(self.dataset)
        self.dataset.set_epoch(k // n)
        return self.dataset.fill_rows(k % n, rows)


def time_loader(dataset: Any, clips: int, batch_size: int, workers: int, kind: str = "torch") -> dict[str, float]:
    """Iterate a loader ("torch": DataLoader, "slots": ours) over `clips` samples; time everything after the
    first batch (worker start-up)."""
    repeated = Repeat(dataset, clips)
    loader = SlotLoader(repeated, range(clips), batch_size, workers) if kind == "slots" else \
        DataLoader(repeated, batch_size=batch_size, num_workers=workers, shuffle=False)
    it = iter(loader)
    next(it)
    cpu0, t0, n = time.process_time(), time.perf_counter(), 0
    for batch in it:
        n += len(batch["index"])
    wall = time.perf_counter() - t0
    return {"clips": n, "seconds": wall, "main_cpu_seconds": time.process_time() - cpu0}


def same_work_check(ours: MultiViewClips, base: JpegClips, views: list[str]) -> dict[str, float]:
    """Mean |ours − baseline| per view on one sample: same window and crop, so only JPEG loss remains."""
    a, b = ours[0], base[0]
    out = {}
    for v in views:
        if a[v].shape != b[v].shape:
            raise SystemExit(f"error: {v}: ours {tuple(a[v].shape)} vs baseline {tuple(b[v].shape)}")
        out[v] = float((a[v].float() - b[v].float()).abs().mean())
    return out


def measure(datasets: dict[str, tuple[Any, str]], workers: list[int], clips: int, batch_size: int,
            rounds: int, num_blocks: int) -> list[dict[str, Any]]:
    """Blocks/s of every (dataset, loader kind) for every worker count; the median of `rounds` interleaved
    rounds."""
    rows = []
    for w in workers:
        runs: dict[str, list[dict[str, float]]] = {name: [] for name in datasets}
        for r in range(rounds):
            order = list(datasets) if r % 2 == 0 else list(reversed(datasets))
            for name in order:
                runs[name].append(time_loader(*datasets[name][:1], clips, batch_size, w, datasets[name][1]))
        for name, rs in runs.items():
            rates = [x["clips"] * num_blocks / x["seconds"] for x in rs]
            rate = statistics.median(rates)
            rows.append({"loader": name, "workers": w, "worker_cores": max(w, 1), "blocks_per_s": rate,
                         "blocks_per_s_per_core": rate / max(w, 1), "clips_per_s": rate / num_blocks,
                         "rounds": rs, "blocks_per_s_rounds": rates})
    return rows


def results_table(rows: list[dict[str, Any]]) -> str:
    """Markdown: one line per (workers, loader), with ours/baseline per worker count."""
    by = {(r["workers"], r["loader"]): r for r in rows}
    order = list(dict.fromkeys(r["loader"] for r in rows))
    lines = []
    for (w, name), r in sorted(by.items(), key=lambda kv: (kv[0][0], order.index(kv[0][1]))):
        base = by.get((w, BASE))
        lines.append([w if w else "0 (main process)", name, fmt(r["clips_per_s"], 1), fmt(r["blocks_per_s"], 0),
                      fmt(r["blocks_per_s_per_core"], 0),
                      ratio(r["blocks_per_s"], base["blocks_per_s"])
                      if name in (OURS, OURS_TORCH, NO_CHECKSUMS) and base else None])
    return md_table(["workers", "loader", "clips/s", "blocks/s", "blocks/s per worker core", "ours / baseline"],
                    lines)


def build_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--clips", default=str(DEFAULT_CLIPS), help="folder of videos (read in place, never copied)")
    p.add_argument("--limit", type=int, default=0, help="use the first N clips, sorted by name (0: all)")
    p.add_argument("--store", default=None, help="use this existing store instead of making one from --clips")
    p.add_argument("--views", default="rgb,flow_farneback", help="views to load (and make)")
    p.add_argument("--jobs", type=int, default=2, help="--jobs of the preprocess run")
    p.add_argument("--compression", default=None, metavar="VIEW=NAME,...",
                   help="--compression of the preprocess run (default: the views' own, from data_specs/views.py)")
    p.add_argument("--samples", type=int, default=320, help="clips per timed run (cycling through the videos)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--workers", default="0,1", help="DataLoader num_workers values to measure")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds per setting (median reported)")
    p.add_argument("--num-blocks", type=int, default=8)
    p.add_argument("--block-frames", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checksum-cost", action="store_true",
                   help="also read a copy of the store without Fletcher-32 checksums (interleaved), to measure "
                        "what the checksums cost")
    p.add_argument("--work", default=None, help="work folder (default: a temporary folder, removed afterwards)")
    p.add_argument("--json", default=str(RESULTS_DIR / "train_data.json"), help="where to write the result")
    return p


def prepare(args: argparse.Namespace, work: Path, views: list[str]) -> tuple[Path, dict[str, Any]]:
    """The store to read (made from the clips unless given) and what making it cost."""
    if args.store:
        return Path(args.store), {"store": args.store}
    clips = list_clips(args.clips, args.limit)
    videos = link_clips(clips, work / "videos")
    extra = ["--compression", args.compression] if args.compression else []
    res = run_preprocess(videos, work / "store", ",".join(views), args.jobs, SIZE, STRIDE, extra)
    return work / "store", {"preprocess_cmd": short_cmd(res["cmd"]), "clips": len(clips),
                            "preprocess_wall_seconds": res["outer_wall_seconds"], "returncode": res["returncode"]}


def store_facts(ours: MultiViewClips, store: Path, jpeg: Path, clip_frames: int) -> dict[str, Any]:
    """Compression, lengths and bytes of what both loaders read."""
    lengths = np.array(ours.num_frames)
    kinds = {v: ours.store.view_meta[v]["kind"] for v in ours.views}
    return {
        "store_compression": {v: ours.store.view_meta[v].get("compression") for v in ours.views},
        "stored_frames_per_video": {"min": int(lengths.min()), "median": float(np.median(lengths)),
                                    "max": int(lengths.max()), "shorter_than_a_clip": int((lengths < clip_frames).sum())},
        "bytes": {"store": {v: tree_bytes(store / v) for v in ours.views},
                  "jpeg": {v: tree_bytes(jpeg / (v if kinds[v] == "flow" else "frames")) for v in ours.views}},
    }


def main(argv: list[str] | None = None) -> int:
    """Make the store and the JPEG folders, time both loaders, print and write the result."""
    args = build_parser().parse_args(argv)
    views = [v for v in args.views.split(",") if v]
    workers = [int(w) for w in args.workers.split(",")]
    command = shown_command([sys.argv[0], *(argv if argv is not None else sys.argv[1:])])
    print(f"$ {command}\n", flush=True)
    tmp = None if args.work else Path(tempfile.mkdtemp(prefix="bench-train-data-"))
    work = Path(args.work) if args.work else tmp
    work.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)  # per-core figures: the main process gets one core, like a worker
    try:
        store, made = prepare(args, work, views)
        t = time.perf_counter()
        made["jpeg_files"] = write_jpeg_folders(store, work / "jpeg", views)
        made["jpeg_write_seconds"] = time.perf_counter() - t
        kwargs = dict(num_blocks=args.num_blocks, block_frames=args.block_frames, train=True, seed=args.seed)
        ours = MultiViewClips(store, views, **kwargs)
        base = JpegClips(work / "jpeg", store, views, **kwargs)
        diff = same_work_check(ours, base, views)
        for ds in (ours, base):  # warm the page cache for both
            time_loader(ds, len(ds) + args.batch_size, args.batch_size, 0)
        datasets = {OURS: (ours, "slots"), OURS_TORCH: (ours, "torch"), BASE: (base, "torch"),
                    BASE_SLOTS: (base, "slots"), FLOOR: (Canned(ours[0], len(ours)), "torch")}
        if args.checksum_cost:
            plain = MultiViewClips(copy_without_checksums(store, work / "no-checksums"), views, **kwargs)
            time_loader(plain, len(plain) + args.batch_size, args.batch_size, 0)
            datasets = {OURS: datasets[OURS], NO_CHECKSUMS: (plain, "slots"), **datasets}
        rows = measure(datasets, workers, args.samples, args.batch_size, args.rounds, args.num_blocks)
        facts = store_facts(ours, store, work / "jpeg", args.num_blocks * args.block_frames)
        table = results_table(rows)
        res = {"command": command, "views": views, "videos": len(ours), "samples_per_run": args.samples,
               "batch_size": args.batch_size, "num_blocks": args.num_blocks, "block_frames": args.block_frames,
               "stride": STRIDE, "crop_sides": ours.crop_sides, "made": made, **facts,
               "mean_abs_diff_ours_vs_baseline_sample0": diff, "results": rows, "table": table,
               "environment": environment()}
        path = write_json(Path(args.json), res)
        shown = ", ".join(f"{v} ({c})" for v, c in facts["store_compression"].items())
        print(f"{len(ours)} videos ({made.get('preprocess_cmd', store)}); views {shown}; "
              f"{args.samples} clips per run, batch {args.batch_size}, median of {args.rounds} rounds; "
              f"one block = {args.block_frames} frames of every view, {args.num_blocks} blocks per clip\n")
        print(table)
        print("\n- same work: mean |ours - baseline| on one sample (JPEG loss only): "
              + ", ".join(f"{v} {d:.2f}" for v, d in diff.items()))
        print(f"- '{OURS}': MultiViewClips through train.data.loader.SlotLoader (what training uses); "
              f"'{BASE}': the DPC-style JPEG loader through torch's DataLoader (what DPC uses); the other two "
              f"rows swap the loaders")
        print(f"- '{FLOOR}': the same batches made from one prepared sample, no reading or cutting: the "
              f"DataLoader's own cost (collate; with workers, the shared-memory transfer)")
        print(f"\nwrote {path}")
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
