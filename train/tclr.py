"""`python -m train.tclr --config configs/tclr_*.yaml [key=value ...] [--resume]`: TCLR pre-training.

One stage (`<out>/<name>/tclr/`): per video one window, its sparse clip and the dense clips tiling it, each
augmented twice on the device; L_IC + L_LL + L_GL per view; with `loss.cooperative=true` and several views,
one encoder per view plus CoCon's L_sim and L_sync between them. Works alone or under
`torchrun --nproc_per_node N -m train.tclr ...` (negatives of L_IC from every rank). The method itself:
`train/methods/tclr/`; the engine that trains it: `train/engine/`; the guide: docs/tclr.md.
"""

from __future__ import annotations

from collections.abc import Sequence

from .engine.distributed import exit_process
from .engine.pretrain import pretrain_main
from .methods import get_method

EPILOG = ("Overrides are dotted keys of the config, e.g. data.batch_size=8 optim.lr=3e-4 loss.ll_reduction=mean "
          "name=my_run. The resolved config is saved in the stage folder.")


def main(argv: Sequence[str] | None = None) -> int:
    return pretrain_main(get_method("tclr"), "python -m train.tclr", __doc__, EPILOG, argv)


if __name__ == "__main__":
    exit_process(main())
