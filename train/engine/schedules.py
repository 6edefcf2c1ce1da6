"""Learning-rate schedules the engine steps once per epoch, each told the epoch's validation losses (or None
when a job does not validate) and its mean training losses over ranks. A job picks one, or brings its own with the same two methods plus state_dict."""

from __future__ import annotations

from typing import Protocol

import torch


class EpochSchedule(Protocol):
    """What the engine needs of a schedule: a step at the end of each epoch, and its state for checkpoints."""

    def epoch_end(self, val: dict[str, float] | None, train: dict[str, float] | None = None) -> None: ...

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


class PlateauOnValLoss(torch.optim.lr_scheduler.ReduceLROnPlateau):
    """Reduce-on-plateau of the validation total loss (CoCon, DPC)."""

    def epoch_end(self, val: dict[str, float] | None, train: dict[str, float] | None = None) -> None:
        if val is None:
            raise ValueError("a reduce-on-plateau schedule needs a validation set")
        self.step(val["total"])


class Milestones(torch.optim.lr_scheduler.MultiStepLR):
    """Multiply the learning rate by gamma at fixed epochs (fine-tuning)."""

    def epoch_end(self, val: dict[str, float] | None, train: dict[str, float] | None = None) -> None:
        self.step()
