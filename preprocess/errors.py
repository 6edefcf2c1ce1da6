"""Error types: a UserError is a mistake a user can fix, shown as one line with a non-zero exit."""


class UserError(Exception):
    """A problem in the user's input or settings; the CLI prints its message alone and exits 2."""


class VideoError(Exception):
    """A single video cannot be processed; it goes into the failures record and the batch goes on."""


class WorkerError(RuntimeError):
    """A worker process failed outside any one video (a bug, or it died twice there): fatal for the run."""
