"""`python -m train.cocon --config configs/X.yaml [key=value ...] [--resume]`: CoCon pre-training.

Stage `cpc` trains each view alone with L_cpc (one run folder per view); stage `cocon` trains all views
together with L_cocon, each starting from its `cpc` checkpoint; `both` (the default) runs one after the
other, as the paper does (UCF101: 100 then 60 epochs). Works alone or under
`torchrun --nproc_per_node N -m train.cocon ...` (DistributedDataParallel, negatives from every rank).
The method itself: `train/methods/cocon/`; the engine that trains it: `train/engine/`.
"""

from __future__ import annotations

from collections.abc import Sequence

from .engine.distributed import exit_process
from .engine.pretrain import pretrain_main
from .methods import get_method

EPILOG = ("Overrides are dotted keys of the config, e.g. data.batch_size=8 optim.lr=3e-4 schedule.stage=cocon "
          "name=my_run. The resolved config is saved in every stage folder.")


def main(argv: Sequence[str] | None = None) -> int:
    return pretrain_main(get_method("cocon"), "python -m train.cocon", __doc__, EPILOG, argv)


if __name__ == "__main__":
    exit_process(main())
