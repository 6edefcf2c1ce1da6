"""A plain folder of videos: flat (no classes) or one sub-folder per class; no splits."""

from __future__ import annotations

from pathlib import Path

from ._files import VideoIndex, strip_video_suffix
from .records import DatasetError, VideoList, VideoRecord, build_video_list


def load_folder(videos: Path, annotations: Path | None) -> VideoList:
    """List the videos of a flat folder (label -1) or of a folder of class folders (label = sorted class index)."""
    if annotations is not None:
        raise DatasetError(
            f"the folder dataset takes no annotations (got {annotations}); "
            "its classes are the sub-folders of the videos folder"
        )
    index = VideoIndex.build(videos)
    top = [rel for rel in index.files if "/" not in rel]
    nested = [rel for rel in index.files if "/" in rel]
    if top and nested:
        raise DatasetError(
            f"{index.root} mixes videos at the top level ({top[0]}) with class folders "
            f"({nested[0].split('/', 1)[0]}/); put every video in a class folder or none"
        )
    classes = sorted({rel.split("/", 1)[0] for rel in nested})
    label_of = {name: i for i, name in enumerate(classes)}
    records = []
    for rel, path in index.files.items():
        class_name = rel.split("/", 1)[0] if nested else ""
        records.append(VideoRecord(strip_video_suffix(rel), path, label_of.get(class_name, -1), class_name, {}))
    return build_video_list("folder", str(index.root), classes, records)
