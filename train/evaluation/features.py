"""Features of whole videos and of their blocks from a pre-trained view model, for retrieval and analyses.

Video feature: F(V) = g(f(.)) spatially averaged (`CPCModel.represent`) for evenly spaced windows of the video,
averaged, L2-normalised. Block features: z' = Pool(f(block)) of consecutive blocks (CoCon's alignment).
"""

from __future__ import annotations

import sys

import numpy as np
import torch
from tqdm import tqdm

from ..data import DenseClips, MultiViewClips, ViewAugment
from ..distributed import DistInfo
from ..loop import epoch_loader
from ..models import CPCModel
from .metrics import l2_normalise_rows


def video_features(model: CPCModel, dataset: DenseClips, augment: ViewAugment, view: str, dist: DistInfo,
                   batch_size: int, workers: int, progress: bool = False, desc: str = "features",
                   loader_kind: str = "slots") -> np.ndarray:
    """(V, D) L2-normalised mean of F over every window `dataset` holds of each of its V videos."""
    model.eval()
    sums = np.zeros((len(dataset.records), model.out_dim))
    counts = np.zeros(len(dataset.records))
    loader = epoch_loader(dataset, dist, batch_size, workers, train=False, seed=0, epoch=0, loader=loader_kind)
    with torch.no_grad():
        for batch in tqdm(loader, desc=desc, disable=not progress, leave=False, file=sys.stderr, dynamic_ncols=True):
            x = augment(batch[view].to(dist.device, non_blocking=True), dataset.num_blocks)
            feats = model.represent(x).double().cpu().numpy()
            videos = batch["video"].numpy()
            np.add.at(sums, videos, feats)
            np.add.at(counts, videos, 1)
    if (counts == 0).any():
        raise ValueError(f"{int((counts == 0).sum())} videos got no window")
    return l2_normalise_rows(sums / counts[:, None])


def block_features(model: CPCModel, dataset: MultiViewClips, augment: ViewAugment, view: str, dist: DistInfo,
                   indices: list[int]) -> np.ndarray:
    """(len(indices), N, D) pooled, L2-normalised features z' of the N blocks of the centred window of each
    chosen video (N = the dataset's num_blocks; a short video's window is spread over all of it)."""
    model.eval()
    out = []
    with torch.no_grad():
        for i in indices:
            clip = dataset[i][view].unsqueeze(0).to(dist.device)
            z = model.encode(augment(clip, dataset.num_blocks))
            out.append(model.pool_blocks(z)[0].double().cpu().numpy())
    return np.stack(out)
