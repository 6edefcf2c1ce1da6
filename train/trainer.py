"""One training stage (CPC on one view, or CoCon on all views): data, models, optimiser, loop,
validation, reduce-on-plateau, atomic checkpoints with RNG states, TensorBoard, progress bar.

Exactness of `--resume`: every random draw is either seeded by (seed, epoch, index/step) — clip
windows, crops, flips, augmentation — or comes from the global RNGs, whose states the checkpoint
holds; so a resumed run replays the remaining epochs exactly as an uninterrupted run would.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from .config import Config, save_config
from .data import MultiViewClips, ViewAugment
from .distributed import DistInfo, any_rank, gather_with_grad, mean_over_ranks, wrap_for_ranks
from .loop import augment_generator, epoch_loader, load_training_state, optimizer_step, save_training_state
from .losses import cocon_loss, cpc_loss
from .models import CPCModel
from .pretrained import load_view_model

CHECKPOINT = "checkpoint.pth"


class TrainingError(Exception):
    """A run cannot go on (no data for a batch, a missing checkpoint to start from): one line, exit 2."""


class Diverged(Exception):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass
class Stage:
    """What one stage trains: its folder name, its views, where each view starts from, and for how long."""

    name: str
    views: list[str]
    epochs: int
    cooperative: bool
    init_from: dict[str, Path] = field(default_factory=dict)


class MultiViewModel(nn.Module):
    """One CPCModel per view; forward runs each on its own input."""

    def __init__(self, models: dict[str, CPCModel]) -> None:
        super().__init__()
        self.views = nn.ModuleDict(models)

    def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, Any]:
        return {name: self.views[name](x) for name, x in inputs.items()}


def view_kind(store_meta: dict[str, Any]) -> str:
    return str(store_meta.get("kind", "rgb"))


def build_model(cfg: Config, view: str, channels: int) -> CPCModel:
    """The CPC model of one view, as the config says."""
    m = cfg.model
    return CPCModel(in_channels=channels, depth=m.depth, width=m.width, num_blocks=cfg.data.num_blocks,
                    pred_steps=m.pred_steps, dropout=m.dropout)


def compute_losses(cfg: Config, stage: Stage, outs: dict[str, Any], models: dict[str, CPCModel], offset: int
                   ) -> tuple[torch.Tensor, dict[str, float], dict[str, float]]:
    """L_cpc per view, plus L_sim and L_sync over view pairs in a cooperative stage."""
    cpc_terms: dict[str, torch.Tensor] = {}
    stats: dict[str, float] = {}
    for view, out in outs.items():
        loss, s = cpc_loss(out.pred.float(), out.target.float(), temperature=cfg.loss.temperature,
                           gather=gather_with_grad, offset=offset)
        cpc_terms[view] = loss
        stats[f"top1/{view}"] = float(s["top1"])
    if stage.cooperative and len(outs) > 1:
        pooled = {v: models[v].pool_blocks(out.features.float()) for v, out in outs.items()}
        total, terms, pair_stats = cocon_loss(
            cpc_terms, pooled, lambda_sim=cfg.loss.lambda_sim, lambda_sync=cfg.loss.lambda_sync, mu=cfg.loss.mu,
            penalty=cfg.loss.sync_penalty, granularity=cfg.loss.granularity, gather=gather_with_grad, offset=offset)
        stats.update({k: float(v) for k, v in pair_stats.items()})
        values = {k: float(v) for k, v in terms.items()}
    else:
        total = sum(cpc_terms.values())
        values = {f"cpc/{v}": float(t.detach()) for v, t in cpc_terms.items()}
    values["total"] = float(total.detach())
    return total, values, stats


def build_datasets(cfg: Config, views: list[str]) -> tuple[MultiViewClips, MultiViewClips]:
    """The training and validation clip sets of the config's splits, over `views`."""
    d = cfg.data
    common = dict(num_blocks=d.num_blocks, block_frames=d.block_frames, short=d.short_videos,
                  crop_fraction=d.crop_fraction, seed=cfg.seed)
    train = MultiViewClips(d.root, views, d.train_split, d.train_subset if d.train_split is not None else None,
                           train=True, **common)
    val = MultiViewClips(d.root, views, d.val_split, d.val_subset if d.val_split is not None else None,
                         train=False, fraction=d.val_fraction, **common)
    return train, val


