"""2-process gloo run: the CoCon loss and the DDP-averaged gradients equal the 1-process ones on the
same global batch (negatives gathered from every rank, with gradients). BatchNorm runs in eval mode so
that only the cross-rank loss is compared (in train mode each process normalises its own batch;
SyncBatchNorm does that across GPUs)."""

from __future__ import annotations

import torch

from tests.conftest import ROOT
from tests.helpers.ddp_reference import make_batch, make_models
from tests.helpers.ddp_result import assert_equals_one_process, torchrun_two_ranks
from train.methods.cocon.config import LossConfig
from train.methods.cocon.model import MultiViewModel
from train.methods.cocon.step import cocon_losses


def test_two_process_loss_and_gradients_equal_one_process(tmp_path):
    out = tmp_path / "ddp.pt"
    res = torchrun_two_ranks("-m", "tests.helpers.ddp_loss_worker", str(out), timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    model = MultiViewModel(make_models()).eval()
    one = cocon_losses(LossConfig(), model(make_batch()), cooperative=True, offset=0)
    one.total.backward()
    assert_equals_one_process(out, model, one, terms=5)   # 2 cpc, 1 sim, 1 sync, total


def test_torchrun_two_processes_trains_both_stages(sample_videos, tmp_path):
    """The whole trainer under torchrun with gloo: DistributedSampler, gathered negatives, rank-0 checkpoints."""
    from tests.conftest import run_cli
    store = tmp_path / "store"
    assert run_cli("run", "--videos", sample_videos, "--out", store, "--views", "rgb,flow_dis", "--no-progress") == 0
    res = torchrun_two_ranks("-m", "train.cocon",
                    "--config", str(ROOT / "configs" / "cocon_r18w0.125-64_1x3_3+3e_sample-rgb-flow.yaml"),
                    f"data.root={store}", f"out={tmp_path / 'runs'}", "data.views=[rgb, flow_dis]", "data.batch_size=2",
                    "data.repeats=1", "data.workers=0", "model.sizes={rgb: 32, flow_dis: 32}", "schedule.cpc_epochs=1",
                    "schedule.cocon_epochs=1", "progress=false")
    assert res.returncode == 0, res.stderr[-3000:]
    for stage in ("cpc-rgb", "cpc-flow_dis", "cocon"):
        state = torch.load(tmp_path / "runs" / "sample" / stage / "checkpoint.pth", weights_only=False)
        assert state["epoch"] == 1 and len(state["rng"]) == 2        # one RNG state per rank
    assert res.stderr.count("cocon epoch 1/1") == 1                  # rank 0 alone reports


def test_torchrun_finetune_gathers_every_test_window_once(motion_store, tmp_path):
    """Fine-tuning under torchrun: each rank tests its share of the windows; the gathered per-video probabilities
    equal a single process scoring every window with the final checkpoint."""
    import numpy as np

    from train.data import DenseClips, ViewAugment
    from train.engine.distributed import DistInfo
    from train.evaluation.metrics import video_probabilities
    from train.finetuner import predict_windows
    from train.methods import EncoderRequest, load_encoder
    from train.models import VideoClassifier

    res = torchrun_two_ranks("-m", "train.finetune",
                    "--config", str(ROOT / "configs" / "finetune_r18w0.125-64_sample-rgb-flow.yaml"),
                    f"data.root={motion_store}", f"out={tmp_path}", "name=ddp", "data.views=[flow_farneback]",
                    "model.init=", "model.width=0.125", "model.sizes={flow_farneback: 32}", "data.num_blocks=4",
                    "data.block_frames=2", "data.batch_size=2", "data.test_batch_size=2", "data.workers=0",
                    "data.splits=[]", "data.holdout=0.25", "data.repeats=1", "epochs=1",
                    "model.precise_bn_batches=2", "progress=false")
    assert res.returncode == 0, res.stderr[-3000:]
    unit = tmp_path / "ddp" / "holdout" / "labels100" / "flow_farneback"
    state = torch.load(unit / "checkpoint.pth", weights_only=False)
    assert len(state["rng"]) == 2
    model = VideoClassifier(load_encoder("", EncoderRequest("flow_farneback", 2, width=0.125, num_blocks=4)), 3)
    model.load_state_dict(state["model"])
    with np.load(unit / "test_probs.npz") as f:
        ids, probs = [str(i) for i in f["ids"]], f["probs"]
    test = DenseClips(motion_store, ["flow_farneback"], video_ids=ids, num_blocks=4, block_frames=2)
    assert len(ids) == 3 and len(test) == 9  # an odd window count: the sampler pads one rank with a repeat
    logits, videos = predict_windows(model, test, ViewAugment("flow", 32, train=False), "flow_farneback",
                                     DistInfo(), batch_size=3, workers=0, amp=False)
    np.testing.assert_allclose(video_probabilities(logits, videos, len(ids)), probs, rtol=1e-5, atol=1e-6)
