"""The one small protocol between the engine and what it trains. A *job* is one stage of a method (CoCon's
cpc-<view> or cocon stage, TCLR's single stage) or one fine-tuning unit; the engine owns the loop, the
optimiser step, the NaN guard, logging, checkpoints and resume, and asks the job for the rest.

A job subclasses `Job`, sets the attributes below in its constructor and implements `build_model`, `inputs`
and `losses`; the other methods have defaults that fit most jobs. Its datasets yield dicts that hold an
`index` entry (one per clip: the engine counts clips by it and places this rank's clips in the global batch).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from .schedules import EpochSchedule, PlateauOnValLoss


@dataclass
class LossTerms:
    """What a job's loss step yields for one batch: the total to minimise, its named terms (logged, and
    checked for NaN) and further statistics that are only logged (accuracies, cosines)."""

    total: torch.Tensor
    terms: dict[str, float] = field(default_factory=dict)
    stats: dict[str, float] = field(default_factory=dict)

    def logged(self) -> dict[str, float]:
        """Everything the engine writes to TensorBoard and metrics.jsonl, with the total under "total"."""
        return {**self.terms, "total": float(self.total.detach()), **self.stats}


class Job:
    """One thing the engine trains from scratch or from its checkpoint.

    Attributes a job sets: `cfg` (a config with the RunSchema keys, data.batch_size/workers/loader/repeats,
    optim.lr/weight_decay/amp/grad_clip and log_every), `name` (its progress label and the folder under the
    run), `dir` (where its checkpoint, config.yaml, metrics.jsonl and tb/ go), `epochs`, `device`,
    `train_set`, `val_set` (None: no validation) and `title` (how error messages name it).
    """

    cfg: Any
    name: str
    title: str
    dir: Path
    epochs: int
    device: torch.device
    train_set: Dataset
    val_set: Dataset | None = None
    sync_bn: bool = True                 # BatchNorm -> SyncBatchNorm across GPUs

    def build_model(self) -> nn.Module:
        """The model to train, with any starting weights loaded (the engine moves it to the device)."""
        raise NotImplementedError

    def inputs(self, batch: dict[str, Any], split: str, generator: torch.Generator) -> Any:
        """A loaded batch as the model's device inputs: the job's own augmentation and clip layout."""
        raise NotImplementedError

    def losses(self, outputs: Any, batch: dict[str, Any], offset: int) -> LossTerms:
        """The loss of a batch from the model's outputs; `offset` is this rank's first clip in the global batch
        (where its positives sit among negatives gathered from every rank)."""
        raise NotImplementedError

    def optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        """Adam over the trainable parameters, in the model's parameter order."""
        o = self.cfg.optim
        return torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=o.lr,
                                weight_decay=o.weight_decay)

    def schedule(self, optimizer: torch.optim.Optimizer) -> EpochSchedule:
        """Reduce-on-plateau of the validation loss, from the optim.plateau_* keys."""
        o = self.cfg.optim
        return PlateauOnValLoss(optimizer, mode="min", factor=o.plateau_factor, patience=o.plateau_patience,
                                min_lr=o.min_lr)

    def checkpoint_extra(self, model: nn.Module) -> dict[str, Any]:
        """What the checkpoint holds besides the engine's state (model, optimizer, scheduler, scaler, rng,
        epoch, step, best_val): at least what rebuilds the model elsewhere."""
        return {}

    def finish(self, runner: Any) -> Any:
        """Called once the last epoch is trained (TensorBoard still open); its result is what run() returns."""
        return runner.ckpt_path
