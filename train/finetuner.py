"""One fine-tuning unit: one view, one split, one label fraction, as an engine job. Trains a VideoClassifier
over any method's encoder (end to end, or as a linear probe); the engine checkpoints every epoch (atomic,
with RNG states, resumable); then it tests the clips the encoder's method tests on (CoCon: every half-overlapping
window of every test video; TCLR: 10 clips with evenly spaced starts), softmax per clip, mean per video."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from .data import DenseClips, MultiViewClips, ViewAugment, arrange, view_kind
from .engine.batches import augment_generator, epoch_loader
from .engine.distributed import DistInfo, gather_objects
from .engine.errors import TrainingError
from .engine.job import Job, LossTerms
from .engine.runner import Runner
from .engine.schedules import Milestones
from .evaluation.metrics import confusion_matrix, per_class_accuracy, topk_accuracy, video_probabilities
from .finetune_config import FinetuneConfig
from .methods import Encoder, EncoderRequest, downstream, load_encoder, resolve_clips
from .models import VideoClassifier
from .precise_bn import recalibrate_batchnorm

PREDICTIONS = "test_probs.npz"


@dataclass
class Unit:
    """What one fine-tuning run trains: a view on one split's training videos (a fraction of their labels)."""

    view: str
    split: str                 # a dataset split name, or "holdout"
    fraction: float
    train_ids: list[str]
    test_ids: list[str]
    dir: Path


def fraction_tag(fraction: float) -> str:
    """0.1 -> 'labels10', 0.005 -> 'labels0.5', 1.0 -> 'labels100' (percent of the training labels)."""
    return f"labels{100 * fraction:g}"


def predict_windows(model: nn.Module, dataset: DenseClips, augment: ViewAugment, view: str, dist: DistInfo,
                    batch_size: int, workers: int, amp: bool, progress: bool = False,
                    loader_kind: str = "slots", layout: str = "blocks") -> tuple[np.ndarray, np.ndarray]:
    """Logits (M, C) of every window of `dataset` (laid out as `layout` for the model) and the video each
    belongs to (M,), in dataset order; each rank scores its share and every rank gets the whole result."""
    model.eval()
    loader = epoch_loader(dataset, dist, batch_size, workers, train=False, seed=0, epoch=0, loader=loader_kind)
    index, logits = [], []
    with torch.no_grad():
        for batch in tqdm(loader, desc="test windows", disable=not (progress and dist.is_main), leave=False,
                          file=sys.stderr, dynamic_ncols=True):
            x = arrange(augment(batch[view].to(dist.device, non_blocking=True)), layout, dataset.num_blocks)
            with torch.autocast(dist.device.type, dtype=torch.float16, enabled=amp):
                out = model(x)
            index.append(batch["index"].numpy().copy())  # batches may be views of reused memory
            logits.append(out.float().cpu().numpy())
    parts = gather_objects((np.concatenate(index), np.concatenate(logits)))
    idx = np.concatenate([p[0] for p in parts])
    out = np.concatenate([p[1] for p in parts])
    _, first = np.unique(idx, return_index=True)  # DistributedSampler pads with repeats
    order = idx[first]
    videos = np.array([dataset.items[i][0] for i in order])
    return out[first], videos


