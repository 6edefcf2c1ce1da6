"""`run --retry-failed [CLASS,...]`: make again the shards holding videos that failed, all or those whose
reason is of the given classes (a worker killed for memory is not a bad video, and a fixed file deserves
another go). The new shard replaces the old one atomically only when complete."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from .errors import UserError
from .store.reader import list_shards, open_shard, shard_failures

# Reason class -> the beginnings of the failure reasons it covers (pipeline, decode, worker_pool, dask_runs).
REASON_CLASSES: dict[str, tuple[str, ...]] = {
    "crashed": ("its worker process", "its Dask worker"),
    "truncated": ("truncated",),
    "unreadable": ("cannot open", "empty file", "no video stream"),
    "decode": ("decode error",),
    "short": ("too short",),
}
OTHER = "other"


def reason_class(reason: str) -> str:
    """The class of a failure reason ('crashed', 'truncated', ..., or 'other')."""
    for name, starts in REASON_CLASSES.items():
        if reason.startswith(starts):
            return name
    return OTHER


def parse_classes(text: str | None) -> set[str] | None:
    """None: no retry; 'all' (or an empty value): every class; else the named classes."""
    if text is None:
        return None
    names = {x.strip() for x in text.split(",") if x.strip()}
    if not names or "all" in names:
        return set(REASON_CLASSES) | {OTHER}
    unknown = sorted(names - set(REASON_CLASSES) - {OTHER})
    if unknown:
        raise UserError(f"--retry-failed: unknown reason class(es) {', '.join(unknown)}; choose from all, "
                        f"{', '.join([*REASON_CLASSES, OTHER])}")
    return names


def shards_to_retry(root: Path, views: Iterable[str], shards: Iterable[int], classes: set[str]) -> dict[int, int]:
    """Shard -> number of its failed videos (in any of `views`) whose reason is of `classes`."""
    wanted, out = set(shards), {}
    for view in views:
        for shard, path in list_shards(root, view).items():
            if shard in wanted:
                with open_shard(path) as f:
                    ids = {x["id"] for x in shard_failures(f) if reason_class(x["reason"]) in classes}
                if ids:
                    out[shard] = max(out.get(shard, 0), len(ids))
    return out
