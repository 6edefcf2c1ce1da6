"""Helper processes of `preprocess run` (workers, the flow server): dying with the supervisor, and how they ended."""

from __future__ import annotations

import signal


def die_with_parent() -> None:
    """On Linux, have the kernel kill this process when the supervisor dies (kill -9 of the run)."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def death_cause(exitcode: int | None) -> str:
    """How a helper process ended, in words: 'died of SIGSEGV (...)' or 'exited with status 1'."""
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        hint = {"SIGKILL": " (out of memory?)", "SIGSEGV": " (a crash inside a native library)"}.get(name, "")
        return f"died of {name}{hint}"
    return f"exited with status {exitcode}"
