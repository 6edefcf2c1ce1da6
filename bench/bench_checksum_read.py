"""What Fletcher-32 checksums cost a reader, in CPU time (less sensitive to a shared machine's load than wall
time): the same 40-frame windows of rgb + flow read from a store and from its copy without checksums,
interleaved rounds, clips per CPU second of this process.

    .venv/bin/python bench/bench_checksum_read.py                          # a store of the real clips
    .venv/bin/python bench/bench_checksum_read.py --store ROOT --views rgb,flow_tvl1
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from bench._common import DEFAULT_CLIPS
from bench.checksum_copy import copy_without_checksums
from preprocess.store import Store


def windows(store: Store, view: str, count: int, length: int, block: int, seed: int) -> list[tuple[str, int]]:
    """`count` random block-aligned windows of `length` stored frames (videos shorter than that are skipped)."""
    rng = np.random.default_rng(seed)
    ids = [v for v in store.video_ids(view) if store.num_frames(v, view) >= length]
    out = []
    for _ in range(count):
        v = ids[int(rng.integers(len(ids)))]
        out.append((v, int(rng.integers(0, store.num_frames(v, view) - length + 1)) // block * block))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clips", default=str(DEFAULT_CLIPS), help="folder of videos to make the store from")
    p.add_argument("--store", default=None, help="an existing store (made with checksums) instead")
    p.add_argument("--views", default="rgb,flow_farneback")
    p.add_argument("--windows", type=int, default=200)
    p.add_argument("--frames", type=int, default=40, help="stored frames per window (8 blocks of 5)")
    p.add_argument("--rounds", type=int, default=7)
    args = p.parse_args(argv)
    views = args.views.split(",")
    work = Path(tempfile.mkdtemp(prefix="bench-checksum-"))
    src = Path(args.store) if args.store else work / "store"
    if not args.store:
        subprocess.run([sys.executable, "-m", "preprocess", "run", "--videos", args.clips, "--out", str(src),
                        "--views", args.views, "--no-progress", "--jobs", "2"], check=True)
    stores = {"checksums": Store(src), "no checksums": Store(copy_without_checksums(src, work / "plain"))}
    wins = windows(stores["checksums"], views[0], args.windows, args.frames, 5, 0)
    rates: dict[str, list[float]] = {k: [] for k in stores}
    for r in range(args.rounds):
        for name in (list(stores) if r % 2 == 0 else list(reversed(stores))):
            store = stores[name]
            start = time.process_time()
            for video, t0 in wins:
                for view in views:
                    store.read(video, view, t0, t0 + args.frames)
            rates[name].append(len(wins) / (time.process_time() - start))
    for name, rs in rates.items():
        print(f"{name}: {statistics.median(rs):.1f} clips per CPU second (median of {args.rounds}; "
              f"rounds {', '.join(f'{x:.1f}' for x in rs)})")
    cost = 1 - statistics.median(rates["checksums"]) / statistics.median(rates["no checksums"])
    print(f"Fletcher-32 read cost: {100 * cost:.1f}% of CPU time per clip ({len(wins)} windows of {args.frames} "
          f"frames of {', '.join(views)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
