"""Finished shards that cannot be read are set aside (renamed, never deleted) so that a run remakes them."""

from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path
from typing import Iterable

from .reader import list_shards, open_shard, shard_failures


def shard_damage(path: Path) -> str | None:
    """Why a finished shard cannot be used (its metadata cannot be read, or it is not marked complete), or None."""
    try:
        with open_shard(path) as f:
            if not f.attrs.get("complete", False):
                return "not marked complete"
            shard_failures(f)
            len(f["videos"])
    except Exception as exc:  # anything HDF5 or JSON can throw at a damaged file
        return " ".join(str(exc).split()) or type(exc).__name__
    return None


def set_aside_damaged(root: Path, views: Iterable[str], shards: Iterable[int]) -> list[str]:
    """Rename every damaged finished shard among `shards` of `views` to <name>.damaged-<UTC time>; one line
    per shard set aside."""
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S")
    wanted = set(shards)
    lines = []
    for view in views:
        for shard, path in sorted(list_shards(root, view).items()):
            if shard not in wanted:
                continue
            why = shard_damage(path)
            if why is None:
                continue
            aside = path.with_name(f"{path.name}.damaged-{stamp}")
            os.replace(path, aside)
            lines.append(f"warning: {view}/{path.name} is damaged ({why}): set aside as {aside.name}; it is remade")
    return lines
