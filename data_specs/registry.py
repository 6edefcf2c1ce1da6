"""Dataset names, their loaders, and `load_video_list`, the one entry point (folder, names or a spec file)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from .folder import load_folder
from .hmdb51 import load_hmdb51
from .kinetics import load_kinetics400
from .records import DatasetError, VideoList
from .ucf101 import load_ucf101

Loader = Callable[[Path, Path | None], VideoList]

DATASETS: dict[str, Loader] = {
    "folder": load_folder,
    "hmdb51": load_hmdb51,
    "kinetics400": load_kinetics400,
    "ucf101": load_ucf101,
}
SPEC_SUFFIXES: tuple[str, ...] = (".yaml", ".yml", ".json")
SPEC_KEYS: tuple[str, ...] = ("annotations", "dataset", "videos")


def _absolute(path: str | Path, base: Path | None = None) -> Path:
    """Expand ~ and make a path absolute (relative to base when given), without resolving symlinks."""
    p = Path(path).expanduser()
    if base is not None and not p.is_absolute():
        p = base / p
    return Path(os.path.abspath(p))


def read_spec(path: Path) -> dict[str, Any]:
    """Read a dataset spec file (keys dataset, videos, annotations); its relative paths resolve against its folder."""
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except OSError as exc:
        raise DatasetError(f"cannot read spec {path}: {exc.strerror or exc}") from None
    except (ValueError, yaml.YAMLError) as exc:
        reason = " ".join(str(exc).split())
        raise DatasetError(f"spec {path} is not valid {path.suffix.lstrip('.').upper()}: {reason}") from None
    if not isinstance(data, dict):
        raise DatasetError(f"spec {path} must be a mapping with keys {', '.join(SPEC_KEYS)}")
    unknown = sorted(str(k) for k in data if k not in SPEC_KEYS)
    if unknown:
        raise DatasetError(f"spec {path} has unknown key(s) {', '.join(unknown)}; allowed: {', '.join(SPEC_KEYS)}")
    for key in SPEC_KEYS:
        value = data.get(key)
        if value is not None and not isinstance(value, str):
            raise DatasetError(f"spec {path}: {key!r} must be a string, got {value!r}")
    if not data.get("videos"):
        raise DatasetError(f"spec {path} lacks 'videos' (the folder of video files)")
    base = path.parent
    return {
        "dataset": data.get("dataset"),
        "videos": _absolute(data["videos"], base),
        "annotations": _absolute(data["annotations"], base) if data.get("annotations") else None,
    }


def dataset_name(dataset: str | None) -> str:
    """Normalise a dataset name (None means "folder"); DatasetError for an unknown one."""
    if dataset is None:
        return "folder"
    name = dataset.strip().lower()
    if name not in DATASETS:
        raise DatasetError(f"unknown dataset {dataset!r}; choose from {', '.join(sorted(DATASETS))}")
    return name


def load_video_list(
    videos: str | Path, dataset: str | None = None, annotations: str | Path | None = None
) -> VideoList:
    """Load a dataset as one VideoList from a videos folder, or from a .yaml/.yml/.json spec file.

    With a spec file, `dataset` and `annotations` given here override the spec's values.
    """
    path = _absolute(videos)
    if path.suffix.lower() in SPEC_SUFFIXES and not path.is_dir():
        if not path.is_file():
            raise DatasetError(f"spec file {path} does not exist")
        spec = read_spec(path)
        path = spec["videos"]
        dataset = dataset if dataset is not None else spec["dataset"]
        annotations = annotations if annotations is not None else spec["annotations"]
    name = dataset_name(dataset)
    if not path.exists():
        raise DatasetError(f"videos folder {path} does not exist")
    if not path.is_dir():
        raise DatasetError(f"videos path {path} is a file, not a folder of videos or a .yaml/.yml/.json spec")
    return DATASETS[name](path, _absolute(annotations) if annotations is not None else None)
