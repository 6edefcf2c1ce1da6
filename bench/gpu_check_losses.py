"""Part of bench/gpu_check.sh: the first epoch's training loss of every stage of two CoCon runs (AMP and
fp32, same seed and data) agree within a relative tolerance, and all are finite.

    python bench/gpu_check_losses.py RUN_A RUN_B --rtol 0.05
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path


def first_losses(run: Path) -> dict[str, float]:
    """stage -> the total training loss of its first epoch, from each stage's metrics.jsonl."""
    out = {}
    for path in sorted(run.glob("*/metrics.jsonl")):
        first = json.loads(path.read_text().splitlines()[0])
        out[path.parent.name] = float(first["train"]["total"])
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run_a", type=Path)
    ap.add_argument("run_b", type=Path)
    ap.add_argument("--rtol", type=float, default=0.05)
    args = ap.parse_args(argv)
    a, b = first_losses(args.run_a), first_losses(args.run_b)
    ok = bool(a) and a.keys() == b.keys()
    for stage in sorted(a):
        x, y = a[stage], b.get(stage, float("nan"))
        good = math.isfinite(x) and math.isfinite(y) and abs(x - y) <= args.rtol * abs(y)
        ok &= good
        print(f"{stage}: {x:.5f} vs {y:.5f} (relative difference {abs(x - y) / abs(y):.4f}, tolerance "
              f"{args.rtol}) {'ok' if good else 'DIFFERENT'}")
    if not a:
        print(f"no metrics.jsonl under {args.run_a}", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
