"""TV-L1 flow: our PyTorch implementation against OpenCV's, in speed and in agreement.

Speed (default): pairs per second of OpenCV's TV-L1 on one core, ours on the CPU (1 and 2 threads) and,
when CUDA is there, on the GPU at batch 1, 8, 32, 128, at 171x128 and 340x256, on grey frame pairs of the
real clips (resized to exactly that size). Repeats interleave the configurations, so a shared machine's
load hits them alike: the rate kept is the best repeat, the ratio to OpenCV the median of each repeat's ratio,
with the 1-minute load average before each repeat and after the last.

Decode rate (--decode-rate): pairs per second one worker prepares for the flow (decode, resize, grey), the
figure that says how many decode workers feed one GPU. Server overhead (--server-overhead): what handing a
worker's pairs to the flow server and getting their flow back costs per pair, beyond the flow itself.

Accuracy (--accuracy): on pairs of every real clip at the store's settings (short side 128, stride 3) the
mean endpoint difference and identical uint8 bytes of ours vs OpenCV's; on the known-motion synthetic
pairs (translation, rotation, zoom) both endpoint errors against the true flow.

    python bench/bench_flow.py --accuracy --pairs-per-clip 4
    python bench/bench_flow.py --cpu-pairs 4 --repeats 2
    python bench/bench_flow.py --decode-rate --repeats 3             # what one decode worker feeds a GPU
    python bench/bench_flow.py --server-overhead --requests 20       # the flow server's transport, per pair
    python bench/bench_flow.py --gpu-only --batches 1,8,32,128   # on a GPU machine
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2
import numpy as np
import torch

from bench._common import DEFAULT_CLIPS, RESULTS_DIR, environment, fmt, list_clips, md_table, shown_command, write_json
from preprocess.decode import VideoMeta, decode_pairs
from preprocess.flow import FlowSettings, make_flow
from preprocess.flow.compare import endpoint_error, flow_agreement
from preprocess.synthetic import known_motion_pairs

SIZES = {"171x128": (128, 171), "340x256": (256, 340)}


def clip_pairs(clip: Path, size: int, stride: int, limit: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The first `limit` (grey t, grey t+1) pairs the pipeline would make of a clip."""
    out = []
    for pair in decode_pairs(str(clip), stride, size, True, VideoMeta()):
        out.append(pair.grey())
        if len(out) == limit:
            break
    return out


def sized_pairs(clips: list[Path], hw: tuple[int, int], count: int) -> tuple[np.ndarray, np.ndarray]:
    """`count` pairs from the clips, area-resized to exactly (h, w), cycling the clips' pairs as needed."""
    h, w = hw
    pool = []
    for clip in clips:
        pool.extend(clip_pairs(clip, min(h, w), 3, 2))
    prev = [cv2.resize(pool[i % len(pool)][0], (w, h), interpolation=cv2.INTER_AREA) for i in range(count)]
    nxt = [cv2.resize(pool[i % len(pool)][1], (w, h), interpolation=cv2.INTER_AREA) for i in range(count)]
    return np.stack(prev), np.stack(nxt)


def _rate(fn, prev: np.ndarray, nxt: np.ndarray) -> float:
    start = time.perf_counter()
    fn(prev, nxt)
    return len(prev) / (time.perf_counter() - start)


def speed(args: argparse.Namespace, clips: list[Path]) -> list[dict[str, Any]]:
    """Pairs per second per configuration (best of the interleaved repeats)."""
    cuda = torch.cuda.is_available()
    rows: list[dict[str, Any]] = []
    for size_name in args.sizes.split(","):
        hw = SIZES[size_name]
        configs: list[tuple[str, int, Any, int]] = []   # (name, threads, backend, pairs)
        if not args.gpu_only:
            configs.append(("opencv cpu", 1, make_flow("tvl1", {}, "opencv"), args.cpu_pairs))
            for threads in (1, 2):
                configs.append(("torch cpu", threads, make_flow("tvl1", {}, "torch", FlowSettings("cpu", args.cpu_pairs)),
                                args.cpu_pairs))
        if cuda:
            for batch in (int(b) for b in args.batches.split(",")):
                backend = make_flow("tvl1", {}, "torch", FlowSettings("cuda", batch))
                configs.append((f"torch cuda batch {batch}", 0, backend, batch * args.gpu_batches))
        most = max(n for *_, n in configs)
        prev, nxt = sized_pairs(clips, hw, most)
        for name, threads, backend, n in configs:
            if threads == 0:  # GPU: warm up (CUDA context, kernels) before timing
                backend(prev[:1], nxt[:1])
        rates: dict[int, list[float]] = {i: [] for i in range(len(configs))}
        loads: list[float] = []
        for _ in range(args.repeats):
            loads.append(os.getloadavg()[0])
            for i, (name, threads, backend, n) in enumerate(configs):
                if threads:
                    cv2.setNumThreads(threads)
                    torch.set_num_threads(threads)
                rates[i].append(_rate(backend, prev[:n], nxt[:n]))
                print(f"  {size_name} {name} threads {threads}: {rates[i][-1]:.3f} pairs/s "
                      f"(load {os.getloadavg()[0]:.1f})", file=sys.stderr)
        loads.append(os.getloadavg()[0])
        for i, (name, threads, backend, n) in enumerate(configs):
            # the ratio to OpenCV within each repeat (both under the same load), then the median over repeats
            ratios = [r / b for r, b in zip(rates[i], rates[0])] if not args.gpu_only else \
                [r / args.opencv_rate for r in rates[i]] if args.opencv_rate else []
            rows.append({"size": size_name, "config": name, "threads": threads or None, "pairs": n,
                         "pairs_per_s": max(rates[i]), "pairs_per_s_repeats": rates[i],
                         "x_opencv_1_core": float(np.median(ratios)) if ratios else None,
                         "x_opencv_1_core_repeats": ratios, "load_average_1min": loads})
    return rows


