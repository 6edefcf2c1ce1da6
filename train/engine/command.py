"""What every `python -m train.<command> --config ...` shares: load the config with its schema, check its
store exists, run, and turn a user's mistake into one line and its exit status."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..config import load_config
from ..data import DataError
from .errors import ConfigError, Diverged, Terminated, TrainingError, UserError

EXIT_USER_ERROR, EXIT_DIVERGED = 2, 4
EXIT_INTERRUPTED, EXIT_TERMINATED = 128 + signal.SIGINT, 128 + signal.SIGTERM   # 130 and 143, as a shell says
STOPPED = ("every finished epoch's checkpoint is kept; run the same command with --resume to continue")


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated()


@contextmanager
def sigterm_raises() -> Iterator[None]:
    """Within the block, SIGTERM raises Terminated in the main thread (instead of killing the process with no
    cleanup); the previous handler is restored after it. Only the main thread can install handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


_RESOURCE_SHARER = os.path.join("multiprocessing", "resource_sharer.py")


def _peer_gone(args: threading.ExceptHookArgs) -> bool:
    """Whether a thread died of a connection error inside multiprocessing's resource sharer: a data worker that
    Ctrl-C (sent to the whole process group) stopped while it handed a tensor over. The stop has its own line."""
    if not isinstance(args.exc_value, (ConnectionError, EOFError)):
        return False
    tb = args.exc_traceback
    while tb is not None:
        if tb.tb_frame.f_code.co_filename.endswith(_RESOURCE_SHARER):
            return True
        tb = tb.tb_next
    return False


def quiet_peer_errors() -> None:
    """From now on, a background thread's `_peer_gone` error prints nothing (torch's DataLoader workers stopped by
    Ctrl-C used to add a traceback to the one-line message, sometimes after it); every other thread error is
    reported as before. Installed once per process: such a thread can die while the process exits."""
    previous = threading.excepthook
    if getattr(previous, "quiet_peer_errors", False):
        return

    def hook(args: threading.ExceptHookArgs) -> None:
        if not _peer_gone(args):
            previous(args)

    hook.quiet_peer_errors = True  # type: ignore[attr-defined]
    threading.excepthook = hook


class CommandParser(argparse.ArgumentParser):
    """An ArgumentParser whose `key=value` overrides may stand anywhere on the line, also after `--resume`
    (plain argparse stops a `nargs="*"` positional at the first option and rejects what follows)."""

    def parse_args(self, args: Sequence[str] | None = None, namespace: Any = None) -> argparse.Namespace:  # type: ignore[override]
        return self.parse_intermixed_args(args, namespace)


def command_parser(prog: str, doc: str, epilog: str, resume_help: str | None = None) -> argparse.ArgumentParser:
    """`--config FILE [key=value ...]` (and `--resume` when `resume_help` is given), described by the first
    paragraph of the command's module docstring `doc`."""
    p = CommandParser(prog=prog, description=doc.split("\n\n")[0], epilog=epilog,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="YAML config file (see configs/)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    if resume_help is not None:
        p.add_argument("--resume", action="store_true", help=resume_help)
    return p


def run_command(config: str, overrides: Sequence[str], schema: type, run: Callable[[Any], int]) -> int:
    """load_config(config, overrides, schema), then run(cfg); 2 with one line for a usage error, 4 for a
    diverged loss, 130 after Ctrl-C and 143 after SIGTERM (one line each; checkpoints of finished epochs kept)."""
    quiet_peer_errors()
    try:
        with sigterm_raises():
            cfg = load_config(config, list(overrides), schema=schema)
            if not Path(cfg.data.root).is_dir():
                raise ConfigError(f"data.root {cfg.data.root!r} is not a folder; make a store with "
                                  f"`python -m preprocess run` and set data.root")
            return run(cfg)
    except KeyboardInterrupt:
        print(f"interrupted (Ctrl-C): {STOPPED}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Terminated:
        print(f"terminated (SIGTERM): {STOPPED}", file=sys.stderr)
        return EXIT_TERMINATED
    except (ConfigError, DataError, UserError, TrainingError) as exc:  # every one-line mistake
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except Diverged as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_DIVERGED
