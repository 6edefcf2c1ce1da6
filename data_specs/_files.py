"""Helpers shared by the dataset loaders: video discovery, a name index, tolerant text reading, record merging."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .records import DatasetError, VideoList, VideoRecord, build_video_list

VIDEO_EXTENSIONS: tuple[str, ...] = (
    ".avi", ".mp4", ".mkv", ".webm", ".mov", ".gif", ".m4v", ".mpg", ".mpeg", ".flv", ".wmv", ".3gp",
)
_EXTENSION_SET = frozenset(VIDEO_EXTENSIONS)


def video_suffix(name: str) -> str:
    """Return the lower-case video extension of a file name, or "" when it is not a video name."""
    dot = name.rfind(".")
    if dot <= 0:
        return ""
    suffix = name[dot:].lower()
    return suffix if suffix in _EXTENSION_SET else ""


def strip_video_suffix(name: str) -> str:
    """Drop a video extension from a name or path; other names come back unchanged."""
    suffix = video_suffix(name.rsplit("/", 1)[-1])
    return name[: -len(suffix)] if suffix else name


def walk_videos(root: Path) -> Iterator[tuple[str, str]]:
    """Yield (POSIX path relative to root, absolute path) for every video under root, in sorted order.

    Hidden files and folders are skipped; symlinks are followed, each real folder is visited once.
    """
    top = os.path.abspath(root)
    seen = {os.path.realpath(top)}
    for dirpath, dirnames, filenames in os.walk(top, followlinks=True):
        kept = []
        for name in sorted(dirnames):
            if name.startswith("."):
                continue
            real = os.path.realpath(os.path.join(dirpath, name))
            if real not in seen:
                seen.add(real)
                kept.append(name)
        dirnames[:] = kept
        rel_dir = os.path.relpath(dirpath, top).replace(os.sep, "/")
        for name in sorted(filenames):
            if name.startswith(".") or not video_suffix(name):
                continue
            full = os.path.join(dirpath, name)
            if os.path.isfile(full):
                yield (name if rel_dir == "." else f"{rel_dir}/{name}"), full
            else:  # a broken symbolic link, or not a regular file: said, not silently dropped
                why = "a broken symbolic link" if os.path.islink(full) else "not a regular file"
                shown = full.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
                print(f"warning: skipped {shown!r}: {why}", file=sys.stderr)


def _hint_key(name: str) -> str:
    """Normalise a class name for comparing with a folder name (case, spaces vs underscores)."""
    return name.casefold().replace(" ", "_")


@dataclass
class VideoIndex:
    """Every video under a root, indexed by relative path, file name and stem (built with one walk)."""

    root: Path
    files: dict[str, str]  # relative POSIX path -> absolute path
    by_name: dict[str, list[str]] = field(default_factory=dict)
    by_stem: dict[str, list[str]] = field(default_factory=dict)
    by_rel_stem: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def build(cls, root: Path) -> VideoIndex:
        """Index the videos under root; DatasetError when root is not a folder or holds no video."""
        root = Path(os.path.abspath(root))
        if not root.exists():
            raise DatasetError(f"videos folder {root} does not exist")
        if not root.is_dir():
            raise DatasetError(f"videos path {root} is not a folder")
        index = cls(root, dict(walk_videos(root)))
        if not index.files:
            raise DatasetError(f"no videos found under {root} (looked for {' '.join(VIDEO_EXTENSIONS)})")
        for rel, full in index.files.items():
            name = rel.rsplit("/", 1)[-1]
            index.by_name.setdefault(name, []).append(full)
            index.by_stem.setdefault(strip_video_suffix(name), []).append(full)
            index.by_rel_stem.setdefault(strip_video_suffix(rel), []).append(full)
        return index

    def resolve(self, entry: str, folder_hint: str = "", where: str = "") -> str | None:
        """Find the file an annotation entry names, or None.

        Tried in order: the relative path itself, the same file name anywhere, the same relative path
        with another video extension, the same stem anywhere. Several matches are narrowed to those whose
        parent folder is `folder_hint`; if still several, DatasetError.
        """
        rel = entry.replace("\\", "/").strip("/")
        if rel in self.files:
            return self.files[rel]
        name = rel.rsplit("/", 1)[-1]
        for table, key in (
            (self.by_name, name),
            (self.by_rel_stem, strip_video_suffix(rel)),
            (self.by_stem, strip_video_suffix(name)),
        ):
            found = table.get(key)
            if found:
                return self._pick(entry, found, folder_hint, where)
        return None

    def _pick(self, entry: str, found: list[str], folder_hint: str, where: str) -> str:
        """Choose one of several candidate files, preferring the hinted parent folder."""
        if len(found) == 1:
            return found[0]
        if folder_hint:
            hint = _hint_key(folder_hint)
            hinted = [p for p in found if _hint_key(os.path.basename(os.path.dirname(p))) == hint]
            if len(hinted) == 1:
                return hinted[0]
            found = hinted or found
        prefix = f"{where}: " if where else ""
        raise DatasetError(f"{prefix}{entry!r} matches several videos under {self.root}: {found[0]} and {found[1]}")


def read_text(path: Path) -> str:
    """Read a UTF-8 text file (BOM tolerated), naming the path in a DatasetError when it cannot be read."""
    try:
        return path.read_text(encoding="utf-8-sig", errors="replace")
    except OSError as exc:
        raise DatasetError(f"cannot read {path}: {exc.strerror or exc}") from None


def read_lines(path: Path) -> list[tuple[int, str]]:
    """Return (1-based line number, stripped text) for each non-blank line; CRLF and trailing spaces tolerated."""
    return [(n, line.strip()) for n, line in enumerate(read_text(path).splitlines(), 1) if line.strip()]


def line_error(path: Path, lineno: int, message: str) -> DatasetError:
    """A DatasetError for one line of an annotation file."""
    return DatasetError(f"{path} line {lineno}: {message}")


def require_annotations(annotations: Path | None, dataset: str, what: str, *, folder: bool | None) -> Path:
    """Check the annotations path a loader needs exists (a folder, a file, or either when folder is None)."""
    if annotations is None:
        raise DatasetError(f"{dataset} needs annotations: {what}")
    path = Path(os.path.abspath(annotations))
    if not path.exists():
        raise DatasetError(f"{dataset} annotations {path} does not exist (expected {what})")
    if folder is True and not path.is_dir():
        raise DatasetError(f"{dataset} annotations {path} is not a folder (expected {what})")
    if folder is False and not path.is_file():
        raise DatasetError(f"{dataset} annotations {path} is not a file (expected {what})")
    return path


@dataclass
class _Pending:
    """A record being assembled from several annotation lines."""

    entry: str
    path: str
    label: int
    label_name: str
    splits: dict[str, str] = field(default_factory=dict)
    where: dict[str, str] = field(default_factory=dict)  # split -> "file line N" that set it


class RecordBuilder:
    """Merge annotation entries into one record per id, resolving files once and collecting missing ones."""

    def __init__(self, index: VideoIndex) -> None:
        self.index = index
        self._records: dict[str, _Pending] = {}
        self._missing_ids: set[str] = set()
        self.missing: set[str] = set()

    def add(
        self,
        video_id: str,
        entry: str,
        *,
        label: int,
        label_name: str,
        split: str,
        subset: str,
        where: str,
        folder_hint: str = "",
        fallbacks: tuple[str, ...] = (),
    ) -> None:
        """Record that `entry` (as written in the annotation) is in `subset` of `split` under `video_id`."""
        pending = self._records.get(video_id)
        if pending is None:
            if video_id in self._missing_ids:
                return
            path = self._resolve(entry, folder_hint, where, fallbacks)
            if path is None:
                self._missing_ids.add(video_id)
                self.missing.add(entry)
                return
            pending = self._records[video_id] = _Pending(entry, path, label, label_name)
        elif entry != pending.entry:
            path = self._resolve(entry, folder_hint, where, fallbacks)
            if path is not None and path != pending.path:
                raise DatasetError(f"{where}: two videos get the id {video_id!r}: {pending.path} and {path}")
        previous = pending.splits.get(split)
        if previous is not None and previous != subset:
            raise DatasetError(
                f"{where}: {entry} is {subset} in split {split} but {previous} at {pending.where[split]}"
            )
        pending.splits[split] = subset
        pending.where.setdefault(split, where)

    def _resolve(self, entry: str, folder_hint: str, where: str, fallbacks: tuple[str, ...]) -> str | None:
        """Resolve an entry, then its fallbacks, to a file path."""
        for candidate in (entry, *fallbacks):
            path = self.index.resolve(candidate, folder_hint, where)
            if path is not None:
                return path
        return None

    def finish(self, dataset: str, classes: list[str], annotations: Path) -> VideoList:
        """Build the sorted VideoList."""
        records = [
            VideoRecord(video_id, p.path, p.label, p.label_name, p.splits) for video_id, p in self._records.items()
        ]
        return build_video_list(
            dataset, str(self.index.root), classes, records, self.missing, str(annotations)
        )