def decode_rate(args: argparse.Namespace, clips: list[Path]) -> list[dict[str, Any]]:
    """Pairs per second one decode worker prepares (decode, resize to the short side, grey t and t+1, as
    the pipeline does before the flow), one thread, over every stored pair of every clip; best of repeats."""
    cv2.setNumThreads(1)
    rows = []
    for short in (int(x) for x in args.decode_sizes.split(",")):
        best_s, pairs, frames, loads = float("inf"), 0, 0, []
        for _ in range(args.repeats):
            loads.append(os.getloadavg()[0])
            start, pairs, frames = time.perf_counter(), 0, 0
            for clip in clips:
                meta = VideoMeta()
                for pair in decode_pairs(str(clip), 3, short, True, meta):
                    pair.grey()
                    pairs += 1
                frames += meta.decoded_frames
            best_s = min(best_s, time.perf_counter() - start)
        rows.append({"short_side": short, "clips": len(clips), "pairs": pairs, "decoded_frames": frames,
                     "seconds": best_s, "pairs_per_s": pairs / best_s, "source_frames_per_s": frames / best_s,
                     "load_average_1min": loads + [os.getloadavg()[0]]})
        print(f"  short side {short}: {rows[-1]}", file=sys.stderr)
    return rows


def server_overhead(args: argparse.Namespace, clips: list[Path]) -> list[dict[str, Any]]:
    """What handing pairs to the flow server costs a worker beyond the flow itself: requests of 30 pairs (a
    worker's chunk) sent over the socket and answered, with a one-iteration TV-L1 so the transport dominates;
    overhead = round trip - the server's computing time, per pair."""
    from preprocess.flow.server import FlowServer, ServerFlow
    tiny = {"nscales": 1, "warps": 1, "inner_iterations": 1, "outer_iterations": 1, "median_filtering": 1}
    rows = []
    for size_name in args.sizes.split(","):
        prev, nxt = sized_pairs(clips, SIZES[size_name], 30)
        with FlowServer(tiny, FlowSettings("cpu", 30), gather_s=0.0) as server:
            client = ServerFlow(server.address, {})
            client(prev, nxt)   # connect, warm up
            start = time.perf_counter()
            for _ in range(args.requests):
                client(prev, nxt)
            wall = time.perf_counter() - start
            stats = server.stop()
        compute = stats["compute_seconds"] * args.requests / stats["requests"]
        pairs = 30 * args.requests
        rows.append({"size": size_name, "requests": args.requests, "pairs": pairs, "round_trip_s": wall,
                     "server_compute_s": compute, "overhead_ms_per_pair": 1000 * (wall - compute) / pairs,
                     "bytes_per_pair": int(prev[0].nbytes * 2 + prev[0].nbytes * 8),
                     "load_average_1min": os.getloadavg()[0]})
        print(f"  {rows[-1]}", file=sys.stderr)
    return rows


