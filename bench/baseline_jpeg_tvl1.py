"""The pipeline users run today, re-implemented (DPC extract_frame.py + MemDPC extract_ff.py style).

For each video: decode EVERY frame with OpenCV VideoCapture (PyAV when OpenCV cannot read the file),
resize so the short side is `size` (INTER_LINEAR, our target-size rule), write `image_%05d.jpg`
(JPEG q80, numbered from 1) into OUT/frames/<video>/, compute OpenCV Dual TV-L1 (defaults) for EVERY
consecutive grey pair, clip to +-20, map to uint8 with round((f+20)*255/40) and write each flow as a
3-channel JPEG q100 (x, y, 128) `flow_%05d.jpg` (flow k: frame k -> k+1) into OUT/flow/<video>/.
Videos run in parallel with joblib, one OpenCV thread per worker. Training subsamples at load time
(stride 3), so only every 3rd frame and flow is ever read; the result reports how many.

    python bench/baseline_jpeg_tvl1.py --limit 2 --max-frames 60 --out /tmp/baseline
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2
import numpy as np

from bench._common import (DEFAULT_CLIPS, environment, fmt, list_clips, md_table, shown_command, stored_count,
                           tree_bytes, write_json)
from preprocess.decode import target_size

RGB_JPEG_QUALITY = 80     # DPC extract_frame.py
FLOW_JPEG_QUALITY = 100   # MemDPC extract_ff.py
FLOW_BOUND = 20.0
STAGES = ("decode_resize", "frames_jpeg", "flow_compute", "flow_jpeg")


def _opencv_frames(path: str, decode_threads: int) -> Iterator[np.ndarray] | None:
    """BGR frames from OpenCV's FFmpeg backend, or None when OpenCV cannot open or read the file."""
    params = [cv2.CAP_PROP_N_THREADS, decode_threads] if decode_threads > 0 else []
    cap = cv2.VideoCapture(path, cv2.CAP_FFMPEG, params)
    if not cap.isOpened():
        cap.release()
        return None
    ok, first = cap.read()
    if not ok or first is None:
        cap.release()
        return None

    def gen() -> Iterator[np.ndarray]:
        try:
            frame = first
            while frame is not None:
                yield frame
                ok, frame = cap.read()
                if not ok:
                    break
        finally:
            cap.release()

    return gen()


def _pyav_frames(path: str) -> Iterator[np.ndarray]:
    """BGR frames decoded with PyAV (the fallback for files OpenCV cannot read)."""
    import av

    with av.open(path) as container:
        stream = container.streams.video[0]
        for frame in container.decode(stream):
            yield frame.to_ndarray(format="bgr24")


def quantise_memdpc(flow: np.ndarray, bound: float = FLOW_BOUND) -> np.ndarray:
    """MemDPC's mapping: clip to [-bound, bound], round((f + bound) * 255 / (2 * bound)) as uint8."""
    return np.round((np.clip(flow, -bound, bound) + bound) * (255.0 / (2.0 * bound))).astype(np.uint8)


