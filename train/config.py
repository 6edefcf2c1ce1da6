"""The generic configuration loader: a YAML file under configs/ plus dotted `key=value` overrides, checked
against a schema the caller names (each command and each method owns its schema: `train.methods.cocon.config`,
`train.finetune_config`, `train.evaluate_config`).

Every key has a typed default in its schema; an unknown key or a value of the wrong type is a one-line
ConfigError naming the key. The resolved configuration is written beside every run's checkpoints.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch
import yaml

from .data.sampling import SHORT_POLICIES
from .engine.batches import LOADERS
from .engine.errors import ConfigError
from .models.resnet2d3d import BLOCKS_PER_DEPTH


@dataclass
class StoreData:
    """The data keys every command shares: the store, how a clip is cropped, and how clips are loaded."""

    root: str = ""                       # store root made by `python -m preprocess run`
    short_videos: str = "spread"         # "spread": fractional stride, frames repeat; "skip": leave them out
    crop_fraction: float = 0.875         # square crop side / short side, before resizing to the input size
    batch_size: int = 16                 # per process (per GPU)
    workers: int = 4                     # data worker processes per process
    loader: str = "slots"                # with workers: "slots" (shared-memory batch ring) or "torch" (DataLoader)
    skip_failed: bool = False            # leave out videos the store records as failed (counted in the log)


@dataclass
class BlockClips:
    """A clip as N blocks of K consecutive stored frames (CoCon's; fine-tuning and evaluation feed an R3D
    encoder the N·K frames as one clip). TCLR's pre-training cuts its own clips and has no such keys."""

    num_blocks: int = 8                  # N
    block_frames: int = 5                # K


@dataclass
class ClipData(BlockClips, StoreData):
    """The data keys of the downstream commands (fine-tuning, evaluation): the store and N x K clips."""


@dataclass
class PretrainData(StoreData):
    """The data keys every pre-training method shares: which videos of the store train. One split's subset, or
    every video; with `holdout` > 0 (a store without splits) every video except the test videos of
    `train.finetune data.splits=[]` / `train.evaluate data.split=null` with the same holdout and seed."""

    train_split: str | None = None       # e.g. "1"; None: every video of the store
    train_subset: str = "train"
    holdout: float = 0.0                 # > 0, no split: leave out the test videos of train.finetune/evaluate's
                                         # stratified hold-out of this fraction (same seed); 0: every video trains
    repeats: int = 1                     # passes over the training videos per epoch (new windows each): small sets

    def split_keys(self) -> dict[str, str | None]:
        """The keys that choose videos by a split (a method with more, e.g. a validation split, adds them)."""
        return {"data.train_split": self.train_split}

    def check_holdout(self) -> None:
        """data.holdout in [0, 1), and not together with a split (one-line ConfigError)."""
        if not 0 <= self.holdout < 1:
            raise ConfigError(f"config key data.holdout must be in [0, 1); got {self.holdout}")
        if self.holdout > 0 and any(v is not None for v in self.split_keys().values()):
            raise ConfigError(f"config key data.holdout holds out test videos of a store without splits; with "
                              f"{' or '.join(self.split_keys())} set, the split decides: set data.holdout=0")


# Choices of the keys every command has (StoreData and model.depth), from the modules that own them; each
# schema adds its own.
SHARED_CHOICES: dict[str, tuple[Any, ...]] = {
    "data.short_videos": SHORT_POLICIES, "data.loader": LOADERS, "model.depth": tuple(sorted(BLOCKS_PER_DEPTH))}


@dataclass
class RunSchema:
    """What every command's config shares: its run folder <out>/<name>, seed, device and progress bars, and
    its dict form (for checkpoints). Each command sets its own default `name`."""

    name: str                            # the run folder is <out>/<name>
    out: str = "runs"
    seed: int = 0
    device: str = "auto"                 # auto | cpu | cuda | cuda:N
    progress: bool = True

    @property
    def run_dir(self) -> Path:
        return Path(self.out) / self.name

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


Schema = TypeVar("Schema")


