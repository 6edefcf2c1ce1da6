"""Pose and segmentation views: frames/s per backend on CPU at the default sizes, and bytes per stored frame.

Each backend runs through `python -m preprocess run` on the same real clips (one process, so frames/s is
per core). The OpenMMLab backends use random weights saved to a checkpoint from shipped configs (speed
does not depend on the weights): mmpose top-down ResNet-50 256x192 with boxes from mediapipe, mmseg
SegFormer-B0 (ADE20K, 150 classes, person = class 12).

    .venv/bin/python bench/bench_pose_seg.py [--limit 3] [--max-frames 90]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CLIPS = ROOT.parent / "shared" / "data" / "real_clips"
POSE_CFG = "body_2d_keypoint/topdown_heatmap/coco/td-hm_res50_8xb64-210e_coco-256x192.py"
SEG_CFG = "segformer/segformer_mit-b0_8xb2-160k_ade20k-512x512.py"


def save_random_checkpoints(work: Path) -> dict[str, Path]:
    """Random-init checkpoints of the shipped configs (what a user would pass, minus the training)."""
    import torch

    from preprocess.mm_backends import MMPose, MMSeg
    torch.manual_seed(0)
    pose = MMPose(POSE_CFG, None, device="cpu")
    seg = MMSeg(SEG_CFG, None, person_class=12, device="cpu")
    out = {"pose": work / "pose_r50.pth", "seg": work / "segformer_b0.pth"}
    torch.save({"state_dict": pose.model.state_dict()}, out["pose"])
    torch.save({"state_dict": seg.model.state_dict()}, out["seg"])
    return out


def run(videos: Path, out: Path, view: str, extra: list[str]) -> dict[str, float]:
    cmd = [sys.executable, "-m", "preprocess", "run", "--videos", str(videos), "--out", str(out), "--views", view,
           "--jobs", "1", "--no-progress", *extra]
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
    log = json.loads(sorted((out / "logs").glob("run-*.json"))[-1].read_text())
    info = json.loads(subprocess.run([sys.executable, "-m", "preprocess", "info", str(out), "--json"], cwd=ROOT,
                                     check=True, capture_output=True, text=True).stdout)
    seconds = log["worker_seconds"][f"view:{view}"]
    frames = log["stored_frames"]
    return {"frames": frames, "view_seconds": seconds, "frames_per_s": frames / seconds,
            "bytes_per_frame": info["views"][view]["bytes_per_frame"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clips", default=str(CLIPS))
    p.add_argument("--limit", type=int, default=3)
    p.add_argument("--max-frames", type=int, default=90, help="first N source frames of each clip")
    args = p.parse_args()
    print("$ .venv/bin/python bench/bench_pose_seg.py " + " ".join(sys.argv[1:]))
    import av

    from preprocess.synthetic import encode_video
    work = Path(tempfile.mkdtemp(prefix="bench-pose-seg-"))
    videos = work / "videos"
    for clip in sorted(p for p in Path(args.clips).iterdir() if p.suffix in (".avi", ".mp4"))[: args.limit]:
        with av.open(str(clip)) as c:
            frames = [f.to_ndarray(format="rgb24") for _, f in zip(range(args.max_frames), c.decode(video=0))]
        encode_video(videos / f"{clip.stem}.mp4", frames, crf=10)
    ckpt = save_random_checkpoints(work)
    rows = {
        "pose / mediapipe": ("pose", []),
        "pose / mmpose R50 256x192 (mediapipe boxes)": ("pose", ["--pose-backend", "mmpose", "--pose-config",
                                                                 POSE_CFG, "--pose-checkpoint", str(ckpt["pose"]),
                                                                 "--model-device", "cpu"]),
        "seg / mediapipe selfie": ("seg", []),
        "seg / mmseg SegFormer-B0 512": ("seg", ["--seg-backend", "mmseg", "--seg-config", SEG_CFG,
                                                 "--seg-checkpoint", str(ckpt["seg"]), "--seg-person-class", "12",
                                                 "--model-device", "cpu"]),
    }
    results = {}
    for i, (name, (view, extra)) in enumerate(rows.items()):
        results[name] = run(videos, work / f"store{i}", view, extra)
    print(f"\n{args.limit} real clips, first {args.max_frames} frames, stride 3, 1 process, CPU, output short side 64\n")
    print("| view / backend | stored frames | frames/s (1 core) | bytes per stored frame |")
    print("|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['frames']} | {r['frames_per_s']:.1f} | {r['bytes_per_frame']:.0f} |")
    out = ROOT / "bench" / "results" / "pose_seg.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
