"""The learning benchmark: does pre-training give better RGB features than none, and CoCon better than CPC?

On the learning set (`python -m preprocess sample --variant learning`: classes defined by motion only; see
docs/learning_benchmark.md) it pre-trains, for every seed, the arms

  random      no pre-training (a checkpoint of the randomly initialised encoders, so that it can be probed)
  cpc         CPC on each view alone (`schedule.stage=cpc`) for cpc + cocon epochs
  cocon       CoCon: CPC for cpc epochs, then rgb + flow together for cocon epochs
  authors     CoCon with `preset=authors-code` (the authors' code's objective)
  teacher     CoCon with flow as a frozen teacher and the standardised L_sync (TEACHER_KEYS; docs/learning_benchmark.md)
  tclr        TCLR on RGB alone (`train.tclr`: 8-frame clips at step 4, 2 dense clips, the learning set's size)

with the same number of RGB-encoder steps in every pre-trained arm (TCLR: as many optimiser steps, each on
2 x 3 clips per video), each holding out the same test videos (`data.holdout`, seeded by the seed) that evaluation
and probing test on. Each arm is then measured with `python -m train.evaluate` (R@1, R@5, mean cosine of
same-class and other-class test pairs, per view it has; each method's own retrieval feature, clip placement and
input scaling) and a linear probe (`python -m train.finetune model.linear_probe=true`). A table (mean ± sd over
seeds) and a plot are written.
Every step is a public command run as a subprocess; its store, runs and logs live under --work, and finished
arms are not run again (delete <work>/results to redo them).

  python bench/bench_learning.py                 # the full form (docs/learning_benchmark.md)
  python bench/bench_learning.py --quick         # a smoke check: 1 seed, 18 tiny videos, 1 + 1 epochs
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))
from train.models.r3d import time_cells  # noqa: E402  (after the path: the repository's train package)
CONFIGS = REPO_ROOT / "configs"
PRETRAIN_CONFIG = CONFIGS / "cocon_r18w0.125-64_1x3_3+3e_sample-rgb-flow.yaml"
FINETUNE_CONFIG = CONFIGS / "finetune_r18w0.125-64_sample-rgb-flow.yaml"
EVALUATE_CONFIG = CONFIGS / "evaluate_r18w0.125-64_sample-rgb-flow.yaml"
TCLR_CONFIG = CONFIGS / "tclr_r3d18w0.125-32_1x4_4e_sample-rgb.yaml"
VIEWS = ("rgb", "flow_dis")
ARMS = ("random", "cpc", "cocon", "authors", "teacher", "tclr")
# The teacher arm's CoCon settings: flow, frozen at its CPC-stage weights, as the teacher; its block features
# standardised per dimension over the batch, and RGB's fitted to them (L_sync's standardised form at a weight that
# leaves RGB's L_cpc a small share of its encoder's gradient); no L_sim, no colour augmentation, the learning rate
# held (docs/learning_benchmark.md).
TEACHER_KEYS = (f"loss.teacher={VIEWS[-1]}", "loss.sync_form=standardised", "loss.lambda_sim=0",
                "loss.lambda_sync=100", "augment.grey_p=0", "augment.jitter=[0,0,0,0]",
                "optim.plateau_patience=1000", "loss.freeze_teacher=true")
RANDOM_INIT = threading.Lock()
TABLE_COLUMNS = ("arm", "view", "R@1", "R@5", "cosine same class", "cosine other classes", "spread (0: collapsed)",
                 "effective rank", "ρ appearance", "ρ class", "linear probe top-1")


@dataclass
class Setting:
    """One form of the benchmark: the data set, the clip and model size, and the schedule of every arm."""

    seeds: list[int]
    per_class: int = 32
    frames: int = 128
    size: int = 64
    num_blocks: int = 8
    block_frames: int = 5
    pred_steps: int = 3
    batch_size: int = 8
    repeats: int = 2
    cpc_epochs: int = 5
    cocon_epochs: int = 35           # the teacher arm needs about 400 cooperative steps (docs/learning_benchmark.md)
    probe_epochs: int = 10
    probe_dropout: float = 0.1       # CoCon's 0.7 drops 70% of a width-1/8 (32-d) feature (docs/learning_benchmark.md)
    probe_lr: float = 0.01           # fine-tuning's 1e-3 leaves a linear head under-trained in 10 epochs (same doc)
    holdout: float = 0.75            # 8 training, 24 test videos a class: 3x the test videos of an even split
    clips_per_video: int = 4
    tclr_clip: tuple[int, int] = (8, 4)   # TCLR's clip_frames, sparse_step: a 32-frame window of 42 stored frames
    threads: int = 0                 # OMP_NUM_THREADS of every command (0: the environment's)
    extra: list[str] = field(default_factory=list)   # overrides added to every pre-training run

    def clip_keys(self) -> list[str]:
        sizes = ", ".join(f"{v}: {self.size}" for v in VIEWS)
        return ["model.width=0.125", "progress=false", f"data.num_blocks={self.num_blocks}",
                f"data.block_frames={self.block_frames}", f"model.sizes={{{sizes}}}"]


FULL = Setting(seeds=[0, 1, 2])
QUICK = Setting(seeds=[0], per_class=3, holdout=0.5, frames=40, size=32, num_blocks=4, block_frames=3, pred_steps=2,
                batch_size=3, repeats=1, cpc_epochs=1, cocon_epochs=1, probe_epochs=1, clips_per_video=1,
                threads=1)


def run(cmd: list[str], log: Path, threads: int = 0) -> None:
    """Run one public command; its output goes to `log`; a failure stops the benchmark with the log's tail."""
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    if threads:   # tiny models on a shared machine: more threads only contend
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    with open(log, "w") as fh:
        fh.write(" ".join(cmd) + "\n")
        fh.flush()
        rc = subprocess.call(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=REPO_ROOT, env=env)
    if rc != 0:
        tail = "".join(log.read_text().splitlines(keepends=True)[-15:])
        raise SystemExit(f"error: {' '.join(cmd[:4])} ... failed with exit status {rc} (log {log}):\n{tail}")


