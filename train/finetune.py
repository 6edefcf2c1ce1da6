"""`python -m train.finetune --config configs/X.yaml [key=value ...] [--resume]`: supervised evaluation of
pre-trained encoders (CoCon supplementary A.4, TCLR's protocols).

For every split (UCF101/HMDB51: 1, 2, 3; or a stratified hold-out), label fraction and view: fine-tune the
encoder of any method's checkpoint (its clip feature; CoCon: F = g(f(.)) pooled) + dropout + linear end to end (or,
with model.linear_probe=true, train only the head on the frozen encoder), test the clips the method tests on (CoCon:
every half-overlapping window of every test video; TCLR: 10 evenly placed clips), average softmax per video. Then
the multi-view ensemble (weighted mean of the views' probabilities), the mean over splits, confusion
matrices, and one report (metrics.json + report.md) in the run folder.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from preprocess.store import Store

from .data import DataError, view_kind
from .data.splits import class_names, split_ids, stratified_fraction
from .engine.command import command_parser, run_command
from .engine.distributed import exit_process, process_group
from .engine.errors import TrainingError
from .engine.runner import Runner
from .evaluation.figures import plot_confusion
from .evaluation.metrics import confusion_matrix, ensemble_probabilities, per_class_accuracy, topk_accuracy
from .evaluation.report import Section, describe_clips, format_percent, write_report
from .finetune_config import FinetuneConfig
from .finetuner import FinetuneJob, Unit, encoder_request, fraction_tag, load_predictions, unit_finished
from .methods import TestClips, downstream, load_encoder, resolve_clips

ENSEMBLE = "ensemble"


def plan_units(cfg: FinetuneConfig, store: Store) -> list[Unit]:
    """Every (split, label fraction, view) to fine-tune, in that order, with its videos and folder."""
    records = [r for r in store.manifest.records if r.label >= 0]
    units = []
    for split in cfg.data.splits or [None]:
        train_ids, test_ids = split_ids(records, split, cfg.data.train_subset, cfg.data.test_subset,
                                        cfg.data.holdout, cfg.seed)
        train_records = [r for r in records if r.id in set(train_ids)]
        tag = f"split{split}" if split is not None else "holdout"
        for fraction in cfg.data.label_fractions:
            ids = stratified_fraction(train_records, fraction, cfg.seed)
            for view in cfg.data.views:
                units.append(Unit(view, tag, fraction, ids, test_ids, cfg.run_dir / tag / fraction_tag(fraction) / view))
    return units


def summarise(cfg: FinetuneConfig, units: list[Unit], kinds: dict[str, str], names: list[str],
              tests: dict[str, TestClips]) -> Path:
    """Ensembles, means over splits, confusion PNGs, metrics.json and report.md from the units' predictions."""
    views = list(cfg.data.views)
    weights = {v: cfg.ensemble_weight(v, kinds[v]) for v in views}
    results: dict[str, dict[str, Any]] = {}
    figures: list[Path] = []
    for fraction in cfg.data.label_fractions:
        ftag = fraction_tag(fraction)
        per_split: dict[str, dict[str, Any]] = {}
        chance: dict[str, float] = {}
        for split in dict.fromkeys(u.split for u in units):
            probs, labels, ids = {}, None, None
            for u in units:
                if u.split == split and u.fraction == fraction:
                    ids, labels, probs[u.view] = load_predictions(u.dir)
            assert labels is not None
            chance[split] = 1.0 / len(np.unique(labels))
            columns = dict(probs)
            if len(views) > 1:
                columns[ENSEMBLE] = ensemble_probabilities(probs, weights)
            per_split[split] = {}
            for name, p in columns.items():
                acc = topk_accuracy(p, labels, ks=(1, 5))
                conf = confusion_matrix(p.argmax(1), labels, len(names))
                per_split[split][name] = {"top1": acc[1], "top5": acc[5], "per_class_top1":
                                          per_class_accuracy(conf).tolist(), "videos": len(labels)}
                if name == ENSEMBLE or len(views) == 1:
                    figures.append(plot_confusion(conf, names, cfg.run_dir / split / ftag / f"confusion_{name}.png",
                                                  f"{split}, {100 * fraction:g}% labels, {name}: top-1 "
                                                  f"{100 * acc[1]:.1f}%"))
        columns_all = list(next(iter(per_split.values())))
        mean = {c: {k: float(np.mean([per_split[s][c][k] for s in per_split])) for k in ("top1", "top5")}
                for c in columns_all}
        for c in columns_all:
            mean[c]["per_class_top1"] = _nan_mean([per_split[s][c]["per_class_top1"] for s in per_split]).tolist()
        results[ftag] = {"splits": per_split, "mean": mean, "chance": chance}
    metrics = {"views": views, "ensemble_weights": weights, "linear_probe": cfg.model.linear_probe,
               "init": {v: cfg.init_for(v) or "random" for v in views}, "epochs": cfg.epochs,
               "classes": names, "results": results}
    sections = [Section("Setup", _setup_text(cfg, weights, tests))]
    for ftag, res in results.items():
        splits = list(res["splits"])
        header = ["model"] + [f"{s} top-1 / top-5" for s in splits] + ["mean top-1 / top-5"]
        rows = [[c] + [f"{format_percent(res['splits'][s][c]['top1'])} / {format_percent(res['splits'][s][c]['top5'])}"
                       for s in splits] + [f"{format_percent(res['mean'][c]['top1'])} / "
                                           f"{format_percent(res['mean'][c]['top5'])}"] for c in res["mean"]]
        pct = ftag.removeprefix("labels")
        text = "Chance (one over the classes in the test videos): " + ", ".join(
            f"{s} {format_percent(c)}" for s, c in res["chance"].items()) + "."
        sections.append(Section(f"Accuracy with {pct}% of the training labels", text, table=[header] + rows,
                                figures=[f for f in figures if f.parent.name == ftag]))
    top = results[fraction_tag(max(cfg.data.label_fractions))]["mean"]
    sections.append(Section(
        f"Per-class top-1 with {100 * max(cfg.data.label_fractions):g}% of the labels (mean over splits)",
        table=[["class"] + list(top)] + [[name] + [format_percent(top[c]["per_class_top1"][i]) for c in top]
                                         for i, name in enumerate(names)]))
    return write_report(cfg.run_dir, f"Fine-tuning: {cfg.name}", metrics, sections)


