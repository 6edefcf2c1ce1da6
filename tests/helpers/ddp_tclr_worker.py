"""Run under torchrun: each rank takes its half of one fixed global batch of TCLR clips, computes L_TCLR with
L_IC's negatives gathered from every rank, backpropagates through DDP, and rank 0 saves loss and gradients."""

import sys

import torch

from train.engine.distributed import exit_process, process_group
from train.methods.tclr.config import LossConfig
from train.methods.tclr.model import TCLRInputs, TCLRViews
from train.methods.tclr.step import tclr_losses
from train.models.r3d import TCLRModel
from tests.helpers.ddp_result import save_rank_result

GLOBAL_BATCH, FRAMES, CELLS, SIZE = 4, 8, 2, 32


def make_model() -> TCLRViews:
    torch.manual_seed(0)
    return TCLRViews({"rgb": TCLRModel(3, width=0.125)}).eval()   # eval: BatchNorm does not depend on the split


def make_inputs(first: int, count: int) -> dict[str, TCLRInputs]:
    """Videos first..first+count of the fixed global batch (2 copies of the sparse clip, 2 x CELLS dense)."""
    g = torch.Generator().manual_seed(1)
    sparse = torch.randn(GLOBAL_BATCH * 2, 3, FRAMES, SIZE, SIZE, generator=g)
    dense = torch.randn(GLOBAL_BATCH * 2 * CELLS, 3, FRAMES, SIZE, SIZE, generator=g)
    return {"rgb": TCLRInputs(sparse[2 * first:2 * (first + count)],
                              dense[2 * CELLS * first:2 * CELLS * (first + count)])}


def main(out: str) -> None:
    with process_group("cpu") as dist:
        model = make_model()
        net = torch.nn.parallel.DistributedDataParallel(model)
        per = GLOBAL_BATCH // dist.world_size
        losses = tclr_losses(LossConfig(), net(make_inputs(dist.rank * per, per)), offset=dist.rank * per)
        losses.total.backward()
        save_rank_result(out, dist, model, losses)


if __name__ == "__main__":
    main(sys.argv[1])
    exit_process(0)
