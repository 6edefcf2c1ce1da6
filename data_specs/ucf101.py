"""UCF101: ucfTrainTestlist (classInd.txt, trainlist0N.txt, testlist0N.txt) over a folder of videos."""

from __future__ import annotations

import re
from pathlib import Path

from ._files import RecordBuilder, VideoIndex, line_error, read_lines, require_annotations, strip_video_suffix
from .records import DatasetError, VideoList

SPLITS: tuple[str, ...] = ("1", "2", "3")
_FILE_CLASS = re.compile(r"^v_(?P<cls>.+?)_g\d+_c\d+$")  # v_ApplyEyeMakeup_g08_c01


def read_class_index(path: Path) -> list[str]:
    """Parse classInd.txt ("1 ApplyEyeMakeup", ids 1..N) into class names indexed by 0-based label."""
    by_id: dict[int, str] = {}
    for lineno, line in read_lines(path):
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise line_error(path, lineno, f"expected '<class id> <class name>', got {line!r}")
        class_id, name = int(parts[0]), parts[1]
        if class_id in by_id:
            raise line_error(path, lineno, f"class id {class_id} appears twice")
        by_id[class_id] = name
    if not by_id:
        raise DatasetError(f"{path} lists no classes")
    if sorted(by_id) != list(range(1, len(by_id) + 1)):
        raise DatasetError(f"{path}: class ids must run 1..{len(by_id)} without gaps")
    names = [by_id[i] for i in range(1, len(by_id) + 1)]
    if len(set(names)) != len(names):
        raise DatasetError(f"{path}: a class name appears twice")
    return names


class _Classes:
    """Class lookup by name (exact, then case-insensitive) for annotation lines."""

    def __init__(self, names: list[str], class_file: Path) -> None:
        self.names = names
        self.class_file = class_file
        self._exact = {n: i for i, n in enumerate(names)}
        self._folded = {n.casefold(): i for i, n in enumerate(names)}

    def label_of(self, name: str) -> int | None:
        """0-based label of a class name, or None."""
        found = self._exact.get(name)
        return found if found is not None else self._folded.get(name.casefold())

    def label_for_line(self, path: Path, lineno: int, line: str) -> tuple[str, int]:
        """Return (entry as written, label) of one trainlist/testlist line, checking its class."""
        parts = line.split()
        if len(parts) not in (1, 2) or (len(parts) == 2 and not parts[1].isdigit()):
            raise line_error(path, lineno, f"expected '<Class>/<video file> [<class id>]', got {line!r}")
        entry = parts[0].replace("\\", "/")
        by_id = self._label_from_id(path, lineno, entry, parts[1]) if len(parts) == 2 else None
        folder, _, file_name = entry.rpartition("/")
        class_name = folder.rsplit("/", 1)[-1]
        if not class_name:  # no class folder in the entry: fall back on v_<Class>_gXX_cXX
            match = _FILE_CLASS.match(strip_video_suffix(file_name))
            class_name = match["cls"] if match else ""
        by_name = self.label_of(class_name) if class_name else None
        if class_name and by_name is None and (folder or by_id is None):
            raise line_error(path, lineno, f"class {class_name!r} of {entry} is not in {self.class_file}")
        if by_id is not None and by_name is not None and by_id != by_name:
            raise line_error(
                path, lineno,
                f"{entry} is in folder {class_name!r} but its class id {by_id + 1} is {self.names[by_id]!r}",
            )
        label = by_id if by_id is not None else by_name
        if label is None:
            raise line_error(path, lineno, f"cannot tell the class of {entry!r}")
        return entry, label

    def _label_from_id(self, path: Path, lineno: int, entry: str, text: str) -> int:
        """0-based label from a 1-based class id, checked against classInd."""
        class_id = int(text)
        if not 1 <= class_id <= len(self.names):
            raise line_error(path, lineno, f"class id {class_id} of {entry} is not in {self.class_file}")
        return class_id - 1


def split_files(annotations: Path) -> list[tuple[str, str, Path]]:
    """Return (split, subset, list file) for each trainlist0N/testlist0N pair present in the folder."""
    found: list[tuple[str, str, Path]] = []
    for split in SPLITS:
        train = annotations / f"trainlist0{split}.txt"
        test = annotations / f"testlist0{split}.txt"
        if train.is_file() != test.is_file():
            have, lack = (train, test) if train.is_file() else (test, train)
            raise DatasetError(f"UCF101 annotations folder {annotations} has {have.name} but lacks {lack.name}")
        if train.is_file():
            found += [(split, "train", train), (split, "test", test)]
    if not found:
        raise DatasetError(
            f"UCF101 annotations folder {annotations} has no trainlist0N.txt/testlist0N.txt pair (N = 1, 2, 3)"
        )
    return found


def load_ucf101(videos: Path, annotations: Path | None) -> VideoList:
    """Load UCF101 from its videos folder (class folders or flat) and its ucfTrainTestlist folder."""
    ann = require_annotations(annotations, "UCF101", "the ucfTrainTestlist folder", folder=True)
    class_file = ann / "classInd.txt"
    if not class_file.is_file():
        raise DatasetError(f"UCF101 annotations folder {ann} lacks classInd.txt")
    classes = _Classes(read_class_index(class_file), class_file)
    lists = split_files(ann)
    builder = RecordBuilder(VideoIndex.build(videos))
    for split, subset, list_file in lists:
        for lineno, line in read_lines(list_file):
            entry, label = classes.label_for_line(list_file, lineno, line)
            class_name = classes.names[label]
            stem = strip_video_suffix(entry.rsplit("/", 1)[-1])
            builder.add(
                f"{class_name}/{stem}", entry,
                label=label, label_name=class_name, split=split, subset=subset,
                where=f"{list_file} line {lineno}", folder_hint=class_name,
            )
    return builder.finish("ucf101", classes.names, ann)