def _nan_mean(rows: list[list[float]]) -> np.ndarray:
    """Column means ignoring NaN (a class absent from a split's test videos); NaN where no split has it."""
    a = np.array(rows, dtype=np.float64)
    counts = np.isfinite(a).sum(0)
    return np.where(counts > 0, np.nansum(a, 0) / np.maximum(counts, 1), np.nan)


def _setup_text(cfg: FinetuneConfig, weights: dict[str, float], tests: dict[str, TestClips]) -> str:
    how = "linear probe (frozen f and g, BatchNorm + linear head trained)" if cfg.model.linear_probe else \
        "end-to-end fine-tuning"
    init = ", ".join(f"{v}: {cfg.init_for(v) or 'random initialisation'}" for v in cfg.data.views)
    return (f"{how}; {cfg.epochs} epochs, Adam lr {cfg.optim.lr:g} (x{cfg.optim.gamma:g} at "
            f"{cfg.optim.milestones}), dropout {cfg.model.dropout:g}; store `{cfg.data.root}`. Start: {init}. "
            f"Test: {_tests_text(cfg, tests)}, centre crop, softmax averaged per video. Ensemble weights: "
            f"{', '.join(f'{v} {w:g}' for v, w in weights.items())} (normalised by their sum).")


def _tests_text(cfg: FinetuneConfig, tests: dict[str, TestClips]) -> str:
    d = cfg.data
    texts = {v: describe_clips(t.count, t.placement, d.num_blocks, d.block_frames, d.test_overlap)
             for v, t in tests.items()}
    if len(set(texts.values())) == 1:
        return next(iter(texts.values()))
    return "; ".join(f"{v}: {t}" for v, t in texts.items())


def check_inits(cfg: FinetuneConfig, channels: dict[str, int]) -> dict[str, TestClips]:
    """Load every view's starting encoder once, so that a missing file or one from another view, depth or
    width stops the run before any training (one line); returns the test clips each view's method asks for."""
    if cfg.model.linear_probe and not all(cfg.init_for(v) for v in cfg.data.views):
        raise TrainingError("model.linear_probe needs model.init (or model.init_views) for every view: a frozen "
                            "random encoder measures nothing")
    tests = {}
    for view in cfg.data.views:
        encoder = load_encoder(cfg.init_for(view), encoder_request(cfg, view, channels[view]))
        tests[view] = resolve_clips(downstream(encoder).classification, cfg.data.test_clips, cfg.data.test_placement,
                                    "data.test_clips")
    return tests


def build_parser() -> argparse.ArgumentParser:
    return command_parser("python -m train.finetune", __doc__,
                          "Overrides are dotted keys, e.g. model.init=runs/x/cocon/checkpoint.pth data.splits=[1] "
                          "data.label_fractions=[0.1,1.0] model.linear_probe=true. Exit status: 0 done, 2 a usage "
                          "error, 4 the loss diverged.", "continue the run; finished units are not redone")


def run(cfg: FinetuneConfig, resume: bool) -> int:
    store = Store(cfg.data.root)
    try:
        names = class_names(store)
        absent = [v for v in cfg.data.views if v not in store.view_meta]
        if absent:
            raise DataError(f"view(s) {', '.join(absent)} not in store {store.root} (it has: {', '.join(store.views)})")
        kinds = {v: view_kind(store.view_meta[v]) for v in cfg.data.views}
        channels = {v: int(store.view_meta[v]["channels"]) for v in cfg.data.views}
        units = plan_units(cfg, store)
    finally:
        store.close()
    tests = check_inits(cfg, channels)
    with process_group(cfg.device) as dist:
        torch.manual_seed(cfg.seed + dist.rank)
        for unit in units:
            job = FinetuneJob(cfg, unit, dist, len(names))
            runner = Runner(job, dist, resume)
            if unit_finished(runner):
                continue
            job.write_videos()
            metrics = runner.run()
            if dist.is_main:
                print(f"{unit.dir}: test top-1 {100 * metrics['top1']:.1f}%, top-5 {100 * metrics['top5']:.1f}% "
                      f"({metrics['videos']} videos, {metrics['windows']} windows)", file=sys.stderr)
        if dist.is_main:
            report = summarise(cfg, units, kinds, names, tests)
            print(f"report: {report}", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(args.config, args.overrides, FinetuneConfig, lambda cfg: run(cfg, args.resume))


if __name__ == "__main__":
    exit_process(main())