def make_store(s: Setting, work: Path) -> Path:
    """The learning set's videos and their rgb + flow_dis store (made once per work folder)."""
    store = work / "store"
    if (work / "store.done").is_file():
        return store
    py = sys.executable
    run([py, "-m", "preprocess", "sample", str(work / "videos"), "--variant", "learning", "--per-class",
         str(s.per_class), "--frames", str(s.frames), "--seed", "0"], work / "logs" / "sample.log", s.threads)
    run([py, "-m", "preprocess", "run", "--videos", str(work / "videos"), "--out", str(store), "--views",
         ",".join(VIEWS), "--size", str(s.size), "--jobs", "2", "--no-progress"], work / "logs" / "store.log",
        s.threads)
    (work / "store.done").write_text("")
    return store


def pretrain_keys(s: Setting, store: Path, runs: Path, seed: int, arm_keys: tuple[str, ...] = ()) -> list[str]:
    """The keys of one arm's pre-training run: the setting's, then the arm's own, then the overrides (they win)."""
    return [f"data.root={store}", f"out={runs}", f"seed={seed}", f"data.holdout={s.holdout}",
            f"data.batch_size={s.batch_size}", f"data.repeats={s.repeats}", f"model.pred_steps={s.pred_steps}",
            "data.workers=0", *s.clip_keys(), *arm_keys, *s.extra]


def random_checkpoint(s: Setting, store: Path, path: Path, seed: int) -> None:
    """The randomly initialised rgb and flow encoders of a CoCon model, saved as a CoCon checkpoint, so that the
    random arm is evaluated and probed like the others (train.finetune refuses to probe no checkpoint)."""
    import torch

    from train.config import load_config
    from train.engine.checkpoint import save_checkpoint
    from train.engine.distributed import DistInfo
    from train.methods.cocon import CoconConfig, CoconStage, CoconStageJob

    views = f"data.views=[{', '.join(VIEWS)}]"
    cfg = load_config(PRETRAIN_CONFIG, [*pretrain_keys(s, store, path.parent, seed), views], CoconConfig)
    job = CoconStageJob(cfg, CoconStage("random", 0, list(VIEWS)), DistInfo(device=torch.device("cpu")))
    torch.manual_seed(seed)
    model = job.build_model()
    path.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(path, {"model": model.state_dict(), **job.checkpoint_extra(model)})


def tclr_keys(s: Setting, store: Path, runs: Path, seed: int) -> list[str]:
    """train.tclr on RGB with the other arms' videos, batch, passes and epochs (their RGB encoder's steps);
    `s.extra` is CoCon's and is not applied."""
    frames, step = s.tclr_clip
    return [f"data.root={store}", f"out={runs}", f"seed={seed}", f"data.holdout={s.holdout}", "data.views=[rgb]",
            f"data.batch_size={s.batch_size}", f"data.repeats={s.repeats}", "data.workers=0", "progress=false",
            f"data.clip_frames={frames}", f"data.sparse_step={step}", f"data.local_clips={time_cells(frames)}",
            "model.width=0.125", f"model.size={s.size}", f"epochs={s.cpc_epochs + s.cocon_epochs}", "name=tclr"]


