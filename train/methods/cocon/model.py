"""CoCon's multi-view model: one CPC model (f, g, phi) per view, each run on its own view's input."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ...models import CPCModel


class MultiViewModel(nn.Module):
    """One CPCModel per view; forward runs each on its own input."""

    def __init__(self, models: dict[str, CPCModel]) -> None:
        super().__init__()
        self.views = nn.ModuleDict(models)

    def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, Any]:
        return {name: self.views[name](x) for name, x in inputs.items()}


def build_view_model(model_cfg: Any, num_blocks: int, channels: int) -> CPCModel:
    """The CPC model of one view, as the config's `model` section says."""
    m = model_cfg
    return CPCModel(in_channels=channels, depth=m.depth, width=m.width, num_blocks=num_blocks,
                    pred_steps=m.pred_steps, dropout=m.dropout, context_norm=m.context_norm,
                    predictor_init=m.predictor_init, track_running_stats=m.bn_running_stats)
