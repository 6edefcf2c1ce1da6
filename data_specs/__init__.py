"""Dataset specs: turn UCF101, HMDB51, Kinetics-400 or a plain folder on disk into one list of videos."""

from ._files import VIDEO_EXTENSIONS
from .records import DatasetError, VideoList, VideoRecord
from .registry import DATASETS, load_video_list

__all__ = ["DATASETS", "VIDEO_EXTENSIONS", "DatasetError", "VideoList", "VideoRecord", "load_video_list"]
