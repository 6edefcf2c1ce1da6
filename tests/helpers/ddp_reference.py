"""The fixed models and global batch that the single-process and the 2-process runs share."""

import torch

from train.models import CPCModel

GLOBAL_BATCH = 4
VIEWS = {"flow": 2, "rgb": 3}


def make_models() -> dict[str, CPCModel]:
    torch.manual_seed(0)
    return {v: CPCModel(in_channels=c, depth=18, width=0.125, num_blocks=4, pred_steps=2) for v, c in VIEWS.items()}


def make_batch() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return {v: torch.randn(GLOBAL_BATCH, 4, c, 5, 32, 32, generator=g) for v, c in VIEWS.items()}