def pretrain(arm: str, s: Setting, store: Path, arm_dir: Path, seed: int) -> dict[str, Path]:
    """Pre-train one arm; the checkpoint of each view."""
    py, runs = sys.executable, arm_dir / "runs"
    final = {"cpc": runs / "cpc" / f"cpc-{VIEWS[-1]}" / "checkpoint.pth", "cocon": runs / "cocon" / "cocon" /
             "checkpoint.pth", "authors": runs / "authors" / "cocon" / "checkpoint.pth",
             "teacher": runs / "teacher" / "cocon" / "checkpoint.pth",
             "tclr": runs / "tclr" / "tclr" / "checkpoint.pth"}.get(arm)
    if final is not None and not final.is_file():   # an interrupted pre-training starts again
        shutil.rmtree(runs, ignore_errors=True)
    arm_keys = {"authors": ("preset=authors-code",), "teacher": TEACHER_KEYS}.get(arm, ())
    keys = pretrain_keys(s, store, runs, seed, arm_keys)
    views = f"data.views=[{', '.join(VIEWS)}]"
    if arm == "random":
        path = runs / "random" / "checkpoint.pth"
        with RANDOM_INIT:   # torch's global generator: one random arm at a time
            if not path.is_file():
                random_checkpoint(s, store, path, seed)
        return {v: path for v in VIEWS}
    if arm == "cpc":   # each view alone for as many epochs as CoCon's rgb gets in its two stages
        if not final.is_file():
            run([py, "-m", "train.cocon", "--config", str(PRETRAIN_CONFIG), *keys, views, "name=cpc",
                 "schedule.stage=cpc", f"schedule.cpc_epochs={s.cpc_epochs + s.cocon_epochs}"],
                arm_dir / "pretrain.log", s.threads)
        return {v: runs / "cpc" / f"cpc-{v}" / "checkpoint.pth" for v in VIEWS}
    if arm in ("cocon", "authors", "teacher"):
        if not final.is_file():
            run([py, "-m", "train.cocon", "--config", str(PRETRAIN_CONFIG), *keys, views, f"name={arm}",
                 "schedule.stage=both", f"schedule.cpc_epochs={s.cpc_epochs}",
                 f"schedule.cocon_epochs={s.cocon_epochs}"], arm_dir / "pretrain.log", s.threads)
        return {v: final for v in VIEWS}
    if arm == "tclr":   # RGB only: one epoch's steps as CoCon's, for cpc + cocon epochs
        if not final.is_file():
            run([py, "-m", "train.tclr", "--config", str(TCLR_CONFIG), *tclr_keys(s, store, runs, seed)],
                arm_dir / "pretrain.log", s.threads)
        return {"rgb": final}
    raise ValueError(f"unknown arm {arm!r}")


def measure(s: Setting, store: Path, arm_dir: Path, seed: int, checkpoints: dict[str, Path]) -> dict[str, Any]:
    """Retrieval (train.evaluate) and a linear probe (train.finetune) of each view of `checkpoints`, on the
    held-out videos."""
    py, views = sys.executable, list(checkpoints)
    for partial in (arm_dir / "evaluate", arm_dir / "probe"):   # an interrupted measurement starts again
        shutil.rmtree(partial, ignore_errors=True)
    common = [f"data.root={store}", f"out={arm_dir}", f"seed={seed}", "data.workers=0", *s.clip_keys()]
    inits = ", ".join(f"{v}: {p}" for v, p in checkpoints.items())
    run([py, "-m", "train.evaluate", "--config", str(EVALUATE_CONFIG), *common, "name=evaluate", "checkpoint=",
         f"checkpoints={{{inits}}}", f"data.views=[{', '.join(views)}]", "data.split=null",
         f"data.holdout={s.holdout}", f"data.clips_per_video={s.clips_per_video}", "analysis.alignment_pairs=0",
         "analysis.strip_queries=0", f"data.batch_size={s.batch_size}"], arm_dir / "evaluate.log", s.threads)
    run([py, "-m", "train.finetune", "--config", str(FINETUNE_CONFIG), *common, "name=probe", "model.init=",
         f"model.init_views={{{inits}}}", "model.linear_probe=true", f"model.dropout={s.probe_dropout}",
         f"optim.lr={s.probe_lr}",
         f"data.views=[{', '.join(views)}]",
         "data.splits=[]", f"data.holdout={s.holdout}", f"epochs={s.probe_epochs}",
         f"optim.milestones=[{s.probe_epochs + 1}]", f"data.batch_size={s.batch_size}",
         f"data.repeats={s.repeats}", f"model.precise_bn_batches={max(2, s.repeats * 4)}"], arm_dir / "probe.log",
        s.threads)
    ev = json.loads((arm_dir / "evaluate" / "metrics.json").read_text())
    probe = json.loads((arm_dir / "probe" / "metrics.json").read_text())["results"]["labels100"]
    out: dict[str, Any] = {"queries": ev["queries"], "gallery": ev["gallery"],
                           "chance_r1": ev["recall_chance"]["1"], "probe_chance": probe["chance"]["holdout"]}
    for v in views:
        r = ev["results"][v]
        out[v] = {"r1": r["recall"]["1"], "r5": r["recall"]["5"], "cos_same": r["cosine_same_class_mean"],
                  "cos_other": r["cosine_other_class_mean"], "spread": r["spread"]["std"],
                  "rank": r["spread"]["effective_rank"], "probe_top1": probe["mean"][v]["top1"],
                  **appearance_and_class(store, arm_dir / "evaluate" / v / "features.npz")}
    return out


