"""`python -m train.tclr`: sampling from a store, two augmentations, learning, cooperative gradients, DDP
equals one process, exact resume after a kill, and fine-tuning/evaluation of a TCLR checkpoint through the
unchanged downstream commands."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import ROOT, kill_after_first_epoch, run_cli
from tests.helpers import ddp_tclr_worker as ddp
from tests.helpers.ddp_result import assert_equals_one_process, torchrun_two_ranks
from train.data.clip_augment import ClipAugment
from train.data.tclr_clips import TCLRClips, TCLRClipSpec, split_sparse_dense
from train.methods.tclr.config import LossConfig
from train.methods.tclr.job import two_copies
from train.methods.tclr.model import TCLRInputs, TCLRViews
from train.methods.tclr.step import tclr_losses
from train.models.r3d import TCLRModel
from train.tclr import main as tclr_main

CONFIG = ROOT / "configs" / "tclr_r3d18w0.125-32_1x4_4e_sample-rgb.yaml"
TINY = ["data.workers=0", "progress=false", "data.repeats=1", "data.batch_size=3", "log_every=1"]


@pytest.fixture(scope="module")
def store(sample_videos, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tclr") / "store"
    assert run_cli("run", "--videos", sample_videos, "--out", root, "--views", "rgb,flow_dis", "--no-progress") == 0
    return root


def _args(store: Path, out: Path, *extra: str) -> list[str]:
    return ["--config", str(CONFIG), f"data.root={store}", f"out={out}", *TINY, *extra]


def test_clips_come_from_the_stored_frames_and_dense_clips_tile_the_sparse_span(store):
    spec = TCLRClipSpec(clip_frames=8, sparse_step=2, local_clips=2)
    clips = TCLRClips(store, ["rgb"], spec, train=False)
    item = clips[0]
    idx = clips.indices(0, None)
    stored = clips.store.read(clips.video_ids[0], "rgb", 0, clips.num_frames[0])
    clips.store.close()
    # crop_fraction 1, no flip at evaluation: the item is the stored frames at the indices, cut to a square
    side = min(stored.shape[1:3])
    top, left = (stored.shape[1] - side) // 2, (stored.shape[2] - side) // 2
    want = stored[np.concatenate([idx.sparse, idx.dense.ravel()]), top:top + side, left:left + side]
    assert item["rgb"].shape == (8 * 3, side, side, 3)
    assert np.array_equal(item["rgb"].numpy(), want)
    # the 2 dense clips of 8 consecutive frames tile the 16-frame window; dense clip j spans sparse cell j
    assert np.array_equal(idx.dense.ravel(), idx.window) and np.array_equal(idx.sparse, idx.window[::2])
    for j in range(2):   # dense clip j holds sparse cell j's frames and the frames between them
        assert np.array_equal(idx.dense[j][::2], idx.sparse[4 * j:4 * (j + 1)])
    sparse, dense = split_sparse_dense(item["rgb"][None], spec)
    assert torch.equal(sparse[0], item["rgb"][:8]) and torch.equal(dense[1], item["rgb"][16:])


def test_two_augmentations_differ_and_the_frames_of_a_clip_share_one_draw():
    g = torch.Generator().manual_seed(0)
    frame = torch.randint(0, 256, (1, 1, 48, 64, 3), dtype=torch.uint8, generator=g)
    clips = frame.expand(5, 6, 48, 64, 3).contiguous()          # 5 clips of 6 identical frames
    out = two_copies(ClipAugment("rgb", 32, train=True), clips, torch.Generator().manual_seed(1))
    assert out.shape == (10, 3, 6, 32, 32)
    for c in range(10):   # one draw per clip: identical input frames stay identical
        assert torch.equal(out[c, :, 1:], out[c, :, :1].expand_as(out[c, :, 1:]))
    for v in range(5):    # the two copies of a clip come from independent draws
        assert not torch.allclose(out[2 * v], out[2 * v + 1])


def _random_inputs(views: dict[str, int], videos: int, seed: int, size: int = 32) -> dict[str, TCLRInputs]:
    g = torch.Generator().manual_seed(seed)
    return {v: TCLRInputs(torch.randn(videos * 2, c, 8, size, size, generator=g),
                          torch.randn(videos * 4, c, 8, size, size, generator=g)) for v, c in views.items()}


def test_a_tiny_tclr_model_overfits_a_handful_of_clips():
    torch.manual_seed(0)
    model = TCLRViews({"rgb": TCLRModel(3, width=0.125)})
    inputs = _random_inputs({"rgb": 3}, videos=4, seed=2, size=16)
    optim = torch.optim.Adam(model.parameters(), lr=3e-3)
    cfg = LossConfig(ll_reduction="mean")
    first = last = None
    for _ in range(15):
        out = tclr_losses(cfg, model(inputs), offset=0)
        optim.zero_grad()
        out.total.backward()
        optim.step()
        first = first if first is not None else float(out.total.detach())
        last = float(out.total.detach())
    # measured: 32.6 -> 0.15 (a factor ~210) in 15 steps; asked: at least a factor 10
    assert last < first / 10, (first, last)


def test_cooperative_tclr_gradients_reach_every_views_encoder():
    torch.manual_seed(0)
    model = TCLRViews({"rgb": TCLRModel(3, width=0.125), "flow": TCLRModel(2, width=0.125)})
    out = tclr_losses(LossConfig(cooperative=True), model(_random_inputs({"rgb": 3, "flow": 2}, 3, seed=3)), 0)
    assert {"sim/flow-rgb", "sync/flow-rgb", "ic_global/rgb", "gl/flow", "ll/rgb", "ic_local/flow"} <= set(out.terms)
    expected = sum(out.terms[f"tclr/{v}"] for v in ("rgb", "flow")) + out.terms["sim/flow-rgb"] + out.terms["sync/flow-rgb"]
    assert float(out.total.detach()) == pytest.approx(expected, rel=1e-5)
    out.total.backward()
    for view in ("rgb", "flow"):
        grads = [p.grad for p in model.views[view].backbone.parameters()]
        assert all(g is not None and g.abs().sum() > 0 for g in grads), view
    # the cooperative terms alone reach both encoders too
    model.zero_grad()
    coop = tclr_losses(LossConfig(cooperative=True, lambda_sim=1.0, lambda_sync=1.0),
                       model(_random_inputs({"rgb": 3, "flow": 2}, 3, seed=3)), 0)
    (coop.total - sum(coop.total.new_tensor(coop.terms[f"tclr/{v}"]) for v in ("rgb", "flow"))).backward()
    for view in ("rgb", "flow"):
        assert model.views[view].backbone.stem[0].weight.grad.abs().sum() > 0, view


def test_two_process_tclr_loss_and_gradients_equal_one_process(tmp_path):
    out = tmp_path / "ddp.pt"
    res = torchrun_two_ranks("-m", "tests.helpers.ddp_tclr_worker", str(out), timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    model = ddp.make_model()
    one = tclr_losses(LossConfig(), model(ddp.make_inputs(0, ddp.GLOBAL_BATCH)), offset=0)
    one.total.backward()
    assert_equals_one_process(out, model, one, terms=6)   # 4 terms, tclr/rgb, total


def test_kill_during_training_then_resume_equals_uninterrupted(store, tmp_path):
    cmd = [sys.executable, "-m", "train.tclr"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    ref = subprocess.run(cmd + _args(store, tmp_path / "ref", "epochs=2"), cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=600)
    assert ref.returncode == 0, ref.stderr[-2000:]
    metrics = tmp_path / "killed" / "sample-tclr" / "tclr" / "metrics.jsonl"
    done = kill_after_first_epoch(cmd + _args(store, tmp_path / "killed", "epochs=2"), metrics, env)
    assert done == 1
    resumed = subprocess.run(cmd + _args(store, tmp_path / "killed", "epochs=2") + ["--resume"], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a = torch.load(tmp_path / "ref" / "sample-tclr" / "tclr" / "checkpoint.pth", weights_only=False)
    b = torch.load(tmp_path / "killed" / "sample-tclr" / "tclr" / "checkpoint.pth", weights_only=False)
    assert a["method"] == "tclr" and a["epoch"] == 2 and a["model"].keys() == b["model"].keys()
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    # the lr after each epoch: the second warm-up multiplier (1.0), then still the base lr (patience 2)
    assert [json.loads(x)["lr"] for x in metrics.read_text().splitlines()] == pytest.approx([1e-3, 1e-3])


@pytest.fixture(scope="module")
def tclr_checkpoint(store, tmp_path_factory) -> Path:
    """A one-epoch TCLR checkpoint (rgb, width 1/8, 8-frame clips: a 64 x 2 map) of the sample store."""
    out = tmp_path_factory.mktemp("tclr_run")
    assert tclr_main(_args(store, out, "epochs=1")) == 0
    return out / "sample-tclr" / "tclr" / "checkpoint.pth"


# clips of 2 x 4 = 8 stored frames ("clip" layout: one 3D clip), the width of the checkpoint
DOWNSTREAM = ["model.width=0.125", "data.workers=0", "progress=false", "data.views=[rgb]", "data.num_blocks=2",
              "data.block_frames=4", "model.sizes={rgb: 32}"]


def _hand_probe_probabilities(store: Path, video: str, tuned: dict, crop_fraction: float, count: int) -> np.ndarray:
    """TCLR's linear-probe test by hand (research/tclr_reference.md §7): `count` clips of 8 consecutive stored
    frames starting at int(linspace(0, frames - 8, count)), the centred square of crop_fraction x the short side
    resized to 32, values in [0, 1] (no mean/std), the probe's softmax per clip, averaged."""
    import torch.nn.functional as F
    from preprocess.store import Store
    from train.methods.tclr.model import random_encoder
    from train.models import VideoClassifier
    model = VideoClassifier(random_encoder(3, 0.125), tuned["num_classes"], frozen=True)
    model.load_state_dict(tuned["model"])
    model.eval()
    s = Store(store)
    try:
        frames = torch.from_numpy(s.read(video, "rgb", 0, s.num_frames(video, "rgb")))
    finally:
        s.close()
    h, w = frames.shape[1:3]
    side = round(crop_fraction * min(h, w))
    top, left = (h - side) // 2, (w - side) // 2
    probs = []
    for start in np.linspace(0, len(frames) - 8, count).astype(int):
        clip = frames[start:start + 8, top:top + side, left:left + side].permute(0, 3, 1, 2).float()
        clip = F.interpolate(clip, size=(32, 32), mode="bilinear", align_corners=False) / 255.0
        with torch.no_grad():
            probs.append(torch.softmax(model(clip.permute(1, 0, 2, 3).unsqueeze(0)), dim=1)[0].double().numpy())
    return np.mean(probs, axis=0)


