"""The errors a user of the training commands can cause, in one place: each is printed as one line and ends the
command with a non-zero status (2 for a mistake, 4 for a diverged loss), never with a traceback."""

from __future__ import annotations

from preprocess.errors import UserError


class ConfigError(UserError):
    """A bad config file, key or value."""


class TrainingError(UserError):
    """A run cannot go on: no data for a batch, a checkpoint in the way or missing to start from."""


class CheckpointMismatch(UserError):
    """A checkpoint that is missing, unreadable, lacks the view, or was trained with another encoder."""


class Diverged(Exception):
    """The loss became NaN or infinite; the last good checkpoint is kept (exit 4)."""


class Terminated(BaseException):
    """SIGTERM arrived (Slurm's time limit, `kill`): raised in the main thread so that every `finally` runs —
    data workers are stopped, TensorBoard is closed — and the last epoch's checkpoint stays as it is (exit 143).
    A BaseException, like KeyboardInterrupt, so that no `except Exception` swallows it."""


__all__ = ["Terminated", "UserError", "ConfigError", "TrainingError", "CheckpointMismatch", "Diverged"]
