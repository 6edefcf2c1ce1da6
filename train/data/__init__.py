"""Training data path: workers read and cut aligned uint8 clips from a store; the device does the arithmetic."""

from .augment import ViewAugment
from .dataset import COCO17_FLIP_PAIRS, DataError, DenseClips, MultiViewClips, cut_clip, flip_permutation
from .sampling import crop_box, crop_side, dense_windows, window_indices

__all__ = ["COCO17_FLIP_PAIRS", "DataError", "DenseClips", "MultiViewClips", "ViewAugment", "crop_box", "crop_side",
           "cut_clip", "dense_windows", "flip_permutation", "window_indices"]