def test_a_tclr_linear_probe_tests_ten_evenly_placed_centre_cropped_clips_softmax_averaged(store, tclr_checkpoint,
                                                                                           tmp_path):
    from train.finetune import main as finetune_main
    rc = finetune_main(["--config", str(ROOT / "configs" / "finetune_r18w0.125-64_sample-rgb-flow.yaml"),
                        f"data.root={store}", f"out={tmp_path}", *DOWNSTREAM, "name=ft",
                        f"model.init={tclr_checkpoint}", "model.linear_probe=true", "data.repeats=1",
                        "data.batch_size=3", "epochs=1",
                        "model.precise_bn_batches=2", "data.crop_fraction=0.8"])
    assert rc == 0
    unit = tmp_path / "ft" / "holdout" / "labels100" / "rgb"
    tuned = torch.load(unit / "checkpoint.pth", weights_only=False)
    state = torch.load(tclr_checkpoint, weights_only=False)
    backbone = {k.removeprefix("backbone.backbone."): v for k, v in tuned["model"].items()
                if k.startswith("backbone.backbone.")}
    pre = {k.removeprefix("views.rgb.backbone."): v for k, v in state["model"].items()
           if k.startswith("views.rgb.backbone.")}
    assert backbone.keys() == pre.keys() and len(pre) > 50
    for k, v in pre.items():   # a linear probe keeps the TCLR backbone frozen
        assert torch.equal(backbone[k], v), k
    with np.load(unit / "test_probs.npz") as f:
        ids, probs = [str(i) for i in f["ids"]], f["probs"]
    assert len(ids) == 3
    for video, p in zip(ids, probs):
        np.testing.assert_allclose(p, _hand_probe_probabilities(store, video, tuned, 0.8, 10), rtol=0, atol=1e-5)
    # one clip instead of ten gives other probabilities: the count matters
    assert not np.allclose(probs[0], _hand_probe_probabilities(store, ids[0], tuned, 0.8, 1), atol=1e-5)
    assert "Test: 10 clips of 8 stored frames with evenly spaced starts" in (tmp_path / "ft" / "report.md").read_text()


