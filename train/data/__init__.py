"""Training data path: workers read and cut aligned uint8 clips from a store; the device does the arithmetic."""

from .augment import ViewAugment, view_kind
from .dataset import COCO17_FLIP_PAIRS, DataError, DenseClips, MultiViewClips, cut_clip, flip_permutation
from .layout import arrange, as_blocks, as_clip
from .sampling import crop_box, crop_side, dense_windows, even_windows, window_indices

__all__ = ["COCO17_FLIP_PAIRS", "DataError", "DenseClips", "MultiViewClips", "ViewAugment", "arrange", "as_blocks",
           "as_clip", "crop_box", "crop_side", "cut_clip", "dense_windows", "even_windows", "flip_permutation",
           "view_kind", "window_indices"]