def accuracy(args: argparse.Namespace, clips: list[Path]) -> dict[str, Any]:
    """Ours vs OpenCV's on the real clips, and both vs the truth on known motion."""
    ocv = make_flow("tvl1", {}, "opencv")
    ours = make_flow("tvl1", {}, "torch", FlowSettings(args.device, 32))
    per_clip, flows_a, flows_b = [], [], []
    for clip in clips:
        pairs = clip_pairs(clip, 128, 3, args.pairs_per_clip)
        prev, nxt = np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])
        a, b = ocv(prev, nxt), ours(prev, nxt)
        flows_a.append(a.reshape(-1, 2))
        flows_b.append(b.reshape(-1, 2))
        per_clip.append({"clip": clip.name, "pairs": len(pairs), "size": list(prev.shape[1:]),
                         **flow_agreement(a, b)})
        print(f"  {clip.name}: {per_clip[-1]}", file=sys.stderr)
    overall = flow_agreement(np.concatenate(flows_a), np.concatenate(flows_b))
    known = {}
    for name, (p, n, truth) in known_motion_pairs(128, 171).items():
        a, b = ocv(p[None], n[None])[0], ours(p[None], n[None])[0]
        known[name] = {"epe_opencv": endpoint_error(a, truth, 16), "epe_torch": endpoint_error(b, truth, 16),
                       **flow_agreement(a, b)}
    return {"clips": per_clip, "overall": overall, "known_motion": known}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clips", default=str(DEFAULT_CLIPS))
    ap.add_argument("--accuracy", action="store_true", help="measure agreement instead of speed")
    ap.add_argument("--decode-rate", action="store_true",
                    help="measure the pairs per second one decode worker prepares (stride 3) instead")
    ap.add_argument("--decode-sizes", default="128,256", help="short sides for --decode-rate")
    ap.add_argument("--server-overhead", action="store_true",
                    help="measure what handing pairs to the flow server costs per pair (CPU) instead")
    ap.add_argument("--requests", type=int, default=20, help="requests of 30 pairs for --server-overhead")
    ap.add_argument("--pairs-per-clip", type=int, default=4)
    ap.add_argument("--device", default="cpu", help="device of ours in --accuracy")
    ap.add_argument("--sizes", default="171x128,340x256")
    ap.add_argument("--cpu-pairs", type=int, default=4, help="pairs per CPU measurement")
    ap.add_argument("--batches", default="1,8,32,128", help="GPU batch sizes")
    ap.add_argument("--gpu-batches", type=int, default=2, help="batches per GPU measurement")
    ap.add_argument("--gpu-only", action="store_true", help="skip the CPU rows (a GPU check with little time)")
    ap.add_argument("--opencv-rate", type=float, default=None,
                    help="with --gpu-only: OpenCV pairs/s on one core to compare with (from a CPU run)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", default=None, help="result JSON (default bench/results/bench_flow[_accuracy].json)")
    args = ap.parse_args(argv)
    clips = list_clips(args.clips)
    env = {**environment(), "torch": torch.__version__,
           "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
    result: dict[str, Any] = {"command": shown_command(), "environment": env}
    if args.accuracy:
        result["accuracy"] = acc = accuracy(args, clips)
        o = acc["overall"]
        print(f"real clips ({len(clips)}, {args.pairs_per_clip} pairs each, torch on {args.device}): mean endpoint "
              f"difference {o['mean_epd']:.4f} px, max {o['max_epd']:.3f} px, identical uint8 bytes "
              f"{100 * o['identical_bytes']:.2f}%, pixels differing > 1 px {100 * o['share_epd_over_1px']:.3f}%")
        print(md_table(["motion", "EPE OpenCV (px)", "EPE torch (px)", "mean difference (px)"],
                       [[k, fmt(v["epe_opencv"], 4), fmt(v["epe_torch"], 4), fmt(v["mean_epd"], 4)]
                        for k, v in acc["known_motion"].items()]))
    elif args.server_overhead:
        result["server_overhead"] = rows = server_overhead(args, clips)
        print(md_table(["size", "pairs", "round trip (s)", "server computing (s)", "overhead per pair (ms)",
                        "bytes per pair (sent + returned)", "load average"],
                       [[r["size"], r["pairs"], fmt(r["round_trip_s"], 2), fmt(r["server_compute_s"], 2),
                         fmt(r["overhead_ms_per_pair"], 2), f"{r['bytes_per_pair']:,}", f"{r['load_average_1min']:.1f}"]
                        for r in rows]))
    elif args.decode_rate:
        result["decode_rate"] = rows = decode_rate(args, clips)
        print(md_table(["short side", "clips", "pairs", "source frames", "seconds", "pairs/s", "source frames/s",
                        "load average"],
                       [[r["short_side"], r["clips"], r["pairs"], r["decoded_frames"], fmt(r["seconds"], 2),
                         fmt(r["pairs_per_s"], 0), fmt(r["source_frames_per_s"], 0),
                         " ".join(f"{x:.1f}" for x in r["load_average_1min"])] for r in rows]))
    else:
        result["speed"] = rows = speed(args, clips)
        print(md_table(["size", "configuration", "threads", "pairs", "pairs/s (best)", "x OpenCV 1 core (median)",
                        "x OpenCV per repeat", "load average"],
                       [[r["size"], r["config"], r["threads"], r["pairs"], fmt(r["pairs_per_s"], 2),
                         fmt(r["x_opencv_1_core"], 2), " ".join(fmt(x, 2) for x in r["x_opencv_1_core_repeats"]),
                         " ".join(f"{x:.1f}" for x in r["load_average_1min"])] for r in rows]))
    name = ("bench_flow_accuracy.json" if args.accuracy else "bench_flow_decode.json" if args.decode_rate
            else "bench_flow_server.json" if args.server_overhead else "bench_flow.json")
    path = write_json(Path(args.out) if args.out else RESULTS_DIR / name, result)
    print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
