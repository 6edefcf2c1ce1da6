"""The one list of videos every dataset loader produces: records with ids, labels and split membership."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

SUBSETS: tuple[str, ...] = ("train", "val", "test")
_SUMMARY_SHOWN = 5


class DatasetError(ValueError):
    """A dataset, annotation or spec problem the user can fix; the message is one line naming the path."""


@dataclass(frozen=True)
class VideoRecord:
    """One video: stable id, file on disk, 0-based label (-1 = none) and its subset in each split."""

    id: str
    path: str
    label: int
    label_name: str
    splits: dict[str, str] = field(default_factory=dict, compare=True, hash=False)

    def __post_init__(self) -> None:
        # Own a copy so a caller's dict cannot change a frozen record behind its back.
        object.__setattr__(self, "splits", dict(self.splits))

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict of this record."""
        return {
            "id": self.id,
            "path": self.path,
            "label": self.label,
            "label_name": self.label_name,
            "splits": dict(sorted(self.splits.items(), key=lambda kv: _split_sort_key(kv[0]))),
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> VideoRecord:
        """Rebuild a record from `to_json` output."""
        try:
            return cls(
                id=str(d["id"]),
                path=str(d["path"]),
                label=int(d["label"]),
                label_name=str(d.get("label_name", "")),
                splits={str(k): str(v) for k, v in (d.get("splits") or {}).items()},
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DatasetError(f"malformed video record {d!r}: {exc}") from None


@dataclass
class VideoList:
    """All videos of one dataset on disk, sorted by id, plus the annotated videos that are missing."""

    dataset: str
    videos_root: str
    classes: list[str]
    records: list[VideoRecord]
    missing: list[str] = field(default_factory=list)
    annotations: str = ""  # annotation file or folder the list came from ("" when none)

    def __len__(self) -> int:
        return len(self.records)

    @property
    def split_names(self) -> list[str]:
        """Names of the splits any record belongs to, in natural order ("1", "2", "3")."""
        names = {name for record in self.records for name in record.splits}
        return sorted(names, key=_split_sort_key)

    def split(self, name: str, subset: str) -> list[VideoRecord]:
        """Records whose subset in split `name` is `subset` ("train", "val" or "test")."""
        if subset not in SUBSETS:
            raise DatasetError(f"unknown subset {subset!r}; choose from {', '.join(SUBSETS)}")
        names = self.split_names
        if name not in names:
            have = f"has splits {', '.join(names)}" if names else "has no splits"
            raise DatasetError(f"{self.dataset} list of {self.videos_root} has no split {name!r} ({have})")
        return [r for r in self.records if r.splits.get(name) == subset]

    def missing_summary(self) -> str:
        """One readable line about videos the annotations list but the folder lacks; "" when none."""
        n = len(self.missing)
        if n == 0:
            return ""
        shown = ", ".join(self.missing[:_SUMMARY_SHOWN])
        more = f" and {n - _SUMMARY_SHOWN} more" if n > _SUMMARY_SHOWN else ""
        source = self.annotations or "the annotations"
        noun, verb = ("video", "is") if n == 1 else ("videos", "are")
        return f"{n} {noun} listed in {source} {verb} missing under {self.videos_root}: {shown}{more}"

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict of the whole list."""
        return {
            "dataset": self.dataset,
            "videos_root": self.videos_root,
            "annotations": self.annotations,
            "classes": list(self.classes),
            "records": [r.to_json() for r in self.records],
            "missing": list(self.missing),
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> VideoList:
        """Rebuild a list from `to_json` output."""
        try:
            return cls(
                dataset=str(d["dataset"]),
                videos_root=str(d["videos_root"]),
                classes=[str(c) for c in d["classes"]],
                records=[VideoRecord.from_json(r) for r in d["records"]],
                missing=[str(m) for m in d.get("missing", [])],
                annotations=str(d.get("annotations", "")),
            )
        except (KeyError, TypeError) as exc:
            raise DatasetError(f"malformed video list: missing or bad {exc}") from None


def build_video_list(
    dataset: str,
    videos_root: str,
    classes: list[str],
    records: Iterable[VideoRecord],
    missing: Iterable[str] = (),
    annotations: str = "",
) -> VideoList:
    """Sort records by id (raising DatasetError on a duplicate id) and missing entries, and wrap them."""
    ordered = sorted(records, key=lambda r: r.id)
    for prev, cur in zip(ordered, ordered[1:]):
        if prev.id == cur.id:
            raise DatasetError(f"two videos get the id {cur.id!r}: {prev.path} and {cur.path}")
    return VideoList(
        dataset=dataset,
        videos_root=videos_root,
        classes=list(classes),
        records=ordered,
        missing=sorted(set(missing)),
        annotations=annotations,
    )


def _split_sort_key(name: str) -> tuple[int, int, str]:
    """Sort numeric split names numerically, others after them alphabetically."""
    return (0, int(name), "") if name.isdigit() else (1, 0, name)