@functools.lru_cache(maxsize=8)
def store_appearance(store: Path, ids: tuple[str, ...]) -> Any:
    """`appearance_statistics` of the rgb view of the videos `ids` of a store, one row each (read once: every
    arm and view of one seed compares its features with the same statistics)."""
    import numpy as np

    from preprocess.learning_set import appearance_statistics
    from preprocess.store import Store

    st = Store(store)
    try:
        return np.stack([appearance_statistics(st.read(v, "rgb", 0, st.num_frames(v, "rgb"))) for v in ids])
    finally:
        st.close()


def appearance_and_class(store: Path, features: Path) -> dict[str, float]:
    """Spearman correlations, over every (test, training) video pair, of the cosine of their features with the
    similarity of their appearance (minus the distance of standardised `appearance_statistics`) and with being
    of one class: a feature that ranks videos by appearance has learnt what the set draws independently of the
    class (docs/learning_benchmark.md)."""
    import numpy as np

    from train.evaluation.metrics import l2_normalise_rows

    z = np.load(features)
    both = store_appearance(store, (*z["query_ids"].tolist(), *z["gallery_ids"].tolist()))
    both = (both - both.mean(0)) / (both.std(0) + 1e-9)
    qa, ga = both[: len(z["query_ids"])], both[len(z["query_ids"]):]
    cos = (l2_normalise_rows(z["queries"]) @ l2_normalise_rows(z["gallery"]).T).ravel()
    appearance = -np.linalg.norm(qa[:, None] - ga[None], axis=-1).ravel()
    same = (z["query_labels"][:, None] == z["gallery_labels"][None]).ravel().astype(float)
    return {"rho_appearance": spearman(cos, appearance), "rho_class": spearman(cos, same)}


def spearman(a: Any, b: Any) -> float:
    """Spearman's rank correlation of two 1-D arrays, ties at their mean rank (numpy only, so that the test
    process that checks it loads nothing more than the bench needs)."""
    import numpy as np

    def ranks(x: Any) -> Any:
        order = np.argsort(x, kind="stable")
        r = np.empty(len(x))
        r[order] = np.arange(len(x))
        _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
        return (np.bincount(inverse, weights=r) / counts)[inverse]

    return float(np.corrcoef(ranks(np.asarray(a)), ranks(np.asarray(b)))[0, 1])


def _mean_sd(values: list[float]) -> str:
    pct = [100 * v for v in values]
    if len(pct) < 2:
        return f"{pct[0]:.1f}"
    return f"{statistics.mean(pct):.1f} ± {statistics.stdev(pct):.1f}"


def _mean_sd_raw(values: list[float | None], digits: int = 3) -> str:
    """mean ± sd of the values present ('-' when none is: a result from before that measure existed)."""
    present = [v for v in values if v is not None]
    if not present:
        return "-"
    if len(present) < 2:
        return f"{present[0]:.{digits}f}"
    return f"{statistics.mean(present):.{digits}f} ± {statistics.stdev(present):.{digits}f}"