def _coerce(key: str, value: Any, hint: Any) -> Any:
    """Check/convert one value against its type hint, or raise a one-line ConfigError."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        if value is None and type(None) in args:
            return None
        hint = next(a for a in args if a is not type(None))
        origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"config key {key} expects a list, got {value!r}")
        return [_coerce(f"{key}[{i}]", v, args[0]) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"config key {key} expects a mapping, got {value!r}")
        return {str(k): _coerce(f"{key}.{k}", v, args[1]) for k, v in value.items()}
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"config key {key} expects true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"config key {key} expects an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"config key {key} expects a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"config key {key} expects a string, got {value!r}")
        return str(value)
    raise ConfigError(f"config key {key} has an unsupported type {hint}")


def _apply(obj: Any, values: dict[str, Any], prefix: str = "") -> None:
    hints = typing.get_type_hints(type(obj))
    names = {f.name for f in dataclasses.fields(obj)}
    for key, value in values.items():
        dotted = f"{prefix}{key}"
        if key not in names:
            known = ", ".join(sorted(f"{prefix}{n}" for n in names))
            raise ConfigError(f"unknown config key {dotted!r}; known here: {known}")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise ConfigError(f"config key {dotted} is a section; give {dotted}.<key>=... instead of {value!r}")
            _apply(current, value, f"{dotted}.")
        else:
            setattr(obj, key, _coerce(dotted, value, hints[key]))


SEED_LIMIT = 2 ** 32   # derived seeds (seed x epoch x rank mixes) must fit torch's 64-bit generator seeds


def _has(cfg: Any, dotted: str) -> bool:
    try:
        _get(cfg, dotted)
    except AttributeError:
        return False
    return True


def check_device(name: str) -> None:
    """`device` is auto, cpu, cuda, cuda:N (an existing GPU) or another torch device type; a one-line
    ConfigError otherwise, before any work (torch itself raises a long RuntimeError, or an AttributeError for
    cuda on a CPU-only build)."""
    if name == "auto":
        return
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise ConfigError(f"config key device must be auto, cpu, cuda or cuda:N; got {name!r}") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"config key device is {name!r} but this machine has no usable CUDA GPU "
                              f"(torch {torch.__version__}); use device=auto or device=cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"config key device is {name!r} but this machine has {torch.cuda.device_count()} "
                              f"CUDA GPU(s)")


def check_out(out: str) -> None:
    """The run folder's parent `out` must be a folder or creatable: no existing file on its path."""
    for folder in (Path(out), *Path(out).parents):
        if folder.exists():
            if not folder.is_dir():
                raise ConfigError(f"config key out: {folder} is a file, not a folder for runs")
            return


def _check_shared(cfg: Any) -> None:
    """Ranges of the keys every schema may share (checked for every command, whatever its method)."""
    if _has(cfg, "seed") and not 0 <= cfg.seed < SEED_LIMIT:
        raise ConfigError(f"config key seed must be in [0, 2**32); got {cfg.seed}")
    if _has(cfg, "device"):
        check_device(cfg.device)
    if _has(cfg, "out"):
        check_out(cfg.out)
    if _has(cfg, "data.workers") and cfg.data.workers < 0:
        raise ConfigError(f"config key data.workers must be 0 (load in the main process) or more; "
                          f"got {cfg.data.workers}")
    for key in ("model.width", "data.batch_size"):
        if _has(cfg, key) and not _get(cfg, key) > 0:
            raise ConfigError(f"config key {key} must be positive; got {_get(cfg, key)!r}")
    if _has(cfg, "model.sizes"):
        for view, size in cfg.model.sizes.items():
            if size < 1:
                raise ConfigError(f"config key model.sizes.{view} must be a positive input size; got {size}")


def _check(cfg: Any) -> None:
    """The shared keys' ranges, the schema's CHOICES and POSITIVE keys, then its own check()."""
    _check_shared(cfg)
    for key, allowed in type(cfg).CHOICES.items():
        value = _get(cfg, key)
        if value not in allowed:
            raise ConfigError(f"config key {key} must be one of {', '.join(map(str, allowed))}; got {value!r}")
    for key in sorted(type(cfg).POSITIVE):
        if not _get(cfg, key) > 0:
            raise ConfigError(f"config key {key} must be positive; got {_get(cfg, key)!r}")
    cfg.check()


def _get(cfg: Any, dotted: str) -> Any:
    obj = cfg
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def parse_override(text: str) -> dict[str, Any]:
    """'optim.lr=3e-4' -> {'optim': {'lr': 0.0003}} (the value is read as YAML)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} is not key=value")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    if isinstance(value, str) and _looks_numeric(value):
        value = float(value)
    out: dict[str, Any] = {}
    node = out
    parts = key.strip().split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return out


def _looks_numeric(text: str) -> bool:
    """YAML 1.1 reads '1e-3' (no dot) as a string; treat it as the number a user meant."""
    if "e" not in text.lower() or not any(c.isdigit() for c in text):
        return False
    try:
        float(text)
    except ValueError:
        return False
    return True


def load_config(path: str | Path | None, overrides: Sequence[str], schema: type[Schema]) -> Schema:
    """Defaults of `schema` <- YAML file <- overrides, type-checked; raises ConfigError with one line.

    A schema is a dataclass of dataclass sections with CHOICES and POSITIVE class attributes and a check()."""
    cfg = schema()
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {path} is not valid YAML: {' '.join(str(exc).split())}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"config file {path} must be a mapping of keys")
        _apply(cfg, _numbers(data))
    for text in overrides:
        _apply(cfg, parse_override(text))
    _check(cfg)
    return cfg


def _numbers(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _numbers(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_numbers(v) for v in data]
    if isinstance(data, str) and _looks_numeric(data):
        return float(data)
    return data


def save_config(cfg: Any, path: Path) -> None:
    """Write the resolved configuration (every key, defaults included)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(dataclasses.asdict(cfg), sort_keys=False))
