"""`python -m preprocess {run,verify,info,sample}`: the view-generation pipeline's command line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

from data_specs.registry import DATASETS
from data_specs.views import DEFAULT_BLOCK_FRAMES, DEFAULT_FLOW_BOUND, DEFAULT_SIZE, DEFAULT_STRIDE, VIEWS

from .errors import UserError, WorkerError
from .names import shown
from .flow import FAMILIES, describe, family_params, implementations
from .frame_policy import add_frame_arguments, policy_from_args
from .heatmaps import COMBINE
from .pose_seg import POSE_BACKENDS, SEG_BACKENDS, SELFIE_MODELS
from .store.compression import COMPRESSIONS

EXIT_USER_ERROR, EXIT_WORKER_ERROR = 2, 1


def _key_values(text: str) -> dict[str, str]:
    """'a=1,b=2' -> {'a': '1', 'b': '2'}."""
    out = {}
    for item in filter(None, (x.strip() for x in text.split(","))):
        if "=" not in item:
            raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        if not key.strip():
            raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {item!r} (no key)")
        out[key.strip()] = value.strip()
    return out


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line (`error: argument --stride: ...`), exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USER_ERROR, f"error: {message} (see {self.prog} --help)\n")


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Show '(default: X)' once: not when the help already says its default, nor for a default of None."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or action.default is None or action.default is argparse.SUPPRESS:
            return text
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="python -m preprocess",
        description="Decode videos and compute their views (RGB, optical flow) into chunked HDF5 stores.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="make (or finish) a store from videos",
                         description="Make a store from videos, or finish an interrupted one: finished shards "
                                     "are skipped. Exit status: 0 all stored, 3 some videos failed (listed in "
                                     "ROOT/failures.tsv), 4 some shards were left to another live job making "
                                     "them, 2 a usage error.",
                         formatter_class=DefaultsHelpFormatter)
    src = run.add_argument_group("input")
    src.add_argument("--videos", required=True, metavar="PATH",
                     help="a folder of videos, a folder with one folder per class, or a dataset spec file "
                          "(.yaml/.json with keys dataset, videos, annotations)")
    src.add_argument("--dataset", choices=list(DATASETS), default=None,
                     help="how to read --videos and --annotations (default: folder, or the spec file's)")
    src.add_argument("--annotations", metavar="PATH", default=None,
                     help="UCF101 ucfTrainTestlist folder, HMDB51 split-file folder, or Kinetics-400 CSV (or folder)")
    out = run.add_argument_group("output")
    out.add_argument("--out", required=True, metavar="ROOT", help="store root folder (created if absent)")
    out.add_argument("--views", default="rgb,flow_tvl1",
                     help=f"comma-separated views to make: {', '.join(VIEWS)}")
    out.add_argument("--videos-per-shard", type=_positive_int, default=None,
                     help="videos per shard file (default: the video count / 256, between 1 and 32); "
                          "fixed when the store is created")
    out.add_argument("--block-frames", type=_positive_int, default=DEFAULT_BLOCK_FRAMES,
                     help="HDF5 chunk length along time, in stored frames (the training block length)")
    out.add_argument("--compression", type=_key_values, default={}, metavar="VIEW=NAME,...",
                     help=f"override a view's compression; names: {', '.join(COMPRESSIONS)}")
    frames = run.add_argument_group("frames")
    frames.add_argument("--stride", type=_positive_int, default=DEFAULT_STRIDE,
                        help="keep one source frame in STRIDE (fixed when the store is created)")
    frames.add_argument("--size", type=_positive_int, default=DEFAULT_SIZE,
                        help="short side of stored RGB and flow frames, pixels (area interpolation)")
    add_frame_arguments(frames)
    flow = run.add_argument_group("optical flow", "flow is computed on grey frames at the stored size, from "
                                                  "source frame t to t+1, for stored frames only")
    flow.add_argument("--flow-bound", type=float, default=DEFAULT_FLOW_BOUND,
                      help="clip flow to +-BOUND pixels, then map linearly to uint8 0..255")
    for name in FAMILIES:
        flow.add_argument(f"--{name}", type=_key_values, default={}, metavar="KEY=VALUE,...",
                          help=f"{describe(name)}; keys: {', '.join(p.name for p in family_params(name))}")
    flow.add_argument("--flow-impl", default="opencv", choices=implementations("tvl1"),
                      help="TV-L1 implementation: OpenCV's (CPU, one pair at a time) or ours in PyTorch (batched, "
                           "CPU or GPU; docs/flow_tvl1_torch.md); recorded in the store, which never mixes them")
    flow.add_argument("--flow-device", default="auto", metavar="DEVICE",
                      help="device of --flow-impl torch: auto (the GPU when there is one), cpu, cuda, cuda:N")
    flow.add_argument("--flow-batch", type=_positive_int, default=32, metavar="N",
                      help="frame pairs --flow-impl torch computes at once (GPU memory grows with it)")
    flow.add_argument("--flow-server", default="auto", choices=("auto", "on", "off"),
                      help="one flow process per device gathers the pairs of every local worker into batches of "
                           "--flow-batch (--flow-impl torch): auto is on for a CUDA device, on also on the CPU "
                           "(to test it), off: each worker computes the pairs of its own videos")
    inferred = run.add_argument_group("pose and segmentation", "inferred from the upright source frames; "
                                      "stored at their own short side")
    inferred.add_argument("--pose-backend", default="mediapipe", choices=POSE_BACKENDS,
                          help="pose model: mediapipe (offline, CPU; its model ships in the mediapipe 0.10.21 "
                               "wheel) or mmpose (any mmpose 1.x top-down heatmap model)")
    inferred.add_argument("--pose-config", default=None, metavar="PATH",
                          help="mmpose config (a file, or a path inside mmpose's shipped configs)")
    inferred.add_argument("--pose-checkpoint", default=None, metavar="PATH", help="mmpose weights (a local file)")
    inferred.add_argument("--det-config", default=None, metavar="PATH",
                          help="mmdet person detector config for mmpose (default: boxes from mediapipe pose)")
    inferred.add_argument("--det-checkpoint", default=None, metavar="PATH", help="mmdet weights (a local file)")
    inferred.add_argument("--pose-size", type=_positive_int, default=64, help="short side of stored pose heatmaps")
    inferred.add_argument("--pose-sigma", type=float, default=2.0,
                          help="mediapipe: std of each keypoint's Gaussian, in stored pixels")
    inferred.add_argument("--pose-combine", default="max", choices=COMBINE,
                          help="several people per keypoint: per-pixel maximum, or score-weighted sum clipped to 1")
    inferred.add_argument("--seg-backend", default="mediapipe", choices=SEG_BACKENDS,
                          help="person segmentation: mediapipe selfie segmentation (offline, CPU) or mmseg (any "
                               "mmsegmentation 1.x model)")
    inferred.add_argument("--seg-config", default=None, metavar="PATH", help="mmseg config")
    inferred.add_argument("--seg-checkpoint", default=None, metavar="PATH", help="mmseg weights (a local file)")
    inferred.add_argument("--seg-person-class", type=int, default=None, metavar="I",
                          help="mmseg: index of the person class (default: found in the model's class names)")
    inferred.add_argument("--seg-size", type=_positive_int, default=64, help="short side of stored person masks")
    inferred.add_argument("--seg-model", type=int, default=0, choices=SELFIE_MODELS,
                          help="mediapipe selfie segmentation model: 0 general, 1 landscape")
    inferred.add_argument("--model-device", default="auto",
                          help="device of the mm models: auto (the GPU when there is one), cpu, cuda, cuda:N")
    par = run.add_argument_group("parallelism")
    par.add_argument("--jobs", type=int, default=-1,
                     help="worker processes on this machine (-1: one per core this process may use, which "
                          "respects Slurm's CPU allocation); OpenCV runs one thread in each")
    par.add_argument("--shard", type=int, default=None, metavar="I",
                     help="this array job's index (default: $SLURM_ARRAY_TASK_ID - $SLURM_ARRAY_TASK_MIN, else 0)")
    par.add_argument("--num-shards", type=int, default=None, metavar="N",
                     help="number of array jobs sharing the store (default: $SLURM_ARRAY_TASK_COUNT, else 1)")
    par.add_argument("--scheduler", default=None, metavar="ADDRESS",
                     help="run the shards on a Dask cluster (e.g. tcp://host:8786)")
    par.add_argument("--decode-threads", type=_positive_int, default=1, help="FFmpeg decoding threads per worker")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument("--retry-failed", nargs="?", const="all", default=None, metavar="CLASS,...",
                     help="make again the shards holding failed videos: all, or those failed for these reason "
                          "classes: crashed (a worker died, e.g. out of memory), truncated, unreadable, decode, "
                          "short, other (default: no retry)")

    verify = sub.add_parser("verify", help="check a store: shards readable, views aligned, nothing missing",
                            description="Check a store root; print each problem on one line; exit 1 if any.")
    verify.add_argument("root", metavar="ROOT", help="store root folder")
    verify.add_argument("--deep", action="store_true",
                        help="also read every stored frame, checking each chunk's Fletcher-32 checksum")

    info = sub.add_parser("info", help="summarise a store: videos, frames, bytes and parameters per view")
    info.add_argument("root", metavar="ROOT", help="store root folder")
    info.add_argument("--failures", action="store_true", help="list every failed video and why")
    info.add_argument("--json", action="store_true", help="print the summary as JSON")

    sample = sub.add_parser("sample", help="write the built-in sample videos (synthetic, known motion)")
    sample.add_argument("out", metavar="FOLDER", help="where to write the videos (one folder per class)")
    sample.add_argument("--frames", type=_positive_int, default=128,
                        help="frames per video (128 at stride 3 gives 42 stored frames, one 8x5-block clip)")
    sample.add_argument("--per-class", type=_positive_int, default=None, metavar="N",
                        help="videos per class: 1..4 for the built-in sample (pan, rotate, zoom; default 4), "
                             "any for --variant learning (default 20)")
    sample.add_argument("--variant", choices=["sample", "learning"], default="sample",
                        help="sample: the built-in 12 videos; learning: the learning benchmark's set, classes "
                             "defined by motion only (docs/learning_benchmark.md)")
    sample.add_argument("--classes", type=int, choices=range(2, 9), default=6, metavar="{2..8}",
                        help="--variant learning: motion classes (default 6: pan up/down, zoom in/out, pan sideways, "
                             "rotate; 7 and 8 add pan left/right)")
    sample.add_argument("--seed", type=int, default=0, help="--variant learning: the seed every video is drawn from")
    return parser


def _run(args: argparse.Namespace) -> int:
    from .runner import RunConfig, run
    from .views import ViewOptions, parse_views

    views = parse_views(args.views)
    unknown = sorted(set(args.compression) - set(VIEWS))
    if unknown:
        raise UserError(f"--compression names unknown view(s) {', '.join(unknown)}")
    options = ViewOptions(stride=args.stride, size=args.size, block_frames=args.block_frames,
                          flow_bound=args.flow_bound,
                          flow_params={name: getattr(args, name) for name in FAMILIES},
                          flow_impl=args.flow_impl, flow_device=args.flow_device, flow_batch=args.flow_batch,
                          compression=dict(args.compression), pose_backend=args.pose_backend,
                          pose_size=args.pose_size, pose_sigma=args.pose_sigma, pose_combine=args.pose_combine,
                          seg_backend=args.seg_backend, seg_size=args.seg_size, seg_model=args.seg_model,
                          pose_config=args.pose_config, pose_checkpoint=args.pose_checkpoint,
                          det_config=args.det_config, det_checkpoint=args.det_checkpoint,
                          seg_config=args.seg_config, seg_checkpoint=args.seg_checkpoint,
                          seg_person_class=args.seg_person_class, model_device=args.model_device,
                          frames=policy_from_args(args))
    cfg = RunConfig(videos=args.videos, out=args.out, views=views, options=options, dataset=args.dataset,
                    annotations=args.annotations, jobs=args.jobs, shard=args.shard, num_shards=args.num_shards,
                    scheduler=args.scheduler, videos_per_shard=args.videos_per_shard,
                    decode_threads=args.decode_threads, progress=not args.no_progress,
                    retry_failed=args.retry_failed, flow_server=args.flow_server)
    return run(cfg)


def _verify(args: argparse.Namespace) -> int:
    from .store.scan import scan_store

    scan = scan_store(Path(args.root), deep=args.deep)
    for line in scan.problems:
        print(line)
    partials = sum(v.partials for v in scan.views.values())
    if partials:
        print(f"note: {partials} partial shard file(s) present: a job is running, or was killed "
              f"(a re-run removes them)", file=sys.stderr)
    n_videos = len(scan.manifest.records)
    status = "FAILED" if scan.problems else "OK"
    print(f"{status}: {args.root}: {len(scan.views)} views, {n_videos} videos, {len(scan.problems)} problem(s)",
          file=sys.stderr)
    return 1 if scan.problems else 0


def summarise(scan: Any) -> dict[str, Any]:
    """The numbers `info` prints, as a dict."""
    m = scan.manifest
    out: dict[str, Any] = {
        "root": str(scan.root), "dataset": m.dataset, "videos_root": m.videos_root, "videos": len(m.records),
        "classes": len(m.classes), "missing_from_disk": len(m.missing), "stride": m.stride,
        "shards": m.num_shards, "videos_per_shard": m.videos_per_shard, "views": {},
    }
    for name, v in scan.views.items():
        shapes = sorted({e.frame_shape for e in v.videos.values()})
        entries = list(v.videos.values())
        out["views"][name] = {
            "shards_done": len(v.shard_ids), "videos": len(v.videos), "failed": len(v.failures),
            "frames": v.frames, "bytes": v.bytes,
            "bytes_per_frame": round(v.bytes / v.frames, 1) if v.frames else None,
            "frame_shapes": [list(s) for s in shapes[:3]] + (["..."] if len(shapes) > 3 else []),
            "frame_shape_range": shape_range(shapes),
            "videos_missing_end_frames": sum(e.missing_end_frames > 0 for e in entries),
            "missing_end_frames": sum(e.missing_end_frames for e in entries),
            "videos_long_side_capped": sum(e.long_side_capped for e in entries),
            "repeated_successors": sum(e.repeated_successors for e in entries),
            "flow_past_repeats": sum(e.skipped_repeats for e in entries),
            "compression": v.meta.get("compression"), "size": v.meta.get("size"),
            "params": v.meta.get("params"), "versions": v.meta.get("versions"),
        }
    return out


def shape_range(shapes: list[tuple[int, ...]]) -> str:
    """'128x171x3' for one frame shape, '(96..128)x(128..171)x3' for several."""
    if not shapes:
        return "-"
    dims = zip(*shapes)
    return "x".join(str(lo) if lo == hi else f"({lo}..{hi})" for lo, hi in ((min(d), max(d)) for d in dims))


def frame_notes(view: dict[str, Any]) -> list[str]:
    """What decoding found that a user should know: frames missing at the end, bounded long sides, repeats."""
    notes = []
    if view["videos_missing_end_frames"]:
        notes.append(f"{view['videos_missing_end_frames']} videos end before their declared length "
                     f"({view['missing_end_frames']} frames missing in all; attribute missing_end_frames)")
    if view["videos_long_side_capped"]:
        notes.append(f"{view['videos_long_side_capped']} videos have an extreme aspect ratio: long side bounded "
                     f"by --max-long-side (attribute long_side_capped)")
    if view["repeated_successors"]:
        notes.append(f"{view['repeated_successors']} stored frames have a repeated next source frame; "
                     f"{view['flow_past_repeats']} have flow to the next frame that differs (flow_target_indices)")
    return notes


def _info(args: argparse.Namespace) -> int:
    from .store.scan import scan_store

    scan = scan_store(Path(args.root))
    summary = summarise(scan)
    if args.json:
        summary["failures"] = {v: s.failures for v, s in scan.views.items()}
        print(json.dumps(summary, indent=1))
        return 0
    print(f"store {summary['root']}: {summary['dataset']} from {summary['videos_root']}")
    print(f"  {summary['videos']} videos, {summary['classes']} classes, {summary['missing_from_disk']} listed but "
          f"missing from disk; stride {summary['stride']}; {summary['shards']} shards of up to "
          f"{summary['videos_per_shard']} videos")
    for name, v in summary["views"].items():
        mb = v["bytes"] / 1e6
        print(f"  {name}: {v['videos']} videos, {v['failed']} failed, {v['frames']} frames, {mb:.1f} MB "
              f"({v['bytes_per_frame']} B/frame), shards {v['shards_done']}/{summary['shards']}, "
              f"frame shape {v['frame_shape_range']}, {v['compression']}")
        for line in frame_notes(v):
            print(f"    {line}")
        print(f"    params: {json.dumps(v['params'], sort_keys=True)}")
    if args.failures:
        for name, v in scan.views.items():
            for vid, reason in sorted(v.failures.items()):
                print(f"  failed {name} {shown(vid)}: {shown(reason)}")
    if scan.problems:
        print(f"  {len(scan.problems)} problem(s): run `python -m preprocess verify {args.root}`")
    return 0


def _sample(args: argparse.Namespace) -> int:
    from .learning_set import write_learning_set
    from .synthetic import MAX_PER_CLASS, write_sample

    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise UserError(f"{args.out} is a file: give a folder to write the sample videos into")
    if args.variant == "learning":
        paths = write_learning_set(args.out, num_classes=args.classes, per_class=args.per_class or 20,
                                   seed=args.seed, num_frames=args.frames)
    elif args.per_class is not None and args.per_class > MAX_PER_CLASS:
        raise UserError(f"--per-class must be 1..{MAX_PER_CLASS} for the built-in sample, got {args.per_class}")
    else:
        paths = write_sample(args.out, num_frames=args.frames, per_class=args.per_class or MAX_PER_CLASS)
    print(f"wrote {len(paths)} sample videos under {args.out}", file=sys.stderr)
    return 0


COMMANDS = {"run": _run, "verify": _verify, "info": _info, "sample": _sample}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: a user's mistake is one line on stderr and exit status 2, never a traceback."""
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except PermissionError as exc:  # a store or file this user may not write
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except WorkerError as exc:  # finished shards are kept, as after an interruption
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_WORKER_ERROR
    except KeyboardInterrupt:
        print("interrupted: finished shards are kept; run the same command again to finish", file=sys.stderr)
        return 130
