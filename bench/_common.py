"""Helpers shared by the benchmark scripts: clip lists, trimmed copies, running `preprocess`, sizes, tables."""

from __future__ import annotations

import json
import os
import platform
import shlex
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterable, Sequence

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

# The real clips, as the tests find them: $COCON_REAL_CLIPS, else ../shared/data/real_clips beside the repository.
DEFAULT_CLIPS = Path(os.environ.get("COCON_REAL_CLIPS", REPO_ROOT.parent / "shared" / "data" / "real_clips"))
RESULTS_DIR = REPO_ROOT / "bench" / "results"


def list_clips(folder: str | Path, limit: int = 0) -> list[Path]:
    """The video files of a folder (not recursive), sorted by name; the first `limit` of them (0: all)."""
    from data_specs import VIDEO_EXTENSIONS

    folder = Path(folder)
    if not folder.is_dir():
        raise SystemExit(f"error: clips folder {folder} does not exist")
    clips = sorted(p for p in folder.iterdir()
                   if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in VIDEO_EXTENSIONS)
    if not clips:
        raise SystemExit(f"error: no video files in {folder}")
    return clips[:limit] if limit and limit > 0 else clips


def link_clips(clips: Sequence[Path], dest: Path) -> Path:
    """A folder of symlinks to `clips` (nothing is copied), so a tool that takes a folder sees just these."""
    dest.mkdir(parents=True, exist_ok=True)
    for clip in clips:
        link = dest / clip.name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(Path(clip).resolve())
    return dest


def trim_clip(src: Path, dest: Path, max_frames: int, crf: int = 10) -> dict[str, Any]:
    """Re-encode the first `max_frames` frames of `src` as H.264 (high quality, same fps and rotation) into `dest`."""
    import av
    import numpy as np

    from preprocess.synthetic import encode_video

    frames: list[np.ndarray] = []
    with av.open(str(src)) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate or Fraction(25)
        rotation = 0
        for frame in container.decode(stream):
            if not frames:
                rotation = int(frame.rotation or 0)
            frames.append(frame.to_ndarray(format="rgb24"))
            if len(frames) >= max_frames:
                break
    if not frames:
        raise RuntimeError(f"{src}: no decodable frame")
    h, w = frames[0].shape[:2]
    pix_fmt = "yuv420p" if h % 2 == 0 and w % 2 == 0 else "yuv444p"  # 4:2:0 needs even sides
    fps = Fraction(rate).limit_denominator(1001)
    encode_video(dest, frames, fps=fps, codec="libx264", crf=crf, pix_fmt=pix_fmt, rotation=rotation)
    return {"source": str(src), "copy": str(dest), "frames": len(frames), "fps": float(fps),
            "size": [h, w], "pix_fmt": pix_fmt, "crf": crf}


def prepare_clips(clips: Sequence[Path], dest: Path, max_frames: int | None) -> tuple[Path, list[dict[str, Any]]]:
    """The folder both pipelines read: symlinks to the clips, or trimmed re-encoded copies when `max_frames` is set."""
    if not max_frames:
        return link_clips(clips, dest), [{"source": str(c), "copy": None} for c in clips]
    dest.mkdir(parents=True, exist_ok=True)
    info = [trim_clip(c, dest / (c.stem + ".mp4"), max_frames) for c in clips]
    return dest, info


def stored_count(source_frames: int, stride: int) -> int:
    """How many frames the store keeps of a video: one in `stride`, never the last source frame (no successor)."""
    return len(range(0, max(0, source_frames - 1), stride))


def tree_bytes(folder: Path) -> dict[str, int]:
    """Files, apparent bytes (sum of sizes) and allocated bytes (disk blocks) under a folder."""
    files = size = alloc = 0
    for dirpath, _, names in os.walk(folder):
        for name in names:
            st = os.stat(os.path.join(dirpath, name))
            files += 1
            size += st.st_size
            alloc += st.st_blocks * 512
    return {"files": files, "bytes": size, "allocated_bytes": alloc}


def run_cmd(cmd: Sequence[str], cwd: Path = REPO_ROOT) -> tuple[float, subprocess.CompletedProcess]:
    """Run a command, return (wall seconds, completed process); stdout and stderr are captured."""
    start = time.perf_counter()
    proc = subprocess.run(list(cmd), cwd=str(cwd), capture_output=True, text=True)
    return time.perf_counter() - start, proc