def write_table(results: dict[str, dict[int, dict[str, Any]]], s: Setting, path: Path, command: str,
                seconds: float, ran: int, total: int) -> None:
    """A markdown table: per arm and view, R@1, R@5, same/other-class cosine, spread, effective rank, the
    appearance and class correlations, and probe top-1, mean ± sd."""
    when = time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())
    lines = [f"Command: `{command}`; seeds {', '.join(map(str, s.seeds))}; {when}; this invocation ran {ran} of "
             f"{total} arms (the others were read from an earlier run in its work folder) in {seconds / 60:.1f} min "
             f"wall on {os.cpu_count()} CPUs (timing is not a measurement here).", ""]
    any_arm = next(iter(next(iter(results.values())).values()), None) if results else None
    if any_arm:
        lines += [f"{any_arm['queries']} test videos query {any_arm['gallery']} training videos; chance R@1 "
                  f"{100 * any_arm['chance_r1']:.1f}%, probe chance {100 * any_arm['probe_chance']:.1f}%. "
                  f"Values in %, mean ± sd over seeds (cosines, spread, rank, ρ: mean ± sd). ρ: Spearman "
                  f"correlation over (test, training) video pairs of the feature cosine with appearance similarity "
                  f"and with being of one class.", ""]
    lines += ["| " + " | ".join(TABLE_COLUMNS) + " |", "|---" * len(TABLE_COLUMNS) + "|"]
    for arm, per_seed in results.items():
        runs = [per_seed[seed] for seed in s.seeds if seed in per_seed]
        for v in VIEWS:
            if v not in runs[0]:
                lines.append(f"| {arm} | {v} |" + " - |" * (len(TABLE_COLUMNS) - 2))
                continue
            lines.append(f"| {arm} | {v} | {_mean_sd([r[v]['r1'] for r in runs])} | "
                         f"{_mean_sd([r[v]['r5'] for r in runs])} "
                         f"| {_mean_sd_raw([r[v]['cos_same'] for r in runs])} | "
                         f"{_mean_sd_raw([r[v]['cos_other'] for r in runs])} | "
                         f"{_mean_sd_raw([r[v].get('spread') for r in runs])} | "
                         f"{_mean_sd_raw([r[v].get('rank') for r in runs], 1)} | "
                         f"{_mean_sd_raw([r[v].get('rho_appearance') for r in runs], 2)} | "
                         f"{_mean_sd_raw([r[v].get('rho_class') for r in runs], 2)} | "
                         f"{_mean_sd([r[v]['probe_top1'] for r in runs])} |")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def write_plot(results: dict[str, dict[int, dict[str, Any]]], path: Path) -> None:
    """Per arm: RGB and flow R@1 and probe top-1 (mean, sd as error bars, every seed as a dot), and what the RGB
    feature ranks videos by (its correlation with appearance and with the class)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    arms = list(results)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
    panels = [(axes[0], "r1", VIEWS, "retrieval R@1 (%)"), (axes[1], "probe_top1", VIEWS, "linear probe top-1 (%)"),
              (axes[2], None, ("rho_appearance", "rho_class"), "RGB feature cosine: Spearman ρ with")]

    def value(r: dict[str, Any], metric: str | None, name: str) -> float:
        if metric is None:   # the RGB feature's correlation called `name`
            return r["rgb"].get(name, np.nan)
        return 100 * r[name][metric] if name in r else np.nan

    for ax, metric, series, title in panels:
        for j, name in enumerate(series):
            x = np.arange(len(arms)) + (j - 0.5) * 0.38
            vals = [[value(r, metric, name) for r in results[a].values()] for a in arms]
            ax.bar(x, [np.mean(q) for q in vals], 0.36, label=name.replace("rho_", ""), capsize=3,
                   yerr=[np.std(q, ddof=1) if len(q) > 1 else 0 for q in vals])
            for xi, q in zip(x, vals):
                ax.plot([xi] * len(q), q, "k.", ms=3)
        if metric:
            first = next(iter(results[arms[0]].values()))
            ax.axhline(100 * (first["chance_r1"] if metric == "r1" else first["probe_chance"]), color="grey",
                       ls="--", lw=1, label="chance")
        ax.set_xticks(np.arange(len(arms)), arms)
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def result_file(work: Path, seed: int, arm: str) -> Path:
    """Where one arm of one seed keeps its result; the arm's runs, logs and reports are beside it."""
    return work / f"seed{seed}" / arm / "result.json"