def test_evaluate_retrieves_with_nine_clips_of_the_time_unpooled_tclr_map(store, tclr_checkpoint, tmp_path):
    from train.evaluate import main as evaluate_main
    config = ROOT / "configs" / "evaluate_r18w0.125-64_sample-rgb-flow.yaml"
    base = ["--config", str(config), f"data.root={store}", f"out={tmp_path}", *DOWNSTREAM, "analysis.alignment_pairs=1"]
    assert evaluate_main([*base, "name=ev", f"checkpoint={tclr_checkpoint}"]) == 0
    m = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    # 8-frame clips give 2 time cells of 512/8 = 64 channels: a 128-d feature (2048-d at width 1 and 16 frames)
    assert m["features"]["rgb"] == {"dim": 128, "placement": "even", "clips_per_video": [9]}
    assert set(m["results"]["rgb"]["recall"]) == {"1", "5", "10", "20"}
    with np.load(tmp_path / "ev" / "rgb" / "features.npz") as f:
        assert f["gallery"].shape == (3, 128) and f["queries"].shape == (3, 128)
        feats = f["queries"]
    assert "the R3D-18 map kept in time" in (tmp_path / "ev" / "report.md").read_text()
    # The config overrides the method's clips: 3 toolkit windows give other features.
    assert evaluate_main([*base, "name=ev3", f"checkpoint={tclr_checkpoint}", "data.clips_per_video=3",
                          "data.clip_placement=windows", "analysis.alignment_pairs=0", "analysis.strip_queries=0"]) == 0
    m3 = json.loads((tmp_path / "ev3" / "metrics.json").read_text())
    assert m3["features"]["rgb"]["placement"] == "windows" and m3["features"]["rgb"]["clips_per_video"] == [3]
    with np.load(tmp_path / "ev3" / "rgb" / "features.npz") as f:
        assert not np.allclose(f["queries"], feats)


