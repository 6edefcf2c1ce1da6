"""Run under torchrun: each rank takes its half of one fixed global batch, computes the CoCon loss with
negatives gathered from every rank, backpropagates through DDP, and rank 0 saves loss and gradients."""

import sys

import torch

from train.config import Config
from train.distributed import exit_process, mean_over_ranks, process_group
from train.trainer import MultiViewModel, Stage, compute_losses
from tests.helpers.ddp_reference import GLOBAL_BATCH, make_batch, make_models


def main(out: str) -> None:
    with process_group("cpu") as dist:
        cfg = Config()
        cfg.data.num_blocks, cfg.model.pred_steps = 4, 2
        model = MultiViewModel(make_models()).eval()
        net = torch.nn.parallel.DistributedDataParallel(model)
        batch = make_batch()
        per = GLOBAL_BATCH // dist.world_size
        local = {v: x[dist.rank * per:(dist.rank + 1) * per] for v, x in batch.items()}
        total, values, _ = compute_losses(cfg, Stage("cocon", list(batch), 1, True), net(local),
                                          dict(model.views.items()), offset=dist.rank * per)
        total.backward()
        values = mean_over_ranks(values, dist.device)
        if dist.is_main:
            grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
            torch.save({"values": values, "grads": grads}, out)


if __name__ == "__main__":
    main(sys.argv[1])
    exit_process(0)