def preprocess_cmd(videos: Path, out: Path, views: str, jobs: int, size: int, stride: int,
                   extra: Sequence[str] = ()) -> list[str]:
    """The `python -m preprocess run` command line for a benchmark run."""
    return [sys.executable, "-m", "preprocess", "run", "--videos", str(videos), "--out", str(out),
            "--views", views, "--jobs", str(jobs), "--no-progress", "--size", str(size),
            "--stride", str(stride), *extra]


def run_preprocess(videos: Path, out: Path, views: str, jobs: int, size: int, stride: int,
                   extra: Sequence[str] = ()) -> dict[str, Any]:
    """Run our pipeline as a subprocess into a fresh `out`; return its log, `info --json` and the outer wall time."""
    if out.exists() and any(out.iterdir()):
        raise SystemExit(f"error: {out} is not empty; the benchmark needs a fresh output folder")
    cmd = preprocess_cmd(videos, out, views, jobs, size, stride, extra)
    wall, proc = run_cmd(cmd)
    if proc.returncode not in (0, 3):
        raise SystemExit(f"error: preprocess run failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    logs = sorted((out / "logs").glob("run-*.json"))
    if not logs:
        raise SystemExit(f"error: preprocess wrote no run log under {out / 'logs'}")
    log = json.loads(logs[-1].read_text())
    _, info_proc = run_cmd([sys.executable, "-m", "preprocess", "info", str(out), "--json"])
    if info_proc.returncode != 0:
        raise SystemExit(f"error: preprocess info failed:\n{info_proc.stderr[-3000:]}")
    return {"cmd": cmd, "returncode": proc.returncode, "outer_wall_seconds": wall, "log": log,
            "info": json.loads(info_proc.stdout), "stderr_tail": proc.stderr[-2000:]}


def shown_command(argv: Sequence[str] | None = None) -> str:
    """This process's command line, as it can be pasted from the repository root."""
    exe = sys.executable
    try:
        rel = os.path.relpath(exe, REPO_ROOT)
        if not rel.startswith(".."):
            exe = rel
    except ValueError:
        pass
    args = list(sys.argv if argv is None else argv)
    script = args[0]
    try:
        rel = os.path.relpath(os.path.abspath(script), REPO_ROOT)
        if not rel.startswith(".."):
            script = rel
    except ValueError:
        pass
    return shlex.join([exe, script, *args[1:]])


def short_cmd(cmd: Sequence[str]) -> str:
    """A subprocess command for display, with the interpreter shortened to `python`."""
    parts = list(cmd)
    if parts and parts[0] == sys.executable:
        parts[0] = "python"
    return shlex.join(parts)


def environment() -> dict[str, Any]:
    """Machine and library versions recorded with every result."""
    import importlib.metadata as md

    versions = {}
    for name in ("numpy", "opencv-contrib-python-headless", "av", "h5py", "hdf5plugin", "joblib"):
        try:
            versions[name] = md.version(name)
        except md.PackageNotFoundError:
            versions[name] = "unknown"
    try:
        import h5py
        versions["hdf5"] = h5py.version.hdf5_version
    except ImportError:
        pass
    return {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count(),
            "affinity_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
            "load_avg_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
            "versions": versions}


def md_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A Markdown table (numbers already formatted by the caller; None shows as '-')."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    for row in rows:
        lines.append("| " + " | ".join("-" if c is None else str(c) for c in row) + " |")
    return "\n".join(lines)


def fmt(x: float | None, digits: int = 1) -> str:
    """A number with thousands separators and `digits` decimals, '-' for None."""
    if x is None:
        return "-"
    return f"{x:,.{digits}f}"


def ratio(a: float | None, b: float | None, digits: int = 2) -> str:
    """a/b formatted as '1.23x', '-' when undefined."""
    if a is None or b is None or b == 0:
        return "-"
    return f"{a / b:.{digits}f}x"


def write_json(path: Path, obj: Any) -> Path:
    """Write a result file (creating bench/results/ if needed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1, sort_keys=False, default=str) + "\n")
    return path
