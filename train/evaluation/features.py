"""Features of whole videos and of their blocks from a pre-trained view model, for retrieval and analyses.

Any method's encoder (`train.methods.Encoder`). Video feature: the encoder's retrieval feature (CoCon: its clip
feature F(V) = g(f(.)) spatially averaged; TCLR: the time-unpooled map) for the clips the dataset cuts of the
video, averaged, L2-normalised. Block features: one vector
per block or time cell (CoCon: z' = Pool(f(block))) of consecutive blocks, for the alignment analysis.
"""

from __future__ import annotations

import sys

import numpy as np
import torch
from tqdm import tqdm

from ..data import DenseClips, MultiViewClips, ViewAugment, arrange
from ..engine.batches import epoch_loader
from ..engine.distributed import DistInfo
from ..methods import Encoder, retrieval_feature
from .metrics import l2_normalise_rows


def video_features(model: Encoder, dataset: DenseClips, augment: ViewAugment, view: str, dist: DistInfo,
                   batch_size: int, workers: int, progress: bool = False, desc: str = "features",
                   loader_kind: str = "slots") -> np.ndarray:
    """(V, D) L2-normalised mean of the retrieval feature over every window `dataset` holds of each of its V
    videos (D: the feature's size, which need not be the encoder's out_dim)."""
    model.eval()
    sums: np.ndarray | None = None
    counts = np.zeros(len(dataset.records))
    loader = epoch_loader(dataset, dist, batch_size, workers, train=False, seed=0, epoch=0, loader=loader_kind)
    with torch.no_grad():
        for batch in tqdm(loader, desc=desc, disable=not progress, leave=False, file=sys.stderr, dynamic_ncols=True):
            x = arrange(augment(batch[view].to(dist.device, non_blocking=True)), model.input_layout,
                        dataset.num_blocks)
            feats = retrieval_feature(model, x).double().cpu().numpy()
            if sums is None:
                sums = np.zeros((len(dataset.records), feats.shape[1]))
            videos = batch["video"].numpy()
            np.add.at(sums, videos, feats)
            np.add.at(counts, videos, 1)
    if sums is None or (counts == 0).any():
        raise ValueError(f"{int((counts == 0).sum())} videos got no window")
    return l2_normalise_rows(sums / counts[:, None])


def block_features(model: Encoder, dataset: MultiViewClips, augment: ViewAugment, view: str, dist: DistInfo,
                   indices: list[int]) -> np.ndarray:
    """(len(indices), N, D) pooled, L2-normalised features z' of the N blocks of the centred window of each
    chosen video (N = the dataset's num_blocks; a short video's window is spread over all of it)."""
    model.eval()
    out = []
    with torch.no_grad():
        for i in indices:
            clip = dataset[i][view].unsqueeze(0).to(dist.device)
            x = arrange(augment(clip), model.input_layout, dataset.num_blocks)
            out.append(model.block_features(x)[0].double().cpu().numpy())
    return np.stack(out)