def run_arm(arm: str, s: Setting, store: Path, work: Path, seed: int) -> dict[str, Any]:
    """Pre-train and measure one arm of one seed, or read its result when an earlier run finished it."""
    done = result_file(work, seed, arm)
    arm_dir = done.parent
    if done.is_file():
        result = json.loads(done.read_text())
        for v in VIEWS:   # a result written before the appearance/class correlations were measured
            npz = arm_dir / "evaluate" / v / "features.npz"
            if v in result and "rho_class" not in result[v] and npz.is_file():
                result[v].update(appearance_and_class(store, npz))
                done.write_text(json.dumps(result, indent=1))
        return result
    t0 = time.monotonic()
    result = measure(s, store, arm_dir, seed, pretrain(arm, s, store, arm_dir, seed))
    result["seconds"] = round(time.monotonic() - t0, 1)   # this arm's wall time, pre-training and measurement
    done.write_text(json.dumps(result, indent=1))
    flow = f"{100 * result['flow_dis']['r1']:.1f}%" if "flow_dis" in result else "-"
    rgb = result["rgb"]
    print(f"seed {seed} {arm}: rgb R@1 {100 * rgb['r1']:.1f}%, probe {100 * rgb['probe_top1']:.1f}%; "
          f"flow R@1 {flow} ({result['seconds']:.0f} s)", file=sys.stderr)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke check: 1 seed, 18 tiny videos, 1 + 1 epochs")
    parser.add_argument("--work", type=Path, default=None, help="store, runs and logs (default bench/results/learning"
                        "[-quick])")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="seeds (default 0 1 2; --quick: 0)")
    parser.add_argument("--arms", nargs="+", choices=ARMS, default=list(ARMS))
    parser.add_argument("--epochs", type=int, nargs=2, metavar=("CPC", "COCON"), default=None,
                        help="pre-training epochs of CoCon's two stages (the cpc arm gets their sum)")
    parser.add_argument("--jobs", type=int, default=0, help="arms run side by side, each command at cpus/jobs "
                        "threads (default: one per CPU, at most 8)")
    parser.add_argument("--per-class", type=int, default=None, help="videos per class (default 32; --quick 3)")
    parser.add_argument("--holdout", type=float, default=None,
                        help="test fraction of each class, held out of pre-training and probing (default 0.75; --quick 0.5)")
    parser.add_argument("--table", type=Path, default=None,
                        help="markdown table (default docs/learning_benchmark_table.md; --quick: <work>/table.md)")
    parser.add_argument("--plot", type=Path, default=None,
                        help="PNG (default docs/learning_benchmark.png; --quick: <work>/plot.png)")
    parser.add_argument("overrides", nargs="*", help="extra key=value overrides of every pre-training run")
    args = parser.parse_args(argv)
    s = QUICK if args.quick else FULL
    s = Setting(**{**vars(s), "extra": list(args.overrides)})
    if args.seeds:
        s.seeds = args.seeds
    if args.epochs:
        s.cpc_epochs, s.cocon_epochs = args.epochs
    if args.per_class:
        s.per_class = args.per_class
    if args.holdout is not None:
        if not 0 < args.holdout < 1:
            parser.error(f"--holdout must be in (0, 1), got {args.holdout}")
        s.holdout = args.holdout
    work = (args.work or REPO_ROOT / "bench" / "results" / ("learning-quick" if args.quick else "learning")).resolve()
    table = args.table or (work / "table.md" if args.quick else REPO_ROOT / "docs" / "learning_benchmark_table.md")
    plot = args.plot or (work / "plot.png" if args.quick else REPO_ROOT / "docs" / "learning_benchmark.png")
    command = " ".join(["python bench/bench_learning.py", *(argv if argv is not None else sys.argv[1:])])
    jobs = args.jobs or max(1, min(os.cpu_count() or 1, 8))
    if jobs > 1 and not s.threads:   # tiny models: one thread per command, commands side by side
        s.threads = max(1, (os.cpu_count() or 1) // jobs)
    start = time.monotonic()
    store = make_store(s, work)
    tasks = [(seed, arm) for seed in s.seeds for arm in args.arms]   # seed-major: first seeds finish first
    already = [t for t in tasks if result_file(work, *t).is_file()]
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {task: pool.submit(run_arm, task[1], s, store, work, task[0]) for task in tasks}
        try:
            for future in as_completed(futures.values()):
                future.result()
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    results = {arm: {seed: futures[(seed, arm)].result() for seed in s.seeds} for arm in args.arms}
    ran = len(tasks) - len(already)
    write_table(results, s, table, command, time.monotonic() - start, ran, len(tasks))
    if results:
        write_plot(results, plot)
    print(f"table: {table}\nplot: {plot}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