def process_video(path: str, out: str, size: int = 128, max_frames: int | None = None,
                  decode_threads: int = 1, cv_threads: int = 1) -> dict[str, Any]:
    """Extract one video's JPEG frames and JPEG TV-L1 flows; return counts, backend and per-stage seconds."""
    cv2.setNumThreads(cv_threads)
    started = time.perf_counter()
    name = Path(path).stem
    frame_dir = Path(out) / "frames" / name
    flow_dir = Path(out) / "flow" / name
    frame_dir.mkdir(parents=True, exist_ok=True)
    flow_dir.mkdir(parents=True, exist_ok=True)
    secs = dict.fromkeys(STAGES, 0.0)
    t = time.perf_counter()
    frames = _opencv_frames(path, decode_threads)
    backend = "opencv"
    if frames is None:
        frames, backend = _pyav_frames(path), "pyav"
    secs["decode_resize"] += time.perf_counter() - t
    tvl1 = cv2.optflow.DualTVL1OpticalFlow_create()
    jpeg_rgb = [cv2.IMWRITE_JPEG_QUALITY, RGB_JPEG_QUALITY]
    jpeg_flow = [cv2.IMWRITE_JPEG_QUALITY, FLOW_JPEG_QUALITY]
    prev_grey: np.ndarray | None = None
    third: np.ndarray | None = None
    n = flows = 0
    src_shape: tuple[int, int] = (0, 0)
    out_shape: tuple[int, int] = (0, 0)
    while True:
        t = time.perf_counter()
        img = next(frames, None)
        if img is not None:
            if n == 0:
                src_shape = img.shape[:2]
                out_shape = target_size(src_shape[0], src_shape[1], size)
            if img.shape[:2] != out_shape:
                img = cv2.resize(img, (out_shape[1], out_shape[0]), interpolation=cv2.INTER_LINEAR)
        secs["decode_resize"] += time.perf_counter() - t
        if img is None:
            break
        n += 1
        t = time.perf_counter()
        cv2.imwrite(str(frame_dir / f"image_{n:05d}.jpg"), img, jpeg_rgb)
        secs["frames_jpeg"] += time.perf_counter() - t
        t = time.perf_counter()
        grey = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
        flow_img = None
        if prev_grey is not None:
            q = quantise_memdpc(tvl1.calc(prev_grey, grey, None))
            if third is None:
                third = np.full(q.shape[:2], 128, np.uint8)
            flow_img = np.dstack([q[..., 0], q[..., 1], third])
        prev_grey = grey
        secs["flow_compute"] += time.perf_counter() - t
        if flow_img is not None:
            flows += 1
            t = time.perf_counter()
            cv2.imwrite(str(flow_dir / f"flow_{flows:05d}.jpg"), flow_img, jpeg_flow)
            secs["flow_jpeg"] += time.perf_counter() - t
        if max_frames and n >= max_frames:
            break
    frames.close()  # release the decoder now (generator cleanup)
    secs["total"] = time.perf_counter() - started
    return {"video": name, "path": path, "backend": backend, "frames": n, "flows": flows,
            "source_size": list(src_shape), "stored_size": list(out_shape), "seconds": secs}


def run_baseline(clips: list[Path], out: Path, size: int = 128, jobs: int = 2, stride: int = 3,
                 max_frames: int | None = None, decode_threads: int = 1) -> dict[str, Any]:
    """Run the baseline over `clips` in parallel (joblib, one OpenCV thread per worker) and summarise it."""
    from joblib import Parallel, delayed

    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    per_video = Parallel(n_jobs=jobs)(
        delayed(process_video)(str(c), str(out), size, max_frames, decode_threads) for c in clips)
    wall = time.perf_counter() - started
    frames_bytes = tree_bytes(out / "frames")
    flow_bytes = tree_bytes(out / "flow")
    source = sum(v["frames"] for v in per_video)
    flows = sum(v["flows"] for v in per_video)
    used = sum(stored_count(v["frames"], stride) for v in per_video)
    seconds = {k: sum(v["seconds"][k] for v in per_video) for k in (*STAGES, "total")}
    return {
        "pipeline": "baseline: OpenCV decode, JPEG q80 frames, OpenCV TV-L1 every pair, JPEG q100 flow",
        "jobs": jobs, "size": size, "stride": stride, "max_frames": max_frames,
        "opencv_decode_threads": decode_threads, "wall_seconds": wall, "videos": len(per_video),
        "source_frames": source, "flows_computed": flows, "training_frames_at_stride": used,
        "flows_unused_fraction": (flows - used) / flows if flows else None,
        "worker_seconds": seconds,
        "backends": {v["video"]: v["backend"] for v in per_video},
        "bytes": {"frames": frames_bytes, "flow": flow_bytes},
        "bytes_per_training_frame": {
            "rgb": frames_bytes["bytes"] / used if used else None,
            "flow": flow_bytes["bytes"] / used if used else None},
        "bytes_per_source_frame": {
            "rgb": frames_bytes["bytes"] / source if source else None,
            "flow": flow_bytes["bytes"] / source if source else None},
        "per_video": per_video,
    }


