"""Our pipeline (`python -m preprocess run`, HDF5 store) against the JPEG + TV-L1 baseline: same clips, size, jobs, run.

Both run as subprocesses on the same input folder (symlinks to the clips, or trimmed H.264 copies
with --max-frames, made once and read by both), baseline first. Prints Markdown tables and writes
bench/results/preprocess.json.

    python bench/bench_preprocess.py --extra-views flow_farneback,flow_dis
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import (DEFAULT_CLIPS, REPO_ROOT, RESULTS_DIR, environment, fmt, list_clips, md_table,
                           prepare_clips, ratio, run_cmd, run_preprocess, short_cmd, shown_command, write_json)

SPEEDUP_TARGET = 3.0
OUTSIDE_FLOW_TARGET = 0.15


def run_baseline_subprocess(videos: Path, out: Path, jobs: int, size: int, stride: int,
                            json_path: Path) -> dict[str, Any]:
    """Run bench/baseline_jpeg_tvl1.py on every clip of `videos` as a subprocess; return its result and wall time."""
    cmd = [sys.executable, str(Path(__file__).resolve().parent / "baseline_jpeg_tvl1.py"), "--clips", str(videos),
           "--limit", "0", "--out", str(out), "--jobs", str(jobs), "--size", str(size), "--stride", str(stride),
           "--json", str(json_path), "--quiet"]
    wall, proc = run_cmd(cmd)
    if proc.returncode != 0:
        raise SystemExit(f"error: baseline failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    res = json.loads(json_path.read_text())
    res["outer_wall_seconds"] = wall
    res["cmd"] = cmd
    return res


def ours_summary(run: dict[str, Any], jobs: int) -> dict[str, Any]:
    """Throughput and bytes of one run of our pipeline, from its run log and `info --json`."""
    log, info = run["log"], run["info"]
    ws = log["worker_seconds"]
    src = log["decoded_frames"]
    total = ws.get("total", 0.0)
    views: dict[str, Any] = {}
    for name, v in info["views"].items():
        view_s = ws.get(f"view:{name}", 0.0)
        # rgb has no computation of its own (decode + resize is its work); a flow view's seconds are flow + quantise
        cost = view_s + ws.get("decode", 0.0) if name == "rgb" else view_s
        views[name] = {
            "frames": v["frames"], "bytes": v["bytes"], "compression": v["compression"],
            "frame_shapes": v["frame_shapes"],
            "bytes_per_stored_frame": v["bytes"] / v["frames"] if v["frames"] else None,
            "bytes_per_source_frame": v["bytes"] / src if src else None,
            "view_core_seconds": view_s,
            "cost_core_seconds": cost,
            "source_frames_per_core_second": src / cost if cost else None,
        }
    flow_views = [k for k in ws if k.startswith("view:flow_")]
    flow_s = sum(ws[k] for k in flow_views)
    return {
        "cmd": run["cmd"], "returncode": run["returncode"], "wall_seconds": log["wall_seconds"],
        "outer_wall_seconds": run["outer_wall_seconds"], "jobs": jobs, "source_frames": src,
        "stored_frames": log["stored_frames"], "videos": log["videos_made"], "failures": log["failures"],
        "worker_seconds": ws, "views": views,
        "source_frames_per_s_per_core": src / run["outer_wall_seconds"] / jobs,
        "outside_flow_share": (total - flow_s) / total if total else None,
    }


def _tv(res_b: dict[str, Any], res_o: dict[str, Any]) -> list[list[Any]]:
    """Rows of the main comparison table."""
    b, o = res_b, res_o
    bs, bb = b["worker_seconds"], b["bytes"]
    ov = o["views"]
    jobs = o["jobs"]
    b_rgb_cost = bs["decode_resize"] + bs["frames_jpeg"]
    b_flow_cost = bs["flow_compute"] + bs["flow_jpeg"]
    b_outside = (bs["total"] - bs["flow_compute"]) / bs["total"] if bs["total"] else None
    rgb, flow = ov.get("rgb"), ov.get("flow_tvl1")
    used = b["training_frames_at_stride"]
    rows = [
        ["wall s, end to end (subprocess)", fmt(b["outer_wall_seconds"], 1), fmt(o["outer_wall_seconds"], 1),
         ratio(b["outer_wall_seconds"], o["outer_wall_seconds"])],
        ["wall s, inside the run", fmt(b["wall_seconds"], 1), fmt(o["wall_seconds"], 1),
         ratio(b["wall_seconds"], o["wall_seconds"])],
        ["source frames decoded", b["source_frames"], o["source_frames"], None],
        ["frames stored / read by training (stride)", f"{b['source_frames']} JPEGs, training reads {used}",
         o["stored_frames"], None],
        ["flow pairs computed", b["flows_computed"], flow["frames"] if flow else None,
         ratio(b["flows_computed"], flow["frames"] if flow else None)],
        ["TV-L1 core-seconds per flow pair", fmt(bs["flow_compute"] / b["flows_computed"], 3)
         if b["flows_computed"] else None,
         fmt(flow["view_core_seconds"] / flow["frames"], 3) if flow and flow["frames"] else None,
         ratio(bs["flow_compute"] / b["flows_computed"] if b["flows_computed"] else None,
               flow["view_core_seconds"] / flow["frames"] if flow and flow["frames"] else None)],
        ["source frames/s per core, end to end", fmt(b["source_frames"] / b["outer_wall_seconds"] / jobs, 2),
         fmt(o["source_frames_per_s_per_core"], 2),
         ratio(o["source_frames_per_s_per_core"], b["source_frames"] / b["outer_wall_seconds"] / jobs)],
        ["worker core-seconds, total", fmt(bs["total"], 1), fmt(o["worker_seconds"].get("total"), 1),
         ratio(bs["total"], o["worker_seconds"].get("total"))],
        ["rgb alone: source frames / core-s", fmt(b["source_frames"] / b_rgb_cost if b_rgb_cost else None, 0),
         fmt(rgb["source_frames_per_core_second"], 0) if rgb else None,
         ratio(rgb["source_frames_per_core_second"] if rgb else None,
               b["source_frames"] / b_rgb_cost if b_rgb_cost else None)],
        ["flow_tvl1 alone: source frames / core-s", fmt(b["source_frames"] / b_flow_cost if b_flow_cost else None, 2),
         fmt(flow["source_frames_per_core_second"], 2) if flow else None,
         ratio(flow["source_frames_per_core_second"] if flow else None,
               b["source_frames"] / b_flow_cost if b_flow_cost else None)],
        ["worker time outside the flow computation", f"{100 * b_outside:.1f}%" if b_outside is not None else None,
         f"{100 * o['outside_flow_share']:.1f}%" if o["outside_flow_share"] is not None else None, None],
        ["rgb bytes / stored (training) frame", fmt(b["bytes_per_training_frame"]["rgb"], 0),
         fmt(rgb["bytes_per_stored_frame"], 0) if rgb else None,
         ratio(b["bytes_per_training_frame"]["rgb"], rgb["bytes_per_stored_frame"] if rgb else None)],
        ["rgb bytes / source frame", fmt(b["bytes_per_source_frame"]["rgb"], 0),
         fmt(rgb["bytes_per_source_frame"], 0) if rgb else None,
         ratio(b["bytes_per_source_frame"]["rgb"], rgb["bytes_per_source_frame"] if rgb else None)],
        ["flow bytes / stored (training) frame", fmt(b["bytes_per_training_frame"]["flow"], 0),
         fmt(flow["bytes_per_stored_frame"], 0) if flow else None,
         ratio(b["bytes_per_training_frame"]["flow"], flow["bytes_per_stored_frame"] if flow else None)],
        ["flow bytes / source frame", fmt(b["bytes_per_source_frame"]["flow"], 0),
         fmt(flow["bytes_per_source_frame"], 0) if flow else None,
         ratio(b["bytes_per_source_frame"]["flow"], flow["bytes_per_source_frame"] if flow else None)],
        ["total bytes (files) / allocated on disk",
         f"{(bb['frames']['bytes'] + bb['flow']['bytes']) / 1e6:.2f} MB in "
         f"{bb['frames']['files'] + bb['flow']['files']} files / "
         f"{(bb['frames']['allocated_bytes'] + bb['flow']['allocated_bytes']) / 1e6:.2f} MB",
         f"{sum(v['bytes'] for v in ov.values()) / 1e6:.2f} MB", None],
    ]
    return rows


def stage_rows(b: dict[str, Any], o: dict[str, Any]) -> list[list[Any]]:
    """Where the worker time goes in each pipeline (core-seconds and share of the worker total)."""
    rows = []
    bt = b["worker_seconds"]["total"] or 1e-9
    for k in ("decode_resize", "frames_jpeg", "flow_compute", "flow_jpeg", "total"):
        rows.append(["baseline", k, fmt(b["worker_seconds"][k], 2), f"{100 * b['worker_seconds'][k] / bt:.1f}%"])
    ws = o["worker_seconds"]
    ot = ws.get("total") or 1e-9
    keys = ["decode"] + sorted(k for k in ws if k.startswith("view:")) + ["write", "total"]
    accounted = sum(ws.get(k, 0.0) for k in keys if k != "total")
    for k in keys:
        rows.append(["ours", k, fmt(ws.get(k), 2), f"{100 * ws.get(k, 0.0) / ot:.1f}%"])
    rows.append(["ours", "other (total - the above)", fmt(ot - accounted, 2), f"{100 * (ot - accounted) / ot:.1f}%"])
    return rows


def extra_rows(o: dict[str, Any]) -> list[list[Any]]:
    """One row per view of an extra run of our pipeline."""
    rows = []
    for name, v in o["views"].items():
        rows.append([name, v["frames"], fmt(v["view_core_seconds"], 2),
                     fmt(v["source_frames_per_core_second"], 1),
                     fmt(v["frames"] / v["view_core_seconds"] if v["view_core_seconds"] else None, 1),
                     fmt(v["bytes_per_stored_frame"], 0), fmt(v["bytes_per_source_frame"], 0), v["compression"]])
    return rows


def build_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--clips", default=str(DEFAULT_CLIPS), help="folder of videos (read in place, never copied)")
    p.add_argument("--limit", type=int, default=4, help="use the first N clips, sorted by name (0: all)")
    p.add_argument("--max-frames", type=int, default=150,
                   help="trim every clip to its first N frames (re-encoded H.264 copies in the work folder, read "
                        "by BOTH pipelines); 0: the clips as they are")
    p.add_argument("--jobs", type=int, default=2, help="parallel workers for both pipelines")
    p.add_argument("--size", type=int, default=128, help="short side of stored frames, both pipelines")
    p.add_argument("--stride", type=int, default=3, help="our --stride; the baseline's load-time subsampling")
    p.add_argument("--views", default="rgb,flow_tvl1", help="our views in the comparison run")
    p.add_argument("--extra-views", default="",
                   help="comma-separated views for a second run of ours alone (e.g. flow_farneback,flow_dis)")
    p.add_argument("--order", choices=["baseline-first", "ours-first"], default="baseline-first",
                   help="which pipeline runs first (swap it to check for drift on a noisy machine)")
    p.add_argument("--work", default=None, help="work folder (default: a temporary folder, removed afterwards)")
    p.add_argument("--keep", action="store_true", help="keep the outputs in the work folder")
    p.add_argument("--json", default=str(RESULTS_DIR / "preprocess.json"), help="where to write the result")
    return p


def main(argv: list[str] | None = None) -> int:
    """Prepare the clips, run the baseline then ours (then the extra views), print tables, write JSON."""
    args = build_parser().parse_args(argv)
    command = shown_command([sys.argv[0], *(argv if argv is not None else sys.argv[1:])])
    print(f"$ {command}\n", flush=True)
    clips = list_clips(args.clips, args.limit)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="bench-preprocess-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        t = time.perf_counter()
        videos, prepared = prepare_clips(clips, work / "videos", args.max_frames or None)
        prep_s = time.perf_counter() - t
        print(f"clips: {len(clips)} from {args.clips}"
              + (f", trimmed to {args.max_frames} frames as H.264 copies in {prep_s:.1f} s" if args.max_frames else "")
              + f"; jobs {args.jobs}, size {args.size}, stride {args.stride}", flush=True)
        for which in (("baseline", "ours") if args.order == "baseline-first" else ("ours", "baseline")):
            if which == "baseline":
                base = run_baseline_subprocess(videos, work / "baseline", args.jobs, args.size, args.stride,
                                               work / "baseline.json")
                print(f"baseline done in {base['outer_wall_seconds']:.1f} s: {short_cmd(base['cmd'])}", flush=True)
            else:
                ours_run = run_preprocess(videos, work / "ours", args.views, args.jobs, args.size, args.stride)
                ours = ours_summary(ours_run, args.jobs)
                print(f"ours done in {ours['outer_wall_seconds']:.1f} s: {short_cmd(ours['cmd'])}", flush=True)
        extra = None
        if args.extra_views:
            extra_run = run_preprocess(videos, work / "ours-extra", args.extra_views, args.jobs, args.size,
                                       args.stride)
            extra = ours_summary(extra_run, args.jobs)
            print(f"ours (extra views) done in {extra['outer_wall_seconds']:.1f} s: {short_cmd(extra['cmd'])}",
                  flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(work / "baseline", ignore_errors=True)
            if not args.work:
                shutil.rmtree(work, ignore_errors=True)

    if args.keep:
        print(f"outputs kept under {work}")
    speedup = base["outer_wall_seconds"] / ours["outer_wall_seconds"]
    outside = ours["outside_flow_share"]
    print()
    print(f"## Preprocessing: baseline (JPEG frames + TV-L1 on every pair, JPEG flow) vs ours "
          f"(`preprocess run --views {args.views}`)\n")
    print(md_table(["", "baseline", "ours", "advantage of ours (>1: ours better)"], _tv(base, ours)))
    print()
    print(f"- end-to-end speed-up {speedup:.2f}x (target >= {SPEEDUP_TARGET:g}x): "
          f"{'MET' if speedup >= SPEEDUP_TARGET else 'NOT MET'}")
    if outside is not None:
        print(f"- our worker time outside the flow computation {100 * outside:.1f}% "
              f"(target < {100 * OUTSIDE_FLOW_TARGET:.0f}%): {'MET' if outside < OUTSIDE_FLOW_TARGET else 'NOT MET'}")
    print(f"- the baseline computed {base['flows_computed']} TV-L1 flows; training with stride {args.stride} reads "
          f"{base['training_frames_at_stride']} of them ({100 * (base['flows_unused_fraction'] or 0):.0f}% never used)")
    print(f"- baseline decoders: {', '.join(sorted(set(base['backends'].values())))} "
          f"({', '.join(f'{k}={v}' for k, v in base['backends'].items())})")
    if ours["failures"]:
        print(f"- ours: {len(ours['failures'])} failure record(s): {ours['failures'][:3]}")
    print("- rgb alone: baseline = decode+resize+JPEG write; ours = decode+resize (incl. the decoding of frames "
          "kept only as flow successors) + view:rgb. flow alone: baseline = grey+TV-L1+quantise+JPEG write; "
          "ours = view:flow_tvl1 (grey+TV-L1+quantise). Per core = per core-second of worker time.")
    print()
    print("### Where the worker time goes\n")
    print(md_table(["pipeline", "stage", "core-seconds", "share of worker total"], stage_rows(base, ours)))
    if extra:
        print()
        print(f"### Ours, extra views alone (`--views {args.extra_views}`): wall {extra['outer_wall_seconds']:.1f} s "
              f"end to end, {extra['source_frames_per_s_per_core']:.1f} source frames/s per core, "
              f"{100 * (extra['outside_flow_share'] or 0):.1f}% of worker time outside flow\n")
        print(md_table(["view", "stored frames", "view core-s", "source frames / core-s", "flow pairs / core-s",
                        "bytes / stored frame", "bytes / source frame", "compression"], extra_rows(extra)))

    result = {
        "command": command, "clips": [str(c) for c in clips], "prepared": prepared, "max_frames": args.max_frames,
        "jobs": args.jobs, "size": args.size, "stride": args.stride, "order": args.order,
        "environment": environment(),
        "baseline": base, "ours": ours, "extra": extra,
        "speedup_end_to_end": speedup, "speedup_target": SPEEDUP_TARGET,
        "outside_flow_share": outside, "outside_flow_target": OUTSIDE_FLOW_TARGET,
    }
    path = write_json(Path(args.json), result)
    print(f"\nwrote {path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
