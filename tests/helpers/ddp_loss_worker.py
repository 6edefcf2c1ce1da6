"""Run under torchrun: each rank takes its half of one fixed global batch, computes the CoCon loss with
negatives gathered from every rank, backpropagates through DDP, and rank 0 saves loss and gradients."""

import sys

import torch

from train.engine.distributed import exit_process, process_group
from train.methods.cocon.config import LossConfig
from train.methods.cocon.model import MultiViewModel
from train.methods.cocon.step import cocon_losses
from tests.helpers.ddp_reference import GLOBAL_BATCH, make_batch, make_models
from tests.helpers.ddp_result import save_rank_result


def main(out: str) -> None:
    with process_group("cpu") as dist:
        model = MultiViewModel(make_models()).eval()
        net = torch.nn.parallel.DistributedDataParallel(model)
        batch = make_batch()
        per = GLOBAL_BATCH // dist.world_size
        local = {v: x[dist.rank * per:(dist.rank + 1) * per] for v, x in batch.items()}
        losses = cocon_losses(LossConfig(), net(local), cooperative=True, offset=dist.rank * per)
        losses.total.backward()
        save_rank_result(out, dist, model, losses)


if __name__ == "__main__":
    main(sys.argv[1])
    exit_process(0)
