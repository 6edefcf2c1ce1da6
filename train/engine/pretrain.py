"""Self-supervised pre-training of any method: its stages in order, each trained by the engine's Runner from
scratch or from its checkpoint; a finished stage is skipped. `python -m train.<method>` is this plus the
method's schema (`train.engine.command.method_main`)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import torch

from .command import command_parser, run_command
from .distributed import process_group
from .runner import Runner


def pretrain(method: Any, cfg: Any, resume: bool) -> int:
    """Check the data once, then train each of `method.stages(cfg)` (a `train.methods.Method`); 0 when done."""
    method.check_data(cfg)
    with process_group(cfg.device) as dist:
        torch.manual_seed(cfg.seed + dist.rank)
        for stage in method.stages(cfg):
            runner = Runner(method.job(cfg, stage, dist), dist, resume=resume)
            if runner.done:
                if dist.is_main:
                    print(f"{stage.name}: finished earlier ({runner.ckpt_path})", file=sys.stderr)
                continue
            runner.run()
        if dist.is_main:
            print(f"run folder {cfg.run_dir}: checkpoints and config.yaml per stage; "
                  f"TensorBoard: tensorboard --logdir {cfg.run_dir}", file=sys.stderr)
    return 0


EXIT_STATUSES = ("Exit status: 0 done, 2 a usage error, 4 the loss diverged, 130 Ctrl-C, 143 SIGTERM (both keep "
                 "the last epoch's checkpoint: --resume continues).")


def pretrain_main(method: Any, prog: str, doc: str, epilog: str, argv: Sequence[str] | None = None) -> int:
    """The whole `python -m train.<method> --config FILE [key=value ...] [--resume]` command of a method; its
    help ends with the exit statuses every method's command shares."""
    args = command_parser(prog, doc, f"{epilog} {EXIT_STATUSES}", "continue the run from its checkpoints (finished stages are "
                                             "skipped)").parse_args(argv)
    return run_command(args.config, args.overrides, method.schema, lambda cfg: pretrain(method, cfg, args.resume))
