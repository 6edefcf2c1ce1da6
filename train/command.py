"""What every `python -m train.<command> --config ...` shares: load the config with its schema, check its
store exists, run, and turn a user's mistake into one line and its exit status."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from preprocess.errors import UserError

from .config import ConfigError, load_config
from .data import DataError
from .trainer import Diverged, TrainingError

EXIT_USER_ERROR, EXIT_DIVERGED = 2, 4


def run_command(config: str, overrides: Sequence[str], schema: type, run: Callable[[Any], int]) -> int:
    """load_config(config, overrides, schema), then run(cfg); 2 with one line for a usage error, 4 for a
    diverged loss."""
    try:
        cfg = load_config(config, list(overrides), schema=schema)
        if not Path(cfg.data.root).is_dir():
            raise ConfigError(f"data.root {cfg.data.root!r} is not a folder; make a store with "
                              f"`python -m preprocess run` and set data.root")
        return run(cfg)
    except (ConfigError, DataError, UserError, TrainingError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except Diverged as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_DIVERGED
