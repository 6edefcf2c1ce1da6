"""`python -m train.cocon --config configs/X.yaml [key=value ...] [--resume]`: CoCon pre-training.

Stage `cpc` trains each view alone with L_cpc (one run folder per view); stage `cocon` trains all views
together with L_cocon, each starting from its `cpc` checkpoint; `both` (the default) runs one after the
other, as the paper does (UCF101: 100 then 60 epochs). Works alone or under
`torchrun --nproc_per_node N -m train.cocon ...` (DistributedDataParallel, negatives from every rank).
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

import torch

from .command import command_parser, run_command
from .config import Config
from .distributed import exit_process, process_group
from .trainer import CHECKPOINT, Stage, StageRunner, build_datasets


def plan_stages(cfg: Config) -> list[Stage]:
    """The stages a config asks for, in order, with where each cocon view starts from."""
    views = list(dict.fromkeys(cfg.data.views))
    stages = []
    if cfg.schedule.stage in ("cpc", "both"):
        stages += [Stage(f"cpc-{v}", [v], cfg.schedule.cpc_epochs, cooperative=False) for v in views]
    if cfg.schedule.stage in ("cocon", "both"):
        init = {v: cfg.run_dir / f"cpc-{v}" / CHECKPOINT for v in views}
        stages.append(Stage("cocon", views, cfg.schedule.cocon_epochs, cooperative=True, init_from=init))
    return stages


def build_parser() -> argparse.ArgumentParser:
    return command_parser("python -m train.cocon", __doc__,
                          "Overrides are dotted keys of the config, e.g. data.batch_size=8 optim.lr=3e-4 "
                          "schedule.stage=cocon name=my_run. The resolved config is saved in every stage folder. "
                          "Exit status: 0 done, 2 a usage error, 4 the loss diverged.",
                          "continue the run from its checkpoints (finished stages are skipped)")


def check_data(cfg: Config) -> None:
    """Build the train and validation sets over all views once, so that a missing view, a video missing
    from a view or an empty split stops the run before any training (one line, with the ids)."""
    build_datasets(cfg, list(dict.fromkeys(cfg.data.views)))


def run(cfg: Config, resume: bool) -> int:
    check_data(cfg)
    with process_group(cfg.device) as dist:
        torch.manual_seed(cfg.seed + dist.rank)
        for stage in plan_stages(cfg):
            runner = StageRunner(cfg, stage, dist, resume=resume)
            if runner.epoch >= stage.epochs:
                if dist.is_main:
                    print(f"{stage.name}: finished earlier ({runner.ckpt_path})", file=sys.stderr)
                continue
            runner.run()
        if dist.is_main:
            print(f"run folder {cfg.run_dir}: checkpoints and config.yaml per stage; "
                  f"TensorBoard: tensorboard --logdir {cfg.run_dir}", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(args.config, args.overrides, Config, lambda cfg: run(cfg, args.resume))


if __name__ == "__main__":
    exit_process(main())
