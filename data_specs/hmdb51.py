"""HMDB51: <class>_test_split<N>.txt files (flag 1 = train, 2 = test, 0 = unused) over a folder of videos."""

from __future__ import annotations

import re
from pathlib import Path

from ._files import RecordBuilder, VideoIndex, line_error, read_lines, require_annotations, strip_video_suffix
from .records import DatasetError, VideoList

_SPLIT_FILE = re.compile(r"^(?P<cls>.+)_test_split(?P<split>\d+)\.txt$")
_FLAGS = {"0": "", "1": "train", "2": "test"}


def split_files(annotations: Path) -> list[tuple[str, str, Path]]:
    """Return (class, split, file) for every <class>_test_split<N>.txt in the folder, sorted."""
    found = []
    for path in annotations.iterdir():
        match = _SPLIT_FILE.match(path.name)
        if match and path.is_file():
            found.append((match["cls"], str(int(match["split"])), path))
    if not found:
        raise DatasetError(f"HMDB51 annotations folder {annotations} has no <class>_test_split<N>.txt files")
    return sorted(found, key=lambda t: (t[0], int(t[1])))


def load_hmdb51(videos: Path, annotations: Path | None) -> VideoList:
    """Load HMDB51 from its videos folder (class folders or flat) and its split-file folder."""
    ann = require_annotations(
        annotations, "HMDB51", "the testTrainMulti_7030_splits folder of <class>_test_split<N>.txt", folder=True
    )
    files = split_files(ann)
    classes = sorted({cls for cls, _, _ in files})
    label_of = {name: i for i, name in enumerate(classes)}
    builder = RecordBuilder(VideoIndex.build(videos))
    for cls, split, path in files:
        for lineno, line in read_lines(path):
            parts = line.split()
            if len(parts) != 2 or parts[1] not in _FLAGS:
                raise line_error(path, lineno, f"expected '<video file> <0|1|2>', got {line!r}")
            name, flag = parts
            if _FLAGS[flag]:
                builder.add(
                    f"{cls}/{strip_video_suffix(name)}", f"{cls}/{name}",
                    label=label_of[cls], label_name=cls, split=split, subset=_FLAGS[flag],
                    where=f"{path} line {lineno}", folder_hint=cls,
                )
    return builder.finish("hmdb51", classes, ann)
