"""Part of bench/gpu_check.sh: a flow view of two stores (say, the torch TV-L1 on CUDA through the flow server
and on the CPU) holds the same videos and frames, with flows that agree within the documented tolerance
(the CUDA test's: mean endpoint difference <= 0.02 px, >= 95% identical stored bytes).

    python bench/gpu_check_stores.py STORE_A STORE_B --view flow_tvl1 --max-mean-epd 0.02 --min-identical 0.95
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from preprocess.store import Store


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("store_a", type=Path)
    ap.add_argument("store_b", type=Path)
    ap.add_argument("--view", default="flow_tvl1")
    ap.add_argument("--max-mean-epd", type=float, default=0.02, help="px, over every stored flow pixel")
    ap.add_argument("--min-identical", type=float, default=0.95, help="share of identical stored uint8 values")
    args = ap.parse_args(argv)
    a, b = Store(args.store_a), Store(args.store_b)
    ids = a.video_ids(args.view)
    if not ids or ids != b.video_ids(args.view):
        print(f"the stores hold different videos in {args.view}: {len(ids)} vs {len(b.video_ids(args.view))}")
        return 1
    same = total = 0
    epd_sum = epd_max = 0.0
    for vid in ids:
        if not np.array_equal(a.frame_indices(vid, args.view), b.frame_indices(vid, args.view)):
            print(f"{vid}: different stored frames")
            return 1
        qa, qb = a.read(vid, args.view), b.read(vid, args.view)
        fa, fb = a.read(vid, args.view, pixels=True), b.read(vid, args.view, pixels=True)
        epd = np.linalg.norm(fa.astype(np.float64) - fb.astype(np.float64), axis=-1)
        same += int((qa == qb).sum())
        total += qa.size
        epd_sum += float(epd.sum())
        epd_max = max(epd_max, float(epd.max()))
    mean_epd, identical = epd_sum / (total / 2), same / total
    ok = mean_epd <= args.max_mean_epd and identical >= args.min_identical
    print(f"{args.view}: {len(ids)} videos, {total // 2} flow pixels: mean endpoint difference {mean_epd:.4f} px "
          f"(tolerance {args.max_mean_epd}), max {epd_max:.3f} px, identical stored bytes {100 * identical:.2f}% "
          f"(tolerance {100 * args.min_identical:.0f}%) {'ok' if ok else 'DIFFERENT'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