def test_warm_up_multipliers_then_a_tenfold_cut_after_patience_epochs_without_a_new_best():
    from train.methods.tclr.schedule import WarmupThenPlateau
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = WarmupThenPlateau(opt, 1e-3, [0.01, 0.5], patience=2)
    lrs = [opt.param_groups[0]["lr"]]
    for loss in (5.0, 4.0, 4.5, 4.6, 3.0, 3.5, 3.4):
        sched.epoch_end(None, {"total": loss})
        lrs.append(opt.param_groups[0]["lr"])
    # warm-up 1e-5, 5e-4; then 1e-3; two epochs above the best 4.0 -> 1e-4; new best 3.0; two above -> 1e-5
    assert lrs == pytest.approx([1e-5, 5e-4, 1e-3, 1e-3, 1e-4, 1e-4, 1e-4, 1e-5])
    again = WarmupThenPlateau(torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1.0), 1e-3, [0.01, 0.5], 2)
    again.load_state_dict(sched.state_dict())
    assert again.optimizer.param_groups[0]["lr"] == pytest.approx(1e-5) and again.state_dict() == sched.state_dict()


@pytest.mark.parametrize("extra, message", [
    (["data.local_clips=4"], "data.local_clips (4) must equal the time cells of a 8-frame clip's map (2)"),
    (["data.views=[rgb, flow_dis]"], "several data.views need loss.cooperative=true"),
    (["loss.ll_reduction=max"], "config key loss.ll_reduction must be one of sum, mean"),
    (["model.depth=34"], "config key model.depth must be one of 18"),
    (["data.num_blocks=4"], "unknown config key 'data.num_blocks'"),   # TCLR cuts clips by clip_frames
    (["data.holdout=0.3", "data.train_split=1"], "with data.train_split set, the split decides"),
])
def test_user_errors_are_one_line(tmp_path, capsys, extra, message):
    assert tclr_main(["--config", str(CONFIG), f"out={tmp_path}", *TINY, *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
