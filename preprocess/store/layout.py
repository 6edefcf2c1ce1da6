"""Where things live in a store root: the manifest, one folder per view, shard files and their partials.

    ROOT/manifest.json                 video list, labels, splits, stride, shard assignment
    ROOT/<view>/view.json              the view's byte-changing parameters
    ROOT/<view>/shard-00012.h5         a finished shard (appears only by an atomic rename)
    ROOT/<view>/.shard-00012.h5.partial-<host>-<pid>   a shard being written (ignored by readers)
    ROOT/logs/run-*.json               one summary per run (counts, failures, timings)
"""

from __future__ import annotations

import json
import os
import re
import socket
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

FORMAT = "cocon-store/1"
MANIFEST = "manifest.json"
VIEW_META = "view.json"
SHARD_RE = re.compile(r"^shard-(\d{5,})\.h5$")
PARTIAL_RE = re.compile(r"^\.shard-(\d{5,})\.h5\.partial-(.+)-(\d+)$")


def view_dir(root: Path, view: str) -> Path:
    return Path(root) / view


def shard_name(shard: int) -> str:
    return f"shard-{shard:05d}.h5"


def shard_path(root: Path, view: str, shard: int) -> Path:
    return view_dir(root, view) / shard_name(shard)


def partial_path(root: Path, view: str, shard: int) -> Path:
    """A name for a shard in progress that is unique to this host and process."""
    return view_dir(root, view) / f".{shard_name(shard)}.partial-{socket.gethostname()}-{os.getpid()}"


def video_key(video_id: str) -> str:
    """HDF5 group name of a video id ('/' would nest groups, so ids are percent-encoded)."""
    return quote(video_id, safe="", errors="surrogateescape")


def video_id_from_key(key: str) -> str:
    return unquote(key, errors="surrogateescape")


def current_umask() -> int:
    """The process's umask (read by setting it and putting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _temp_json(path: Path, obj: Any) -> str:
    """Write `obj` as JSON to a durable temporary file beside `path`; return its name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.fchmod(fd, 0o666 & ~current_umask())  # mkstemp makes 0600: others sharing the store could not read it
    with os.fdopen(fd, "w") as fh:
        json.dump(obj, fh, indent=1, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    return tmp


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write JSON so that readers see either the old file or the whole new one."""
    path = Path(path)
    os.replace(_temp_json(path, obj), path)


def create_json_once(path: Path, obj: Any) -> Any:
    """Create `path` with `obj` unless it exists; return what the file holds (ours or the winner's).

    Safe when several array jobs start at once: the file is linked into place, never overwritten.
    """
    path = Path(path)
    if path.exists():
        return read_json(path)
    tmp = _temp_json(path, obj)
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        os.unlink(tmp)
    return read_json(path)


def read_json(path: Path) -> Any:
    """A store's JSON file, or one line saying it is damaged (cut, edited, not JSON)."""
    from ..errors import UserError
    try:
        return json.loads(Path(path).read_text())
    except ValueError as exc:
        raise UserError(f"{path} is damaged ({exc}); restore it, or remove the folder's view and re-run") from None
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from None


def fsync_dir(path: Path) -> None:
    """Make a rename in `path` durable."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