class StageRunner:
    """Trains one stage from scratch or from its checkpoint."""

    def __init__(self, cfg: Config, stage: Stage, dist: DistInfo, resume: bool) -> None:
        self.cfg, self.stage, self.dist = cfg, stage, dist
        self.dir = cfg.run_dir / stage.name
        self.ckpt_path = self.dir / CHECKPOINT
        self.device = dist.device
        d = cfg.data
        self.train_set, self.val_set = build_datasets(cfg, stage.views)
        per_step = d.batch_size * dist.world_size
        if len(self.train_set) < per_step:
            raise TrainingError(f"the training videos ({len(self.train_set)}) do not fill one batch of "
                                f"{d.batch_size} x {dist.world_size} process(es): lower data.batch_size")
        meta = self.train_set.store.view_meta
        self.augment = {}
        models = {}
        for view in stage.views:
            kind = view_kind(meta[view])
            size = cfg.model.sizes.get(view, int(meta[view]["size"]))   # default: the stored short side
            self.augment[view] = {
                split: ViewAugment(kind, size, train=split == "train", grey_p=cfg.augment.grey_p,
                                   jitter=tuple(cfg.augment.jitter)).to(self.device)
                for split in ("train", "val")}
            models[view] = build_model(cfg, view, int(meta[view]["channels"]))
        self.model = MultiViewModel(models).to(self.device)
        for view, path in stage.init_from.items():
            self._load_view_weights(view, path)
        self.model, self.net = wrap_for_ranks(self.model, dist)
        o = cfg.optim
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=o.lr, weight_decay=o.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            self.optimizer, mode="min", factor=o.plateau_factor, patience=o.plateau_patience, min_lr=o.min_lr)
        self.amp = bool(o.amp and self.device.type == "cuda")
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp)
        self.epoch = 0
        self.step = 0
        self.best_val = math.inf
        if self.ckpt_path.exists():
            if not resume:
                raise TrainingError(f"{self.ckpt_path} exists: pass --resume to continue it, or set name=... "
                                    f"for a new run")
            self._restore()
        self.writer = None

    # -- checkpoints ---------------------------------------------------------------------------
    def _load_view_weights(self, view: str, path: Path) -> None:
        if not path.is_file():
            raise TrainingError(f"stage {self.stage.name} starts {view} from {path}, which does not exist: "
                                f"run stage cpc first (schedule.stage=cpc or both)")
        model = self.model.views[view]
        load_view_model(model, path, view, self.cfg.model.depth, self.cfg.model.width, model.in_channels)

    def _parts(self) -> dict[str, Any]:
        return {"model": self.model, "optimizer": self.optimizer, "scheduler": self.scheduler, "scaler": self.scaler}

    def _restore(self) -> None:
        state = load_training_state(self.ckpt_path, self.dist, self._parts())
        self.epoch, self.step, self.best_val = state["epoch"], state["step"], state["best_val"]

    def _save(self) -> None:
        save_training_state(self.ckpt_path, self.dist, self._parts(), epoch=self.epoch, step=self.step,
                            best_val=self.best_val, views=self.stage.views, config=self.cfg.to_dict(),
                            view_channels={v: self.model.views[v].in_channels for v in self.stage.views})

    # -- loop ----------------------------------------------------------------------------------
    def _loader(self, dataset: MultiViewClips, train: bool, epoch: int) -> Iterable[dict[str, Any]]:
        d = self.cfg.data
        return epoch_loader(dataset, self.dist, d.batch_size, d.workers, train, self.cfg.seed, epoch, d.loader)

    def _inputs(self, batch: dict[str, Any], split: str, generator: torch.Generator) -> dict[str, torch.Tensor]:
        return {v: self.augment[v][split](batch[v].to(self.device, non_blocking=True), self.cfg.data.num_blocks,
                                          generator)
                for v in self.stage.views}

    def _forward(self, batch: dict[str, Any], split: str, generator: torch.Generator
                 ) -> tuple[torch.Tensor, dict[str, float], dict[str, float]]:
        inputs = self._inputs(batch, split, generator)
        with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.amp):
            outs = self.net(inputs)
        offset = self.dist.rank * len(batch["index"])
        return compute_losses(self.cfg, self.stage, outs, dict(self.model.views.items()), offset)

    def _generator(self, epoch: int, split: str) -> torch.Generator:
        return augment_generator(self.dist, self.cfg.seed, epoch, split)

    def _train_batches(self) -> Any:
        """This epoch's batches: `data.repeats` passes, each with its own data epoch (new windows, crops)."""
        repeats = self.cfg.data.repeats
        for r in range(repeats):
            yield from self._loader(self.train_set, True, self.epoch * repeats + r)

    def train_epoch(self) -> dict[str, float]:
        self.net.train()
        repeats = self.cfg.data.repeats
        steps = repeats * (len(self.train_set) // (self.cfg.data.batch_size * self.dist.world_size))
        loader = self._train_batches()
        generator = self._generator(self.epoch, "train")
        sums: dict[str, float] = {}
        n = 0
        clips = 0
        started = time.perf_counter()
        bar = tqdm(loader, total=steps, desc=f"{self.stage.name} epoch {self.epoch + 1}/{self.stage.epochs}",
                   disable=not (self.cfg.progress and self.dist.is_main), leave=False, dynamic_ncols=True,
                   file=sys.stderr)
        for batch in bar:
            total, values, stats = self._forward(batch, "train", generator)
            if any_rank(not torch.isfinite(total).item(), self.device):
                bad = {k: v for k, v in values.items() if not math.isfinite(v)}
                last = self.ckpt_path if self.ckpt_path.exists() else "none yet (first epoch)"
                raise Diverged(f"the loss became {values['total']} in stage {self.stage.name}, epoch "
                               f"{self.epoch + 1}, step {self.step + 1} ({bad or 'on another rank'}); "
                               f"last good checkpoint: {last}")
            optimizer_step(total, self.optimizer, self.scaler, self.model.parameters(), self.cfg.optim.grad_clip)
            self.step += 1
            n += 1
            clips += len(batch["index"]) * self.dist.world_size
            logged = mean_over_ranks({**values, **stats}, self.device)
            for k, v in logged.items():
                sums[k] = sums.get(k, 0.0) + v
            rate = clips / max(time.perf_counter() - started, 1e-9)
            bar.set_postfix(loss=f"{logged['total']:.3f}", clips_s=f"{rate:.1f}")
            if self.writer is not None and self.step % self.cfg.log_every == 0:
                self._log("train", logged, self.step)
                self.writer.add_scalar("train/clips_per_s", rate, self.step)
                self.writer.add_scalar("train/lr", self.optimizer.param_groups[0]["lr"], self.step)
        bar.close()
        out = {k: v / max(n, 1) for k, v in sums.items()}
        out["clips_per_s"] = clips / max(time.perf_counter() - started, 1e-9)
        return out

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        self.net.eval()
        loader = self._loader(self.val_set, False, self.epoch)
        generator = self._generator(self.epoch, "val")
        sums: dict[str, float] = {}
        n = 0
        for batch in loader:
            _, values, stats = self._forward(batch, "val", generator)
            for k, v in {**values, **stats}.items():
                sums[k] = sums.get(k, 0.0) + v
            n += 1
        return mean_over_ranks({k: v / max(n, 1) for k, v in sums.items()}, self.device)

    def _log(self, split: str, values: dict[str, float], step: int) -> None:
        for k, v in values.items():
            self.writer.add_scalar(f"{split}/{k}", v, step)

    def run(self) -> Path:
        """Train until the stage's last epoch; returns the checkpoint path."""
        if self.epoch >= self.stage.epochs:
            return self.ckpt_path
        if self.dist.is_main:
            from torch.utils.tensorboard import SummaryWriter
            self.dir.mkdir(parents=True, exist_ok=True)
            save_config(self.cfg, self.dir / "config.yaml")
            self.writer = SummaryWriter(str(self.dir / "tb"), purge_step=self.step + 1 if self.step else None)
        try:
            while self.epoch < self.stage.epochs:
                train = self.train_epoch()
                val = self.validate()
                self.scheduler.step(val["total"])
                self.epoch += 1
                self.best_val = min(self.best_val, val["total"])
                if self.writer is not None:
                    self._log("epoch_train", train, self.epoch)
                    self._log("val", val, self.epoch)
                    self.writer.add_scalar("epoch_train/lr", self.optimizer.param_groups[0]["lr"], self.epoch)
                    self.writer.flush()
                self._save()
                if self.dist.is_main:
                    line = {"epoch": self.epoch, "step": self.step, "lr": self.optimizer.param_groups[0]["lr"],
                            "train": train, "val": val}
                    with open(self.dir / "metrics.jsonl", "a") as fh:
                        fh.write(json.dumps(line) + "\n")
                    print(f"{self.stage.name} epoch {self.epoch}/{self.stage.epochs}: train loss "
                          f"{train['total']:.4f}, val loss {val['total']:.4f}, "
                          f"{train['clips_per_s']:.1f} clips/s", file=sys.stderr)
        finally:
            if self.writer is not None:
                self.writer.close()
        return self.ckpt_path