def summary_table(res: dict[str, Any]) -> str:
    """A Markdown table of one baseline run: stages, throughput and bytes."""
    s = res["worker_seconds"]
    total = s["total"] or 1e-9
    src, jobs = res["source_frames"], res["jobs"]
    rows = [[f"stage: {k}", fmt(s[k], 2), f"{100 * s[k] / total:.1f}%",
             fmt(src / s[k] if s[k] else None, 1)] for k in STAGES]
    rows.append(["worker total", fmt(total, 2), "100%", fmt(src / total, 1)])
    table = md_table(["baseline", "core-seconds", "share", "source frames / core-s"], rows)
    b = res["bytes"]
    lines = [
        table, "",
        f"- wall {res['wall_seconds']:.1f} s with {jobs} jobs: {src / res['wall_seconds'] / jobs:.1f} source frames/s "
        f"per core; {res['videos']} videos, {src} frames, {res['flows_computed']} flows computed, of which training "
        f"with stride {res['stride']} reads {res['training_frames_at_stride']} "
        f"({100 * (res['flows_unused_fraction'] or 0):.0f}% computed and never used)",
        f"- decoder per video: {', '.join(f'{k}={v}' for k, v in res['backends'].items())}",
        f"- bytes: frames {b['frames']['bytes'] / 1e6:.2f} MB in {b['frames']['files']} JPEGs "
        f"({b['frames']['allocated_bytes'] / 1e6:.2f} MB allocated), flow {b['flow']['bytes'] / 1e6:.2f} MB in "
        f"{b['flow']['files']} JPEGs ({b['flow']['allocated_bytes'] / 1e6:.2f} MB allocated)",
        f"- bytes per training frame (stride {res['stride']}): rgb {fmt(res['bytes_per_training_frame']['rgb'], 0)}, "
        f"flow {fmt(res['bytes_per_training_frame']['flow'], 0)}; per source frame: "
        f"rgb {fmt(res['bytes_per_source_frame']['rgb'], 0)}, flow {fmt(res['bytes_per_source_frame']['flow'], 0)}",
    ]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--clips", default=str(DEFAULT_CLIPS), help="folder of videos (read in place)")
    p.add_argument("--limit", type=int, default=4, help="use the first N clips, sorted by name (0: all)")
    p.add_argument("--max-frames", type=int, default=None,
                   help="stop each video after this many frames (standalone use; bench_preprocess.py trims "
                        "copies instead so both pipelines read identical files)")
    p.add_argument("--out", default=None, help="output folder (default: a temporary folder, removed afterwards)")
    p.add_argument("--keep", action="store_true", help="keep the default temporary output folder")
    p.add_argument("--jobs", type=int, default=2, help="parallel videos (joblib n_jobs)")
    p.add_argument("--size", type=int, default=128, help="short side of stored frames")
    p.add_argument("--stride", type=int, default=3, help="the training loader's subsampling (for the report)")
    p.add_argument("--decode-threads", type=int, default=1,
                   help="FFmpeg threads per OpenCV VideoCapture (0: OpenCV's default, one per CPU)")
    p.add_argument("--json", default=None, help="write the result here (default bench/results/baseline.json)")
    p.add_argument("--quiet", action="store_true", help="print no table")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the baseline on the chosen clips and print/write its summary."""
    args = build_parser().parse_args(argv)
    clips = list_clips(args.clips, args.limit)
    tmp = None
    if args.out:
        out = Path(args.out)
        if out.exists() and any(out.iterdir()):
            print(f"error: {out} is not empty", file=sys.stderr)
            return 2
    else:
        tmp = Path(tempfile.mkdtemp(prefix="baseline-jpeg-tvl1-"))
        out = tmp
    try:
        res = run_baseline(clips, out, args.size, args.jobs, args.stride, args.max_frames, args.decode_threads)
        res["command"] = shown_command([sys.argv[0], *(argv if argv is not None else sys.argv[1:])])
        res["out"] = str(out)
        res["environment"] = environment()
        path = Path(args.json) if args.json else Path(__file__).resolve().parent / "results" / "baseline.json"
        write_json(path, res)
        if not args.quiet:
            print(f"$ {res['command']}\n")
            print(summary_table(res))
            print(f"\nwrote {path}")
    finally:
        if tmp is not None and not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
