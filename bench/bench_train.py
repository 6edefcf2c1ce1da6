"""Training throughput and peak memory at the test size: clips/s of full CoCon training steps on CPU
(or the GPU when there is one), per stage (cpc on one view, cocon on two views), each step the engine's public
`Runner.step` (augmentation, forward, loss, NaN guard, backward, Adam).

    .venv/bin/python bench/bench_train.py [--steps 30] [--width 0.125] [--size 64] [--batch 4]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from preprocess.cli import main as preprocess_main  # noqa: E402
from train.config import load_config  # noqa: E402
from train.engine.distributed import DistInfo, pick_device  # noqa: E402
from train.engine.runner import Runner  # noqa: E402
from train.methods.cocon import CoconConfig, CoconStage, CoconStageJob  # noqa: E402


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux ru_maxrss is in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def time_stage(cfg, stage: CoconStage, steps: int, warmup: int = 3) -> dict[str, float]:
    """Run `steps` optimiser steps of one stage (after `warmup`), return clips/s and peak memory."""
    dist = DistInfo(device=pick_device(cfg.device))
    runner = Runner(CoconStageJob(cfg, stage, dist), dist, resume=False)
    batches = []
    while len(batches) < steps + warmup:
        batches.extend(runner.batches("train"))
    if runner.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(runner.device)
    started = None
    for i, batch in enumerate(batches[: steps + warmup]):
        if i == warmup:
            if runner.device.type == "cuda":
                torch.cuda.synchronize(runner.device)
            started = time.perf_counter()
        runner.step(batch)
    if runner.device.type == "cuda":
        torch.cuda.synchronize(runner.device)
    seconds = time.perf_counter() - started
    out = {"clips_per_s": steps * cfg.data.batch_size / seconds, "seconds_per_step": seconds / steps,
           "peak_rss_mb": peak_rss_mb()}
    if runner.device.type == "cuda":
        out["peak_gpu_mb"] = torch.cuda.max_memory_allocated(runner.device) / 2 ** 20
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--width", type=float, default=0.125)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--work", default=None, help="work folder (default: a temporary one)")
    args = p.parse_args()
    print("$ .venv/bin/python bench/bench_train.py " + " ".join(sys.argv[1:]))
    work = Path(args.work or tempfile.mkdtemp(prefix="bench-train-"))
    videos, store = work / "videos", work / "store"
    if not store.exists():
        assert preprocess_main(["sample", str(videos)]) == 0
        assert preprocess_main(["run", "--videos", str(videos), "--out", str(store), "--views", "rgb,flow_dis",
                                "--no-progress"]) == 0
    base = [f"data.root={store}", f"out={work / 'runs'}", "data.views=[rgb, flow_dis]", f"model.width={args.width}",
            f"model.sizes={{rgb: {args.size}, flow_dis: {args.size}}}", f"data.batch_size={args.batch}",
            "data.workers=0", "progress=false"]
    results = {}
    for stage in (CoconStage("cpc-rgb", 1, ["rgb"]), CoconStage("cocon", 1, ["rgb", "flow_dis"], cooperative=True)):
        cfg = load_config(None, base + [f"name={stage.name}"], CoconConfig)
        results[stage.name] = time_stage(cfg, stage, args.steps)
    device = str(pick_device("auto"))
    print(f"\ndevice {device}, torch threads {torch.get_num_threads()}, width {args.width} "
          f"(feature dim {int(max(4, round(64 * args.width)) * 4)}), input {args.size}px, batch {args.batch}, "
          f"8 blocks x 5 frames, {args.steps} timed steps\n")
    print("| stage | views | clips/s | s/step | peak RSS MB |" + (" peak GPU MB |" if "cuda" in device else ""))
    print("|---|---|---|---|---|" + ("---|" if "cuda" in device else ""))
    for name, r in results.items():
        views = "rgb" if name == "cpc-rgb" else "rgb + flow_dis"
        row = f"| {name} | {views} | {r['clips_per_s']:.1f} | {r['seconds_per_step']:.3f} | {r['peak_rss_mb']:.0f} |"
        print(row + (f" {r['peak_gpu_mb']:.0f} |" if "peak_gpu_mb" in r else ""))
    out = ROOT / "bench" / "results" / "train.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": vars(args), "device": device, "results": results}, indent=1))


if __name__ == "__main__":
    main()
