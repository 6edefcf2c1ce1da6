"""Data worker processes that never outlive the training process: a worker asks the kernel for SIGKILL when
its parent dies (Linux's PR_SET_PDEATHSIG) and, where that is unavailable, checks its parent's pid whenever it
waits (a watchdog); it ignores Ctrl-C, which the terminal sends to the whole process group, because the main
process stops its workers itself (otherwise every worker prints a KeyboardInterrupt traceback), and dies
quietly of SIGTERM (the main process's SIGTERM handler, inherited through fork, would print a traceback)."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

PR_SET_PDEATHSIG = 1   # <linux/prctl.h>
HELD = {signal.SIGINT, signal.SIGTERM}


def die_with_parent(parent_pid: int, on_sigterm: Any = signal.SIG_DFL) -> bool:
    """Call first thing in a forked worker: SIGKILL this process when the parent thread that forked it ends
    (Linux; False elsewhere), ignore SIGINT, let SIGTERM end it quietly (or `on_sigterm`), and exit at once if
    the parent is already gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, on_sigterm)   # not the trainer's handler, inherited through fork
    signal.pthread_sigmask(signal.SIG_UNBLOCK, HELD)  # held by `signals_held` while the parent forked us
    armed = False
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            armed = libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
        except OSError:
            armed = False
    if not parent_alive(parent_pid):   # the parent died before the request was in place
        os._exit(1)
    return armed


@contextmanager
def signals_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM in the parent while it forks workers: a signal that lands between a fork and the
    worker's `die_with_parent` would run the parent's handlers in the child (a KeyboardInterrupt or Terminated
    traceback through a copy of the parent's stack). A held signal is delivered when the block ends."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, HELD)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def parent_alive(parent_pid: int) -> bool:
    """Whether the process that started this worker is still its parent (an orphan is re-parented)."""
    return os.getppid() == parent_pid


class DataLoaderWorkerInit:
    """A DataLoader `worker_init_fn` that applies `die_with_parent` (PyTorch's own watchdog also ends its
    workers, but only after a few seconds and when they next wait for work))."""

    def __init__(self, parent_pid: int) -> None:
        self.parent_pid = parent_pid

    def __call__(self, worker_id: int) -> None:
        # SIGTERM ignored: a DataLoader whose worker died of it raises from its __del__ after the trainer's
        # one-line message; the trainer shuts its workers down itself.
        die_with_parent(self.parent_pid, on_sigterm=signal.SIG_IGN)
