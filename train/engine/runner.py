"""The training engine: one Runner trains one Job (a method's stage, or a fine-tuning unit) from scratch or
from its checkpoint. It owns what every job shares: DDP wrapping, Adam and AMP, the epoch loop over
`data.repeats` passes, the NaN guard that keeps the last good checkpoint, the progress bar, TensorBoard and
metrics.jsonl, atomic checkpoints every epoch, and exact resume.

Exactness of `--resume`: every random draw is either seeded by (seed, epoch, index/step) — clip windows,
crops, flips, augmentation — or comes from the global RNGs, whose states the checkpoint holds; so a resumed
run replays the remaining epochs exactly as an uninterrupted run would.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from ..config import save_config
from .batches import augment_generator, epoch_loader
from .checkpoint import CHECKPOINT, load_training_state, save_training_state
from .distributed import DistInfo, any_rank, mean_over_ranks, wrap_for_ranks
from .errors import Diverged, TrainingError
from .job import Job, LossTerms


def optimizer_step(loss: torch.Tensor, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
                   params: Iterable[nn.Parameter], grad_clip: float) -> None:
    """One step: clear, backpropagate the (AMP-scaled) loss, clip the gradient norm when grad_clip > 0,
    step and update the scaler."""
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if grad_clip > 0:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(params, grad_clip)
    scaler.step(optimizer)
    scaler.update()


def _epoch_of(line: str) -> int | None:
    """The epoch of a metrics.jsonl line; None for a line cut by a kill."""
    try:
        return int(json.loads(line)["epoch"])
    except (ValueError, KeyError, TypeError):
        return None


class Runner:
    """Trains one Job: `run()` for whole epochs, or `step(batch)` / `evaluate(batch)` one batch at a time."""

    def __init__(self, job: Job, dist: DistInfo, resume: bool) -> None:
        self.job, self.dist, self.cfg = job, dist, job.cfg
        self.device = dist.device
        self.ckpt_path = job.dir / CHECKPOINT
        d = self.cfg.data
        if len(job.train_set) < d.batch_size * dist.world_size:
            raise TrainingError(f"{job.title}: the {len(job.train_set)} training clips do not fill one batch of "
                                f"{d.batch_size} x {dist.world_size} process(es): lower data.batch_size")
        self.model = job.build_model().to(self.device)
        self.model, self.net = wrap_for_ranks(self.model, dist, sync_bn=job.sync_bn)
        self.optimizer = job.optimizer(self.model)
        self.scheduler = job.schedule(self.optimizer)
        self.amp = bool(self.cfg.optim.amp and self.device.type == "cuda")
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp)
        self.epoch = 0
        self.steps = 0                       # optimiser steps so far ("step" in checkpoints and TensorBoard)
        self.best_val = math.inf
        self.writer: Any = None
        self._generators: dict[str, torch.Generator] = {}
        if self.ckpt_path.exists():
            if not resume:
                raise TrainingError(f"{self.ckpt_path} exists: pass --resume to continue it, or set name=... "
                                    f"for a new run")
            state = load_training_state(self.ckpt_path, dist, self._parts(),
                                        self.cfg.to_dict() if hasattr(self.cfg, "to_dict") else None)
            self.epoch, self.steps = state["epoch"], state["step"]
            self.best_val = state.get("best_val", math.inf)

    @property
    def done(self) -> bool:
        """Every epoch of the job is trained."""
        return self.epoch >= self.job.epochs

    # -- checkpoints ---------------------------------------------------------------------------
    def _parts(self) -> dict[str, Any]:
        return {"model": self.model, "optimizer": self.optimizer, "scheduler": self.scheduler, "scaler": self.scaler}

    def save(self) -> None:
        """Checkpoint the training state (a collective: every rank calls it)."""
        save_training_state(self.ckpt_path, self.dist, self._parts(), epoch=self.epoch, step=self.steps,
                            best_val=self.best_val, **self.job.checkpoint_extra(self.model))

    # -- one batch -----------------------------------------------------------------------------
    def batches(self, split: str, epoch: int | None = None) -> Iterator[dict[str, Any]]:
        """This rank's batches of an epoch (default: the current one): "train" makes `data.repeats` passes,
        each with its own data epoch (new windows, crops); "val" one pass over the validation set."""
        d, epoch = self.cfg.data, self.epoch if epoch is None else epoch
        if split == "train":
            for r in range(d.repeats):
                yield from epoch_loader(self.job.train_set, self.dist, d.batch_size, d.workers, True, self.cfg.seed,
                                        epoch * d.repeats + r, d.loader)
        else:
            yield from epoch_loader(self.job.val_set, self.dist, d.batch_size, d.workers, False, self.cfg.seed,
                                    epoch, d.loader)

    def _generator(self, split: str) -> torch.Generator:
        if split not in self._generators:
            self._generators[split] = augment_generator(self.dist, self.cfg.seed, self.epoch, split)
        return self._generators[split]

    def _losses(self, batch: dict[str, Any], split: str) -> LossTerms:
        inputs = self.job.inputs(batch, split, self._generator(split))
        with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.amp):
            outputs = self.net(inputs)
        return self.job.losses(outputs, batch, self.dist.rank * len(batch["index"]))

    def step(self, batch: dict[str, Any]) -> dict[str, float]:
        """One training step on a loaded batch: inputs, loss, NaN guard, optimiser step. Returns the logged
        loss terms and statistics, averaged over ranks."""
        self.net.train()
        out = self._losses(batch, "train")
        values = out.logged()
        if any_rank(not torch.isfinite(out.total).item(), self.device):
            bad = {k: v for k, v in {**out.terms, "total": values["total"]}.items() if not math.isfinite(v)}
            last = self.ckpt_path if self.ckpt_path.exists() else "none yet (first epoch)"
            raise Diverged(f"the loss became {values['total']} in {self.job.title}, epoch {self.epoch + 1}, step "
                           f"{self.steps + 1} ({bad or 'on another rank'}); last good checkpoint: {last}")
        optimizer_step(out.total, self.optimizer, self.scaler, self.model.parameters(), self.cfg.optim.grad_clip)
        self.steps += 1
        return mean_over_ranks(values, self.device)

    @torch.no_grad()
    def evaluate(self, batch: dict[str, Any]) -> dict[str, float]:
        """The logged losses of a batch without gradient, in eval mode (this rank's values)."""
        self.net.eval()
        return self._losses(batch, "val").logged()

    # -- epochs --------------------------------------------------------------------------------
    def train_epoch(self) -> dict[str, float]:
        """One epoch of steps; the per-step values averaged, plus clips_per_s."""
        d = self.cfg.data
        self._generators.pop("train", None)
        steps = d.repeats * (len(self.job.train_set) // (d.batch_size * self.dist.world_size))
        sums: dict[str, float] = {}
        n = clips = 0
        started = time.perf_counter()
        bar = tqdm(self.batches("train"), total=steps, desc=f"{self.job.name} epoch {self.epoch + 1}/{self.job.epochs}",
                   disable=not (self.cfg.progress and self.dist.is_main), leave=False, dynamic_ncols=True,
                   file=sys.stderr)
        for batch in bar:
            logged = self.step(batch)
            n += 1
            clips += len(batch["index"]) * self.dist.world_size
            for k, v in logged.items():
                sums[k] = sums.get(k, 0.0) + v
            rate = clips / max(time.perf_counter() - started, 1e-9)
            bar.set_postfix(loss=f"{logged['total']:.3f}", clips_s=f"{rate:.1f}")
            if self.writer is not None and self.steps % self.cfg.log_every == 0:
                self._log("train", logged, self.steps)
                self.writer.add_scalar("train/clips_per_s", rate, self.steps)
                self.writer.add_scalar("train/lr", self.optimizer.param_groups[0]["lr"], self.steps)
        bar.close()
        out = {k: v / max(n, 1) for k, v in sums.items()}
        out["clips_per_s"] = clips / max(time.perf_counter() - started, 1e-9)
        return out

    def validate(self) -> dict[str, float] | None:
        """The validation set's mean losses over ranks (None when the job has no validation set)."""
        if self.job.val_set is None:
            return None
        self._generators.pop("val", None)
        sums: dict[str, float] = {}
        n = 0
        for batch in self.batches("val"):
            for k, v in self.evaluate(batch).items():
                sums[k] = sums.get(k, 0.0) + v
            n += 1
        return mean_over_ranks({k: v / max(n, 1) for k, v in sums.items()}, self.device)

    @property
    def metrics_path(self) -> Path:
        return self.job.dir / "metrics.jsonl"

    def _trim_metrics(self) -> None:
        """Keep only metrics.jsonl lines of epochs the checkpoint holds: a line written just before a kill
        that the checkpoint never got is written again when that epoch is redone."""
        if not self.metrics_path.exists():
            return
        lines = self.metrics_path.read_text().splitlines()
        kept = [x for x in lines if x.strip() and _epoch_of(x) is not None and _epoch_of(x) <= self.epoch]
        if kept != lines:
            self.metrics_path.write_text("".join(x + "\n" for x in kept))

    def _log(self, split: str, values: dict[str, float], step: int) -> None:
        for k, v in values.items():
            self.writer.add_scalar(f"{split}/{k}", v, step)

    def _end_epoch(self, train: dict[str, float], val: dict[str, float] | None) -> None:
        """Schedule, checkpoint and report the epoch that just ended."""
        self.scheduler.epoch_end(val, train)
        self.epoch += 1
        if val is not None:
            self.best_val = min(self.best_val, val["total"])
        lr = self.optimizer.param_groups[0]["lr"]
        if self.writer is not None:
            self._log("epoch_train", train, self.epoch)
            if val is not None:
                self._log("val", val, self.epoch)
            self.writer.add_scalar("epoch_train/lr", lr, self.epoch)
            self.writer.flush()
        if self.dist.is_main:   # the line first: a kill after the checkpoint must not lose it (resume trims it)
            line = {"epoch": self.epoch, "step": self.steps, "lr": lr, "train": train, **({"val": val} if val else {})}
            with open(self.metrics_path, "a") as fh:
                fh.write(json.dumps(line) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
        self.save()
        if self.dist.is_main:
            print(f"{self.job.name} epoch {self.epoch}/{self.job.epochs}: train loss {train['total']:.4f}"
                  + (f", val loss {val['total']:.4f}" if val else "") + f", {train['clips_per_s']:.1f} clips/s",
                  file=sys.stderr)

    def run(self) -> Any:
        """Train until the job's last epoch, then `job.finish(self)`, whose result is returned."""
        if self.dist.is_main:
            from torch.utils.tensorboard import SummaryWriter
            self.job.dir.mkdir(parents=True, exist_ok=True)
            save_config(self.cfg, self.job.dir / "config.yaml")
            self._trim_metrics()
            self.writer = SummaryWriter(str(self.job.dir / "tb"), purge_step=self.steps + 1 if self.steps else None)
        try:
            while not self.done:
                train = self.train_epoch()
                self._end_epoch(train, self.validate())
            return self.job.finish(self)
        finally:
            if self.writer is not None:
                self.writer.close()
