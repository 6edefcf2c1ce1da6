"""`python -m train.evaluate --config configs/X.yaml [key=value ...]`: what a pre-trained encoder has learnt,
without training anything.

Per view of a pre-training checkpoint (any method: the checkpoint names the one that wrote it): nearest-neighbour
retrieval as the method defines it (test videos query the training videos by cosine similarity of the encoder's
retrieval feature averaged over the method's clips, e.g. CoCon: 10 windows of F = g(f(.)); TCLR: 9 clips of the
time-unpooled map; R@1/5/10/20), and the CoCon supplementary's
analyses: t-SNE of test videos by class, each class's nearest classes and their consistency across views,
soft alignment of two videos (18 blocks), cosine histograms of same-class vs other-class pairs, and
nearest-neighbour strips. One report (metrics.json, report.md and PNG figures) in the run folder.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from preprocess.store import Store

from .data import DataError, DenseClips, MultiViewClips, ViewAugment, view_kind
from .data.splits import class_names, split_ids
from .engine.command import command_parser, run_command
from .engine.distributed import DistInfo, pick_device
from .engine.errors import ConfigError
from .evaluate_config import EvalConfig
from .evaluation.features import block_features, video_features
from .evaluation.figures import (plot_alignment, plot_class_similarity, plot_cosine_histograms,
                                 plot_neighbour_strips, plot_tsne)
from .evaluation.metrics import (by_construction, chance_recall_at_k, class_similarity, consistency,
                                 consistency_informative, feature_spread, l2_normalise_rows, nearest_classes,
                                 nearest_neighbours, pair_cosines, recall_at_k, soft_alignment)
from .evaluation.report import (NOT_INFORMATIVE, Section, describe_clips, missing_classes_note, recall_table,
                                write_report)
from .methods import Encoder, EncoderRequest, checkpoint_views, downstream, load_encoder, resolve_clips

ALL_VIEWS = "all views"


def display_frame(store: Store, video_id: str, view: str) -> np.ndarray:
    """The middle stored frame of a video for a figure: its rgb frame when the store has rgb, else the view's
    channels averaged to grey."""
    shown = "rgb" if "rgb" in store.view_meta else view
    t = store.num_frames(video_id, shown) // 2
    frame = store.read(video_id, shown, t, t + 1)[0]
    return frame if shown == "rgb" else frame.mean(axis=-1).astype(np.uint8)


def alignment_pairs(labels: np.ndarray, count: int) -> list[tuple[int, int]]:
    """Up to `count` pairs of test videos to align: two videos of one class first (one pair per class), then
    consecutive videos of any class."""
    pairs: list[tuple[int, int]] = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        if len(members) >= 2 and len(pairs) < count:
            pairs.append((int(members[0]), int(members[1])))
    for i in range(len(labels) - 1):
        if len(pairs) >= count:
            break
        if (i, i + 1) not in pairs:
            pairs.append((i, i + 1))
    return pairs


class Evaluation:
    """Features and analyses of every view of one checkpoint on one store split."""

    def __init__(self, cfg: EvalConfig) -> None:
        self.cfg = cfg
        self.dist = DistInfo(device=pick_device(cfg.device))
        d = cfg.data
        self.views = list(d.views) or list(cfg.checkpoints) or (
            checkpoint_views(cfg.checkpoint) if cfg.checkpoint else [])
        if not self.views:
            raise ConfigError("without a checkpoint, name the views to evaluate with data.views=[...]")
        self.store = Store(d.root)
        try:
            self.names = class_names(self.store)
            absent = [v for v in self.views if v not in self.store.view_meta]
            if absent:
                raise DataError(f"view(s) {', '.join(absent)} not in store {self.store.root} "
                                f"(it has: {', '.join(self.store.views)})")
            records = [r for r in self.store.manifest.records if r.label >= 0]
            self.train_ids, self.test_ids = split_ids(records, d.split, d.train_subset, d.test_subset, d.holdout,
                                                      cfg.seed)
            by_id = {r.id: r for r in records}
            self.train_labels = np.array([by_id[i].label for i in self.train_ids])
            self.test_labels = np.array([by_id[i].label for i in self.test_ids])
            self.models = {v: self._model(v) for v in self.views}   # every checkpoint checked before any work
            self.clips = {v: resolve_clips(downstream(m).retrieval, d.clips_per_video, d.clip_placement,
                                           "data.clips_per_video") for v, m in self.models.items()}
        except Exception:
            self.store.close()
            raise
        self.figures: dict[str, list[Path]] = {v: [] for v in self.views}
        # With fewer classes than the paper's k + 1, k and the threshold shrink in proportion (5 of 4 -> k of k).
        present = len(set(self.test_labels.tolist()))
        self.neighbour_k = max(1, min(cfg.analysis.nearest_classes, present - 1))
        self.consistency_min = math.ceil(cfg.analysis.consistency_min * self.neighbour_k / cfg.analysis.nearest_classes)
        self.results: dict[str, Any] = {}
        self.feature_info: dict[str, dict[str, Any]] = {}

    def _model(self, view: str) -> Encoder:
        """The encoder of `view`, rebuilt by the method that wrote its checkpoint (random without one)."""
        m, meta = self.cfg.model, self.store.view_meta[view]
        request = EncoderRequest(view, int(meta["channels"]), depth=m.depth, width=m.width,
                                 num_blocks=self.cfg.data.num_blocks)
        return load_encoder(self.cfg.checkpoint_for(view), request).to(self.dist.device)

    def _augment(self, view: str) -> ViewAugment:
        meta = self.store.view_meta[view]
        size = self.cfg.model.sizes.get(view, int(meta["size"]))
        return ViewAugment(view_kind(meta), size, train=False,
                           normalise=downstream(self.models[view]).normalise).to(self.dist.device)

    def _clips(self, view: str, ids: list[str]) -> DenseClips:
        d = self.cfg.data
        clips = self.clips[view]
        return DenseClips(d.root, [view], video_ids=ids, num_blocks=d.num_blocks, block_frames=d.block_frames,
                          short=d.short_videos, crop_fraction=d.crop_fraction, seed=self.cfg.seed,
                          overlap=d.overlap, max_windows=clips.count, placement=clips.placement)

    def features(self, view: str) -> tuple[np.ndarray, np.ndarray]:
        """(gallery = training videos, queries = test videos) features of one view."""
        d, model, aug = self.cfg.data, self.models[view], self._augment(view)
        out, per_video = [], []
        for what, ids in (("train", self.train_ids), ("test", self.test_ids)):
            clips = self._clips(view, ids)
            per_video += np.bincount([v for v, _ in clips.items], minlength=len(ids)).tolist()
            out.append(video_features(model, clips, aug, view, self.dist, d.batch_size, d.workers,
                                      self.cfg.progress, desc=f"{view} {what} features", loader_kind=d.loader))
        self.feature_info[view] = {"dim": int(out[0].shape[1]), "placement": self.clips[view].placement,
                                   "clips_per_video": sorted(set(per_video))}
        return out[0], out[1]

    def _save_features(self, view: str, gallery: np.ndarray, queries: np.ndarray) -> None:
        """<run>/<view>/features.npz: the video features, ids and labels of the gallery and the queries."""
        path = self.cfg.run_dir / view / "features.npz"
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, gallery=gallery, gallery_ids=np.array(self.train_ids), gallery_labels=self.train_labels,
                 queries=queries, query_ids=np.array(self.test_ids), query_labels=self.test_labels)

    def analyse_view(self, view: str, gallery: np.ndarray, queries: np.ndarray) -> np.ndarray:
        """Retrieval, class neighbours and every figure of one view; returns its nearest classes (C, k)."""
        a, run_dir = self.cfg.analysis, self.cfg.run_dir
        recall = recall_at_k(queries, self.test_labels, gallery, self.train_labels, a.recall_ks)
        sim = class_similarity(queries, self.test_labels, len(self.names))
        neighbours = nearest_classes(sim, self.neighbour_k)
        same, other = pair_cosines(queries, self.test_labels)
        self.results[view] = {
            "recall": {str(k): v for k, v in recall.items()},
            "nearest_classes": {self.names[c]: [self.names[j] for j in row if j >= 0]
                                for c, row in enumerate(neighbours) if c in set(self.test_labels.tolist())},
            "cosine_same_class_mean": float(same.mean()) if len(same) else None,
            "cosine_other_class_mean": float(other.mean()) if len(other) else None,
            "spread": feature_spread(np.concatenate([gallery, queries])),
        }
        figs = self.figures[view]
        figs.append(plot_class_similarity(sim, neighbours, self.names, run_dir / view / "class_similarity.png",
                                          f"class similarity of test videos, {view}"))
        figs.append(plot_tsne(queries, self.test_labels, self.names, run_dir / view / "tsne.png",
                              f"t-SNE of test videos, {view}", seed=self.cfg.seed, max_classes=a.tsne_classes))
        figs.append(plot_cosine_histograms(same, other, run_dir / view / "cosine_histograms.png",
                                           f"cosine similarity of test video pairs, {view}"))
        if a.strip_queries:
            figs.append(self._strips(view, gallery, queries))
        for n, (i, j) in enumerate(alignment_pairs(self.test_labels, a.alignment_pairs)):
            figs.append(self._alignment(view, i, j, n))
        return neighbours

    def _strips(self, view: str, gallery: np.ndarray, queries: np.ndarray) -> Path:
        a = self.cfg.analysis
        idx, sims = nearest_neighbours(queries, gallery, a.strip_k)
        shown = np.linspace(0, len(queries) - 1, min(a.strip_queries, len(queries))).round().astype(int)
        rows = []
        for q in dict.fromkeys(shown.tolist()):
            neighbours = [(display_frame(self.store, self.train_ids[g], view), self.train_ids[g], float(s),
                           bool(self.train_labels[g] == self.test_labels[q])) for g, s in zip(idx[q], sims[q])]
            rows.append((display_frame(self.store, self.test_ids[q], view), self.test_ids[q], neighbours))
        return plot_neighbour_strips(rows, self.cfg.run_dir / view / "neighbours.png",
                                     f"nearest training videos of test videos, {view} (green: same class)")

    def _alignment(self, view: str, i: int, j: int, n: int) -> Path:
        d, a = self.cfg.data, self.cfg.analysis
        clips = MultiViewClips(d.root, [view], train=False, video_ids=[self.test_ids[i], self.test_ids[j]],
                               num_blocks=a.alignment_blocks, block_frames=d.block_frames, short="spread",
                               crop_fraction=d.crop_fraction, seed=self.cfg.seed)
        blocks = block_features(self.models[view], clips, self._augment(view), view, self.dist, [0, 1])
        sim = soft_alignment(blocks[0], blocks[1])
        self.results[view].setdefault("alignment", []).append(
            {"videos": [self.test_ids[i], self.test_ids[j]], "diagonal_mean": float(np.mean(np.diag(sim)))})
        return plot_alignment(sim, self.cfg.run_dir / view / f"alignment_{n + 1}.png",
                              f"soft alignment, {view}", xlabel=f"{self.test_ids[j]} block",
                              ylabel=f"{self.test_ids[i]} block", sigma=a.alignment_sigma)

    def run(self) -> Path:
        a = self.cfg.analysis
        feats: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        neighbours: dict[str, np.ndarray] = {}
        for view in self.views:
            feats[view] = self.features(view)
            self._save_features(view, *feats[view])
            neighbours[view] = self.analyse_view(view, *feats[view])
        if len(self.views) > 1:
            joint = [l2_normalise_rows(np.concatenate([feats[v][k] for v in self.views], axis=1)) for k in (0, 1)]
            recall = recall_at_k(joint[1], self.test_labels, joint[0], self.train_labels, a.recall_ks)
            self.results[ALL_VIEWS] = {"recall": {str(k): v for k, v in recall.items()}}
            count, shared = consistency(neighbours, self.consistency_min)
            present = sorted(set(self.test_labels.tolist()))
            self.results["consistency"] = {
                "count": count, "classes": len(present), "min_shared": self.consistency_min, "k": self.neighbour_k,
                "informative": consistency_informative(self.neighbour_k, len(present)),
                "shared_per_class": {self.names[c]: int(shared[c]) for c in present}}
        return self.report()

    def report(self) -> Path:
        cfg, a = self.cfg, self.cfg.analysis
        chance = chance_recall_at_k(self.test_labels, self.train_labels, a.recall_ks)
        metrics = {"checkpoints": {v: cfg.checkpoint_for(v) or "random initialisation" for v in self.views},
                   "store": cfg.data.root,
                   "split": cfg.data.split or "holdout", "queries": len(self.test_ids), "gallery": len(self.train_ids),
                   "classes": self.names, "views": self.views, "features": self.feature_info, "results": self.results,
                   "recall_chance": {str(k): p for k, p in chance.items()},
                   "recall_by_construction": by_construction(chance)}
        names = self.views + ([ALL_VIEWS] if ALL_VIEWS in self.results else [])
        rows = recall_table({n: {k: self.results[n]["recall"][str(k)] for k in a.recall_ks} for n in names}, chance)
        split = f"split {cfg.data.split}" if cfg.data.split is not None else f"a stratified {cfg.data.holdout:g} hold-out"
        sections = [
            Section("Setup", "Checkpoints: " + ", ".join(f"{v} `{c}`" for v, c in metrics["checkpoints"].items())
                    + f"; store `{cfg.data.root}`, {split}: {len(self.test_ids)} test videos query "
                      f"{len(self.train_ids)} training videos. {self._feature_text()}; '{ALL_VIEWS}' concatenates "
                      f"the views' features. " + missing_classes_note(self.names, self.test_labels, self.train_labels)),
            Section("Nearest-neighbour retrieval", "R@k: the fraction of test videos with a training video of "
                    "their class among their k most similar (cosine); chance: the R@k of a random ranking. "
                    f"'{NOT_INFORMATIVE}': every test video has fewer than k training videos of other classes, "
                    "so R@k is 100% for any features.", table=rows)]
        if "consistency" in self.results:
            c = self.results["consistency"]
            verdict = "" if c["informative"] else (
                f"{NOT_INFORMATIVE[0].upper()}{NOT_INFORMATIVE[1:]}: with k = {c['k']} nearest classes of "
                f"{c['classes']}, every class's list holds all the other classes in every view, so the count "
                f"below is {c['classes']} of {c['classes']} for any features. ")
            sections.append(Section(
                "Inter-class relationships", verdict + f"**{c['count']} of {c['classes']} classes** keep at least "
                f"{c['min_shared']} of their {c['k']} nearest classes (mean cosine similarity of test videos) in "
                f"every view (CoCon reports 41 vs 10 for CPC among UCF101's 101 classes, 4 of 5)"
                + (f"; k and the threshold are scaled from {a.consistency_min} of {a.nearest_classes} because the test "
                   f"videos hold only {c['classes']} classes." if self.neighbour_k < a.nearest_classes else "."),
                table=[["class"] + self.views + ["shared"]] + [
                    [name] + [", ".join(self.results[v]["nearest_classes"].get(name, [])) for v in self.views]
                    + [str(shared)] for name, shared in list(c["shared_per_class"].items())[:30]]))
        for view in self.views:
            r = self.results[view]
            text = (f"Mean cosine similarity of test video pairs: same class "
                    f"{_fmt(r['cosine_same_class_mean'])}, other classes {_fmt(r['cosine_other_class_mean'])}. "
                    f"Spread of all videos' features (collapse: 0): per-dimension std x sqrt(d) "
                    f"{_fmt(r['spread']['std'])} (about 1: spread evenly), effective rank "
                    f"{r['spread']['effective_rank']:.1f} of {self.feature_info[view]['dim']}.")
            sections.append(Section(f"View {view}", text, figures=self.figures[view]))
        return write_report(cfg.run_dir, f"Evaluation: {cfg.name}", metrics, sections)

    def _feature_text(self) -> str:
        """How each view's video feature is made, in the words its method gives (one sentence when all agree)."""
        d, texts = self.cfg.data, {}
        for v in self.views:
            clips = describe_clips(self.clips[v].count, self.clips[v].placement, d.num_blocks, d.block_frames,
                                   d.overlap)
            texts[v] = f"{downstream(self.models[v]).feature}, averaged over {clips}, L2-normalised"
        if len(set(texts.values())) == 1:
            return f"A video's feature is {next(iter(texts.values()))}"
        return "A video's feature is, " + "; ".join(f"for {v}, {t}" for v, t in texts.items())

    def close(self) -> None:
        self.store.close()


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def build_parser() -> argparse.ArgumentParser:
    return command_parser("python -m train.evaluate", __doc__,
                          "Overrides are dotted keys, e.g. checkpoint=runs/x/cocon/checkpoint.pth data.split=1 "
                          "analysis.tsne_classes=21 name=my_eval. Exit status: 0 done, 2 a usage error.")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(args.config, args.overrides, EvalConfig, run)


def run(cfg: EvalConfig) -> int:
    """Evaluate every view and write the report."""
    evaluation = Evaluation(cfg)
    try:
        report = evaluation.run()
    finally:
        evaluation.close()
    print(f"report: {report}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
