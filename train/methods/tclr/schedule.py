"""TCLR's learning-rate rule (research/tclr_reference.md §6): warm-up multipliers for the first epochs, then
lr = base / 10^k, k growing by one each time `patience` epochs have ended with a mean training loss above the
best one so far (the count restarts at every new best and after every cut)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch


class WarmupThenPlateau:
    """An engine schedule (`train.engine.schedules.EpochSchedule`) stepped once per epoch on the training loss."""

    def __init__(self, optimizer: torch.optim.Optimizer, base_lr: float, warmup: Sequence[float], patience: int,
                 factor: float = 0.1) -> None:
        self.optimizer, self.base_lr = optimizer, float(base_lr)
        self.warmup, self.patience, self.factor = [float(m) for m in warmup], int(patience), float(factor)
        self.epoch = 0
        self.best = math.inf
        self.bad_epochs = 0
        self.cuts = 0
        self._set(self.lr_for_next_epoch())

    def lr_for_next_epoch(self) -> float:
        """The lr of epoch `self.epoch` (0-based)."""
        if self.epoch < len(self.warmup):
            return self.base_lr * self.warmup[self.epoch]
        return self.base_lr * self.factor ** self.cuts

    def _set(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def epoch_end(self, val: dict[str, float] | None, train: dict[str, float] | None = None) -> None:
        """Count the epoch's mean training loss against the best, then set the next epoch's lr."""
        if train is None:
            raise ValueError("TCLR's schedule needs the epoch's training loss")
        loss = train["total"]
        if loss < self.best:
            self.best, self.bad_epochs = loss, 0
        else:
            self.bad_epochs += 1
        self.epoch += 1
        if self.epoch > len(self.warmup) and self.bad_epochs >= self.patience:
            self.cuts, self.bad_epochs = self.cuts + 1, 0
        self._set(self.lr_for_next_epoch())

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "best": self.best, "bad_epochs": self.bad_epochs, "cuts": self.cuts}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch, self.best = int(state["epoch"]), float(state["best"])
        self.bad_epochs, self.cuts = int(state["bad_epochs"]), int(state["cuts"])
        self._set(self.lr_for_next_epoch())