class FinetuneJob(Job):
    """The engine job of one Unit: a VideoClassifier over the encoder of the unit's view (from the checkpoint
    the config names, rebuilt by the method that wrote it, or randomly initialised), cross-entropy, Adam with
    lr milestones; after the last epoch precise BatchNorm statistics, then the test. The encoder decides (through
    its method's `Downstream`, the config may override) the test clips and the rgb normalisation, so the test
    set and the augmentation are made with the model."""

    def __init__(self, cfg: FinetuneConfig, unit: Unit, dist: DistInfo, num_classes: int) -> None:
        self.cfg, self.unit, self.dist, self.num_classes = cfg, unit, dist, num_classes
        self.device, self.dir, self.epochs = dist.device, unit.dir, cfg.epochs
        self.name = str(unit.dir.relative_to(cfg.run_dir))
        self.title = f"fine-tuning {unit.dir}"
        self.sync_bn = not cfg.model.linear_probe
        d = cfg.data
        self.train_set = MultiViewClips(d.root, [unit.view], train=True, video_ids=unit.train_ids, **self._common())
        self.val_set = None
        if d.batch_size < 2 and not (dist.distributed and dist.device.type == "cuda"):
            raise TrainingError("data.batch_size must be at least 2 per process: the classifier's BatchNorm needs "
                                "two clips to normalise (SyncBatchNorm on several GPUs excepted)")
        self.channels = int(self.train_set.store.view_meta[unit.view]["channels"])
        self.init = cfg.init_for(unit.view)
        self.layout = "blocks"
        self.augment: dict[str, ViewAugment] = {}
        self.test_set: DenseClips | None = None

    def _common(self) -> dict[str, Any]:
        d = self.cfg.data
        return dict(num_blocks=d.num_blocks, block_frames=d.block_frames, short=d.short_videos,
                    crop_fraction=d.crop_fraction, seed=self.cfg.seed)

    def build_model(self) -> VideoClassifier:
        m = self.cfg.model
        encoder = load_encoder(self.init, encoder_request(self.cfg, self.unit.view, self.channels))
        self.layout = encoder.input_layout
        self.prepare(encoder)
        return VideoClassifier(encoder, self.num_classes, dropout=m.dropout, frozen=m.linear_probe)

    def prepare(self, encoder: Encoder) -> None:
        """The test clips and the train/test augmentation the encoder's method asks for (config overrides)."""
        d, view = self.cfg.data, self.unit.view
        own = downstream(encoder)
        clips = resolve_clips(own.classification, d.test_clips, d.test_placement, "data.test_clips")
        self.test_set = DenseClips(d.root, [view], video_ids=self.unit.test_ids, overlap=d.test_overlap,
                                   max_windows=clips.count, placement=clips.placement, **self._common())
        meta = self.train_set.store.view_meta[view]
        kind, size = view_kind(meta), self.cfg.model.sizes.get(view, int(meta["size"]))
        self.augment = {split: ViewAugment(kind, size, train=split == "train", grey_p=self.cfg.augment.grey_p,
                                           jitter=tuple(self.cfg.augment.jitter), normalise=own.normalise
                                           ).to(self.device) for split in ("train", "test")}

    def clips(self, batch: dict[str, Any], split: str, generator: torch.Generator | None) -> torch.Tensor:
        """A batch's clips of the unit's view, augmented and laid out for the encoder."""
        frames = self.augment[split](batch[self.unit.view].to(self.device, non_blocking=True), generator)
        return arrange(frames, self.layout, self.cfg.data.num_blocks)

    def inputs(self, batch: dict[str, Any], split: str, generator: torch.Generator) -> torch.Tensor:
        return self.clips(batch, split, generator)

    def losses(self, outputs: torch.Tensor, batch: dict[str, Any], offset: int) -> LossTerms:
        y = batch["label"].to(self.device)
        return LossTerms(total=F.cross_entropy(outputs.float(), y),
                         stats={"top1": (outputs.argmax(1) == y).float().mean().item()})

    def schedule(self, optimizer: torch.optim.Optimizer) -> Milestones:
        return Milestones(optimizer, milestones=list(self.cfg.optim.milestones), gamma=self.cfg.optim.gamma)

    def checkpoint_extra(self, model: VideoClassifier) -> dict[str, Any]:
        return {"view": self.unit.view, "num_classes": self.num_classes, "config": self.cfg.to_dict(),
                "init": self.init}

    def finish(self, runner: Runner) -> dict[str, Any]:
        """Precise BatchNorm statistics (unless the unit was tested before), the dense test, its TensorBoard
        scalars; returns the unit's test metrics."""
        if not (self.unit.dir / PREDICTIONS).exists():
            self.recalibrate(runner)
        metrics = self.test(runner)
        if runner.writer is not None:
            runner.writer.add_scalar("test/top1", metrics["top1"], runner.epoch)
            runner.writer.add_scalar("test/top5", metrics["top5"], runner.epoch)
        return metrics

    def recalibrate(self, runner: Runner) -> None:
        """Precise BatchNorm statistics of the final weights from training batches; saved with the model."""
        d = self.cfg.data
        gen = augment_generator(self.dist, self.cfg.seed, self.cfg.epochs, "train")
        loader = epoch_loader(self.train_set, self.dist, d.batch_size, d.workers, True, self.cfg.seed,
                              self.cfg.epochs * d.repeats, d.loader)
        batches = (b for _ in range(-(-self.cfg.model.precise_bn_batches // max(len(loader), 1))) for b in loader)

        def forward(batch: dict[str, Any]) -> None:
            runner.model(self.clips(batch, "train", gen))

        if recalibrate_batchnorm(runner.model, batches, forward, self.cfg.model.precise_bn_batches):
            runner.save()

    def test(self, runner: Runner) -> dict[str, Any]:
        """Dense test of the final model: per-video probabilities saved to test_probs.npz; metrics returned."""
        d = self.cfg.data
        assert self.test_set is not None, "build_model makes the test set"
        logits, videos = predict_windows(runner.net, self.test_set, self.augment["test"], self.unit.view, self.dist,
                                         d.test_batch_size or d.batch_size, d.workers, runner.amp, self.cfg.progress,
                                         d.loader, self.layout)
        probs = video_probabilities(logits, videos, len(self.test_set.records))
        labels = np.array([r.label for r in self.test_set.records])
        acc = topk_accuracy(probs, labels, ks=(1, 5))
        conf = confusion_matrix(probs.argmax(1), labels, self.num_classes)
        metrics = {"top1": acc[1], "top5": acc[5], "videos": len(labels), "windows": len(logits),
                   "per_class_top1": per_class_accuracy(conf).tolist()}
        if self.dist.is_main:
            tmp = self.unit.dir / f".{PREDICTIONS}.tmp.npz"
            np.savez(tmp, ids=np.array(self.test_set.video_ids), labels=labels, probs=probs)
            tmp.replace(self.unit.dir / PREDICTIONS)
        return metrics

    def write_videos(self) -> None:
        """<unit>/videos.json: the unit's view, split, label fraction and video ids (rank 0)."""
        if self.dist.is_main:
            self.unit.dir.mkdir(parents=True, exist_ok=True)
            (self.unit.dir / "videos.json").write_text(json.dumps(
                {"view": self.unit.view, "split": self.unit.split, "label_fraction": self.unit.fraction,
                 "train": self.unit.train_ids, "test": self.unit.test_ids}, indent=1) + "\n")


def encoder_request(cfg: FinetuneConfig, view: str, channels: int) -> EncoderRequest:
    """The encoder a fine-tuning config asks for, for one view."""
    m = cfg.model
    return EncoderRequest(view, channels, depth=m.depth, width=m.width, num_blocks=cfg.data.num_blocks,
                          dropout=m.gru_dropout)


def unit_finished(runner: Runner) -> bool:
    """Every epoch trained and the test probabilities written."""
    return runner.done and (runner.job.dir / PREDICTIONS).exists()


def load_predictions(unit_dir: Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(video ids, labels, per-video probabilities) a finished unit saved."""
    with np.load(unit_dir / PREDICTIONS) as f:
        return [str(i) for i in f["ids"]], f["labels"], f["probs"]

