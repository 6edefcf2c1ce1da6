"""Named sets of CoCon config keys: `preset: authors-code` sets every setting in which the authors' code differs
from this toolkit's CoCon (research/cocon_parity.md; docs/authors_code_preset.md), on top of any config file.

A preset fills its keys where the config leaves them at their defaults; a key set to another value beside the
preset is a one-line ConfigError (the run would be neither the preset nor the user's choice)."""

from __future__ import annotations

from typing import Any

from ...engine.errors import ConfigError

AUTHORS_CODE: dict[str, Any] = {
    "loss.temperature": 0.07,
    "loss.temperature_twice": True,      # logits cos/tau^2
    "loss.lambda_sim": 10.0,             # their "sim" weight, on their half-scale L_sim ...
    "loss.sim_scale": "authors",         # ... = lambda_sim 5 on the paper's scale
    "loss.lambda_sync": 10.0,            # their "coop" weight
    "loss.sync_penalty": "l1",
    "loss.mu": 1.0,
    "loss.granularity": "block",
    "loss.pool_pad_odd": True,           # MaxPool2d(2, 2, padding=1): differs from ours at 7x7 cells only
    "model.context_norm": "once",
    "model.predictor_init": "orthogonal",
    "model.bn_running_stats": True,      # CoCon tracks BatchNorm statistics (DPC's pre-training does not)
}

PRESETS: dict[str, dict[str, Any]] = {"authors-code": AUTHORS_CODE}


def _get(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def _set(obj: Any, dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    for part in parents:
        obj = getattr(obj, part)
    setattr(obj, last, value)


def apply_preset(cfg: Any) -> None:
    """Set the keys of `cfg.preset` (none when empty) where `cfg` holds its schema's default; a key holding
    another value than both the default and the preset's is a ConfigError naming it."""
    if not cfg.preset:
        return
    defaults = type(cfg)()
    for key, value in PRESETS[cfg.preset].items():
        current = _get(cfg, key)
        if current == value:
            continue
        if current != _get(defaults, key):
            raise ConfigError(f"preset {cfg.preset} sets {key}={value!r}, but the config sets {key}={current!r}: "
                              f"drop one of the two")
        _set(cfg, key, value)
