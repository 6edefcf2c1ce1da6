"""One fine-tuning unit: one view, one split, one label fraction. Trains a VideoClassifier (end to end, or
as a linear probe), checkpoints every epoch (atomic, with RNG states, resumable), then tests densely:
every half-overlapping window of every test video, softmax per window, mean per video."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from .config import save_config
from .data import DenseClips, MultiViewClips, ViewAugment
from .distributed import DistInfo, any_rank, gather_objects, mean_over_ranks, wrap_for_ranks
from .evaluation.metrics import confusion_matrix, per_class_accuracy, topk_accuracy, video_probabilities
from .finetune_config import FinetuneConfig
from .loop import augment_generator, epoch_loader, load_training_state, optimizer_step, save_training_state
from .models import VideoClassifier
from .precise_bn import recalibrate_batchnorm
from .pretrained import load_view_model
from .trainer import Diverged, TrainingError, view_kind

CHECKPOINT = "checkpoint.pth"
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
                    loader_kind: str = "slots") -> tuple[np.ndarray, np.ndarray]:
    """Logits (M, C) of every window of `dataset` and the video each belongs to (M,), in dataset order; each
    rank scores its share and every rank gets the whole result."""
    model.eval()
    loader = epoch_loader(dataset, dist, batch_size, workers, train=False, seed=0, epoch=0, loader=loader_kind)
    index, logits = [], []
    with torch.no_grad():
        for batch in tqdm(loader, desc="test windows", disable=not (progress and dist.is_main), leave=False,
                          file=sys.stderr, dynamic_ncols=True):
            x = augment(batch[view].to(dist.device, non_blocking=True), dataset.num_blocks)
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


class FinetuneRunner:
    """Trains and tests one Unit, from scratch or from its checkpoint."""

    def __init__(self, cfg: FinetuneConfig, unit: Unit, dist: DistInfo, num_classes: int, resume: bool) -> None:
        self.cfg, self.unit, self.dist, self.num_classes = cfg, unit, dist, num_classes
        self.device = dist.device
        self.ckpt_path = unit.dir / CHECKPOINT
        d = cfg.data
        common = dict(num_blocks=d.num_blocks, block_frames=d.block_frames, short=d.short_videos,
                      crop_fraction=d.crop_fraction, seed=cfg.seed)
        self.train_set = MultiViewClips(d.root, [unit.view], train=True, video_ids=unit.train_ids, **common)
        self.test_set = DenseClips(d.root, [unit.view], video_ids=unit.test_ids, overlap=d.test_overlap, **common)
        if len(self.train_set) < d.batch_size * dist.world_size:
            raise TrainingError(f"{unit.dir.name}: the {len(self.train_set)} training videos of {unit.view} do not "
                                f"fill one batch of {d.batch_size} x {dist.world_size} process(es): lower "
                                f"data.batch_size")
        if d.batch_size < 2 and not (dist.distributed and dist.device.type == "cuda"):
            raise TrainingError("data.batch_size must be at least 2 per process: the classifier's BatchNorm needs "
                                "two clips to normalise (SyncBatchNorm on several GPUs excepted)")
        meta = self.train_set.store.view_meta[unit.view]
        kind, size = view_kind(meta), cfg.model.sizes.get(unit.view, int(meta["size"]))
        self.augment = {split: ViewAugment(kind, size, train=split == "train", grey_p=cfg.augment.grey_p,
                                           jitter=tuple(cfg.augment.jitter)).to(self.device)
                        for split in ("train", "test")}
        m = cfg.model
        self.model = VideoClassifier(int(meta["channels"]), num_classes, depth=m.depth, width=m.width,
                                     num_blocks=d.num_blocks, dropout=m.dropout, gru_dropout=m.gru_dropout,
                                     frozen=m.linear_probe)
        self.init = cfg.init_for(unit.view)
        if self.init:
            load_view_model(self.model.backbone, self.init, unit.view, m.depth, m.width, self.model.in_channels)
        self.model.to(self.device)
        self.model, self.net = wrap_for_ranks(self.model, dist, sync_bn=not m.linear_probe)
        o = cfg.optim
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(params, lr=o.lr, weight_decay=o.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.MultiStepLR(self.optimizer, milestones=list(o.milestones),
                                                              gamma=o.gamma)
        self.amp = bool(o.amp and self.device.type == "cuda")
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp)
        self.epoch = self.step = 0
        if self.ckpt_path.exists():
            if not resume:
                raise TrainingError(f"{self.ckpt_path} exists: pass --resume to continue it, or set name=... "
                                    f"for a new run")
            state = load_training_state(self.ckpt_path, dist, self._parts())
            self.epoch, self.step = state["epoch"], state["step"]
        self.writer: Any = None

    @property
    def finished(self) -> bool:
        return self.epoch >= self.cfg.epochs and (self.unit.dir / PREDICTIONS).exists()

    def _parts(self) -> dict[str, Any]:
        return {"model": self.model, "optimizer": self.optimizer, "scheduler": self.scheduler, "scaler": self.scaler}

    def _save(self) -> None:
        save_training_state(self.ckpt_path, self.dist, self._parts(), epoch=self.epoch, step=self.step,
                            view=self.unit.view, num_classes=self.num_classes, config=self.cfg.to_dict(),
                            init=self.init)

    def train_epoch(self) -> dict[str, float]:
        self.net.train()
        d = self.cfg.data
        gen = augment_generator(self.dist, self.cfg.seed, self.epoch, "train")
        steps = d.repeats * (len(self.train_set) // (d.batch_size * self.dist.world_size))
        batches = (b for r in range(d.repeats) for b in epoch_loader(
            self.train_set, self.dist, d.batch_size, d.workers, True, self.cfg.seed, self.epoch * d.repeats + r,
            d.loader))
        sums = {"loss": 0.0, "top1": 0.0}
        n = clips = 0
        started = time.perf_counter()
        bar = tqdm(batches, total=steps, desc=f"{self.unit.dir.relative_to(self.cfg.run_dir)} epoch "
                   f"{self.epoch + 1}/{self.cfg.epochs}", disable=not (self.cfg.progress and self.dist.is_main),
                   leave=False, dynamic_ncols=True, file=sys.stderr)
        for batch in bar:
            x = self.augment["train"](batch[self.unit.view].to(self.device, non_blocking=True), d.num_blocks, gen)
            y = batch["label"].to(self.device)
            with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.amp):
                logits = self.net(x)
            loss = F.cross_entropy(logits.float(), y)
            if any_rank(not torch.isfinite(loss).item(), self.device):
                last = self.ckpt_path if self.ckpt_path.exists() else "none yet (first epoch)"
                raise Diverged(f"the loss became {loss.item()} fine-tuning {self.unit.dir}, epoch {self.epoch + 1}; "
                               f"last good checkpoint: {last}")
            optimizer_step(loss, self.optimizer, self.scaler, self.model.parameters(), self.cfg.optim.grad_clip)
            self.step += 1
            n += 1
            clips += len(y) * self.dist.world_size
            values = mean_over_ranks({"loss": loss.item(),
                                      "top1": (logits.argmax(1) == y).float().mean().item()}, self.device)
            for k, v in values.items():
                sums[k] += v
            bar.set_postfix(loss=f"{values['loss']:.3f}")
            if self.writer is not None and self.step % self.cfg.log_every == 0:
                for k, v in values.items():
                    self.writer.add_scalar(f"train/{k}", v, self.step)
        bar.close()
        out = {k: v / max(n, 1) for k, v in sums.items()}
        out["clips_per_s"] = clips / max(time.perf_counter() - started, 1e-9)
        return out

    def recalibrate(self) -> None:
        """Precise BatchNorm statistics of the final weights from training batches; saved with the model."""
        d = self.cfg.data
        gen = augment_generator(self.dist, self.cfg.seed, self.cfg.epochs, "train")
        loader = epoch_loader(self.train_set, self.dist, d.batch_size, d.workers, True, self.cfg.seed,
                              self.cfg.epochs * d.repeats, d.loader)
        batches = (b for _ in range(-(-self.cfg.model.precise_bn_batches // max(len(loader), 1))) for b in loader)

        def forward(batch: dict[str, Any]) -> None:
            self.model(self.augment["train"](batch[self.unit.view].to(self.device, non_blocking=True),
                                             d.num_blocks, gen))

        if recalibrate_batchnorm(self.model, batches, forward, self.cfg.model.precise_bn_batches):
            self._save()

    def test(self) -> dict[str, Any]:
        """Dense test of the final model: per-video probabilities saved to test_probs.npz; metrics returned."""
        d = self.cfg.data
        logits, videos = predict_windows(self.net, self.test_set, self.augment["test"], self.unit.view, self.dist,
                                         d.test_batch_size or d.batch_size, d.workers, self.amp, self.cfg.progress, d.loader)
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

    def run(self) -> dict[str, Any]:
        """Train to the last epoch, then test; returns the unit's test metrics."""
        if self.dist.is_main:
            from torch.utils.tensorboard import SummaryWriter
            self.unit.dir.mkdir(parents=True, exist_ok=True)
            save_config(self.cfg, self.unit.dir / "config.yaml")
            (self.unit.dir / "videos.json").write_text(json.dumps(
                {"view": self.unit.view, "split": self.unit.split, "label_fraction": self.unit.fraction,
                 "train": self.unit.train_ids, "test": self.unit.test_ids}, indent=1) + "\n")
            self.writer = SummaryWriter(str(self.unit.dir / "tb"), purge_step=self.step + 1 if self.step else None)
        try:
            while self.epoch < self.cfg.epochs:
                train = self.train_epoch()
                self.scheduler.step()
                self.epoch += 1
                if self.writer is not None:
                    for k, v in train.items():
                        self.writer.add_scalar(f"epoch_train/{k}", v, self.epoch)
                    self.writer.add_scalar("epoch_train/lr", self.optimizer.param_groups[0]["lr"], self.epoch)
                self._save()
                if self.dist.is_main:
                    with open(self.unit.dir / "metrics.jsonl", "a") as fh:
                        fh.write(json.dumps({"epoch": self.epoch, "lr": self.optimizer.param_groups[0]["lr"],
                                             "train": train}) + "\n")
            if not (self.unit.dir / PREDICTIONS).exists():
                self.recalibrate()
            metrics = self.test()
            if self.writer is not None:
                self.writer.add_scalar("test/top1", metrics["top1"], self.epoch)
                self.writer.add_scalar("test/top5", metrics["top5"], self.epoch)
            return metrics
        finally:
            if self.writer is not None:
                self.writer.close()


def load_predictions(unit_dir: Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(video ids, labels, per-video probabilities) a finished unit saved."""
    with np.load(unit_dir / PREDICTIONS) as f:
        return [str(i) for i in f["ids"]], f["labels"], f["probs"]

