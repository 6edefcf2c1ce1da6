"""Kinetics-400: official CSVs (label,youtube_id,time_start,time_end,split[,is_cc]) over a folder of clips."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

from ._files import RecordBuilder, VideoIndex, line_error, read_text, require_annotations
from .records import DatasetError, VideoList

CSV_NAMES: tuple[str, ...] = ("train.csv", "validate.csv", "val.csv", "test.csv")
_SUBSETS = {"train": "train", "val": "val", "validate": "val", "validation": "val", "test": "test"}
_REQUIRED = ("youtube_id", "time_start", "time_end")
UNLABELLED = "unlabelled"


@dataclass(frozen=True)
class KineticsRow:
    """One CSV row: a clip of a YouTube video, its label ("" when none) and subset."""

    label: str
    youtube_id: str
    start: int
    end: int
    subset: str
    where: str  # "<csv> line N"

    @property
    def key(self) -> str:
        """The clip's canonical file stem, {youtube_id}_{start:06d}_{end:06d}."""
        return f"{self.youtube_id}_{self.start:06d}_{self.end:06d}"


def _time(text: str) -> int:
    """Parse a CSV time ("14" or "14.0") to whole seconds."""
    return int(float(text))


def read_kinetics_csv(path: Path) -> list[KineticsRow]:
    """Read one official Kinetics CSV; the split comes from its column or, failing that, the file name."""
    reader = csv.reader(io.StringIO(read_text(path)))
    header = next((row for row in reader if any(cell.strip() for cell in row)), None)
    columns = [cell.strip().lower() for cell in header or []]
    if not all(name in columns for name in _REQUIRED):
        got = ",".join(header) if header else "an empty file"
        raise DatasetError(f"{path}: expected a header with label,youtube_id,time_start,time_end,split, got {got!r}")
    col = {name: i for i, name in enumerate(columns)}
    default_subset = _SUBSETS.get(path.stem.lower(), "")
    rows = []
    for row in reader:
        if not any(cell.strip() for cell in row):
            continue
        lineno = reader.line_num
        cells = {name: (row[i].strip() if i < len(row) else "") for name, i in col.items()}
        if not cells["youtube_id"]:
            raise line_error(path, lineno, f"no youtube_id in {','.join(row)!r}")
        try:
            start, end = _time(cells["time_start"]), _time(cells["time_end"])
        except ValueError:
            raise line_error(path, lineno, f"bad time_start/time_end in {','.join(row)!r}") from None
        split_text = cells.get("split", "") or default_subset
        if not split_text:
            raise line_error(path, lineno, "no split given and the file name is not train/val/validate/test.csv")
        subset = _SUBSETS.get(split_text.lower())
        if subset is None:
            raise line_error(path, lineno, f"split {split_text!r} is not train, val, validate or test")
        rows.append(
            KineticsRow(cells.get("label", ""), cells["youtube_id"], start, end, subset, f"{path} line {lineno}")
        )
    return rows


def csv_files(annotations: Path) -> list[Path]:
    """The CSVs to read: the file itself, or train/validate/val/test.csv of a folder."""
    if annotations.is_file():
        return [annotations]
    found = [annotations / name for name in CSV_NAMES if (annotations / name).is_file()]
    if not found:
        raise DatasetError(f"Kinetics-400 annotations folder {annotations} has none of {', '.join(CSV_NAMES)}")
    return found


def _id_label(label: str) -> str:
    """A label as an id folder: spaces (and slashes) become underscores."""
    return label.replace(" ", "_").replace("/", "_")


def load_kinetics400(videos: Path, annotations: Path | None) -> VideoList:
    """Load Kinetics-400 clips {youtube_id}_{start:06d}_{end:06d}.<ext> (or {youtube_id}.<ext>) under videos."""
    ann = require_annotations(
        annotations, "Kinetics-400", "a CSV file or a folder with train.csv, validate.csv, test.csv", folder=None
    )
    rows = [row for path in csv_files(ann) for row in read_kinetics_csv(path)]
    train_labels = {r.label for r in rows if r.subset == "train" and r.label}
    classes = sorted(train_labels or {r.label for r in rows if r.label})
    label_of = {name: i for i, name in enumerate(classes)}
    builder = RecordBuilder(VideoIndex.build(videos))
    for row in rows:
        if row.label and row.label not in label_of:
            raise DatasetError(f"{row.where}: label {row.label!r} is not one of the train classes")
        folder = _id_label(row.label) if row.label else UNLABELLED
        builder.add(
            f"{folder}/{row.key}", row.key,
            label=label_of.get(row.label, -1), label_name=row.label, split="1", subset=row.subset,
            where=row.where, folder_hint=row.label, fallbacks=(row.youtube_id,),
        )
    return builder.finish("kinetics400", classes, ann)
