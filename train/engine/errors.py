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


__all__ = ["UserError", "ConfigError", "TrainingError", "CheckpointMismatch", "Diverged"]
