"""`python -m train.cocon`: stages, learning, gradients, exact resume after a kill, NaN guard, errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import ROOT, TINY_COCON, cocon_args, kill_after_first_epoch
from train.cocon import main as train_main
from train.config import load_config
from train.engine.distributed import DistInfo
from train.engine.runner import Runner
from train.methods.cocon import CoconConfig, CoconStage, CoconStageJob


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=False)["model"]


def test_both_stages_run_and_write_their_folders(cocon_store, tmp_path, capsys):
    rc = train_main(cocon_args(cocon_store, tmp_path, "schedule.cpc_epochs=1", "schedule.cocon_epochs=1"))
    assert rc == 0, capsys.readouterr().err
    run = tmp_path / "sample"
    for stage in ("cpc-rgb", "cpc-flow_dis", "cocon"):
        assert (run / stage / "checkpoint.pth").is_file() and (run / stage / "config.yaml").is_file()
        assert list((run / stage / "tb").glob("events.out.tfevents.*"))
        line = json.loads((run / stage / "metrics.jsonl").read_text().splitlines()[-1])
        assert line["epoch"] == 1 and line["train"]["total"] > 0
    cocon = json.loads((run / "cocon" / "metrics.jsonl").read_text())
    assert {"cpc/rgb", "cpc/flow_dis", "sim/flow_dis-rgb", "sync/flow_dis-rgb", "top1/rgb",
            "pos_cos/flow_dis-rgb", "neg_cos/flow_dis-rgb"} <= set(cocon["train"])
    # the cocon stage started from the cpc weights
    cpc = _weights(run / "cpc-rgb" / "checkpoint.pth")
    assert load_config(run / "cocon" / "config.yaml", [], CoconConfig).data.views == ["rgb", "flow_dis"]
    assert any(k.startswith("views.rgb.") for k in cpc)
    assert "run folder" in capsys.readouterr().err


def test_cocon_gradients_reach_every_view(cocon_store, tmp_path):
    cfg = load_config(None, [f"data.root={cocon_store}", f"out={tmp_path}", "data.views=[rgb, flow_dis]", *TINY_COCON],
                      CoconConfig)
    dist = DistInfo()
    runner = Runner(CoconStageJob(cfg, CoconStage("cocon", 1, ["rgb", "flow_dis"], cooperative=True), dist), dist,
                    resume=False)
    values = runner.step(next(runner.batches("train")))   # the step leaves its gradients in place
    for view in ("rgb", "flow_dis"):
        encoder = runner.model.views[view]
        grads = [p.grad for n, p in encoder.named_parameters() if "encoder" in n or "backbone" in n or "stem" in n]
        grads = grads or [p.grad for p in encoder.parameters()]
        assert all(g is not None for g in grads) and sum(float(g.abs().sum()) for g in grads) > 0, view
    assert values["sim/flow_dis-rgb"] > 0 and values["sync/flow_dis-rgb"] > 0


def test_a_frozen_teacher_leaves_the_cooperative_stage_with_its_cpc_weights(cocon_store, tmp_path, capsys):
    rc = train_main(cocon_args(cocon_store, tmp_path, "schedule.cpc_epochs=1", "schedule.cocon_epochs=1",
                               "loss.teacher=flow_dis", "loss.freeze_teacher=true", "loss.sync_form=standardised"))
    assert rc == 0, capsys.readouterr().err
    run = tmp_path / "sample"
    cocon = _weights(run / "cocon" / "checkpoint.pth")
    for view, frozen in (("flow_dis", True), ("rgb", False)):
        cpc = _weights(run / f"cpc-{view}" / "checkpoint.pth")
        # BatchNorm's running statistics follow the batches; every trained weight of the teacher stays put
        learnt = [k for k in cpc if k.startswith(f"views.{view}.") and "running_" not in k and "num_batches" not in k]
        assert learnt
        assert all(torch.equal(cpc[k], cocon[k]) for k in learnt) == frozen, view
    assert json.loads((run / "cocon" / "metrics.jsonl").read_text())["train"]["cpc/flow_dis"] > 0   # still reported


def test_tiny_model_overfits_a_handful_of_clips(cocon_store, tmp_path):
    args = cocon_args(cocon_store, tmp_path, "schedule.stage=cpc", "data.views=[rgb]", "schedule.cpc_epochs=60",
                 "optim.lr=5e-3", "augment.grey_p=0", "augment.jitter=[0, 0, 0, 0]", "data.batch_size=3")
    assert train_main(args) == 0
    lines = [json.loads(x) for x in (tmp_path / "sample" / "cpc-rgb" / "metrics.jsonl").read_text().splitlines()]
    first, last = lines[0]["train"]["total"], min(x["train"]["total"] for x in lines[-3:])
    print("cpc loss", first, "->", last)
    assert last < 0.6 * first


def test_kill_during_training_then_resume_equals_uninterrupted(cocon_store, tmp_path):
    extra = ["schedule.cpc_epochs=3", "schedule.cocon_epochs=3", "data.views=[rgb, flow_dis]"]
    cmd = [sys.executable, "-m", "train.cocon"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    ref = subprocess.run(cmd + cocon_args(cocon_store, tmp_path / "ref", *extra), cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=600)
    assert ref.returncode == 0, ref.stderr[-2000:]
    metrics = tmp_path / "killed" / "sample" / "cocon" / "metrics.jsonl"
    done = kill_after_first_epoch(cmd + cocon_args(cocon_store, tmp_path / "killed", *extra), metrics, env)
    assert 1 <= done < 3
    resumed = subprocess.run(cmd + cocon_args(cocon_store, tmp_path / "killed", *extra) + ["--resume"], cwd=ROOT,
                             env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "cpc-rgb: finished earlier" in resumed.stderr
    a = _weights(tmp_path / "ref" / "sample" / "cocon" / "checkpoint.pth")
    b = _weights(tmp_path / "killed" / "sample" / "cocon" / "checkpoint.pth")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_nan_loss_stops_with_the_last_good_checkpoint(cocon_store, tmp_path, capsys, monkeypatch):
    import train.methods.cocon.step as step
    real = step.cpc_loss
    calls = {"n": 0}

    def poisoned(*args, **kwargs):
        loss, stats = real(*args, **kwargs)
        calls["n"] += 1
        return (loss * float("nan"), stats) if calls["n"] > 6 else (loss, stats)

    monkeypatch.setattr(step, "cpc_loss", poisoned)
    rc = train_main(cocon_args(cocon_store, tmp_path, "schedule.stage=cpc", "data.views=[rgb]",
                               "schedule.cpc_epochs=5"))
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 4
    assert err[-1].startswith("error: the loss became nan in stage cpc-rgb, epoch ")
    assert "last good checkpoint: " + str(tmp_path / "sample" / "cpc-rgb" / "checkpoint.pth") in err[-1]
    assert torch.load(tmp_path / "sample" / "cpc-rgb" / "checkpoint.pth", weights_only=False)["epoch"] >= 1


@pytest.mark.parametrize("extra,message", [
    (["optim.lrr=1"], "unknown config key 'optim.lrr'"),
    (["optim.lr=fast"], "config key optim.lr expects a number, got 'fast'"),
    (["schedule.stage=pretrain"], "config key schedule.stage must be one of cpc, cocon, both"),
    (["data.views=[rgb, pose]"], "pose"),
    (["data.root=/nonexistent/store"], "data.root '/nonexistent/store' is not a folder"),
])
def test_user_errors_are_one_line(cocon_store, tmp_path, capsys, extra, message):
    rc = train_main(cocon_args(cocon_store, tmp_path, *extra))
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("error: ") and message in err[0], err


def test_a_store_that_is_not_a_store(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert train_main(cocon_args(tmp_path / "empty", tmp_path)) == 2
    assert "is not a store" in capsys.readouterr().err


def test_existing_run_needs_resume(cocon_store, tmp_path, capsys):
    args = cocon_args(cocon_store, tmp_path, "schedule.stage=cpc", "data.views=[rgb]", "schedule.cpc_epochs=1")
    assert train_main(args) == 0
    capsys.readouterr()
    assert train_main(args) == 2
    assert "exists: pass --resume to continue it" in capsys.readouterr().err
    assert train_main(args + ["--resume"]) == 0
    assert "cpc-rgb: finished earlier" in capsys.readouterr().err


def test_worker_processes_give_the_same_training_as_the_main_process(cocon_store, tmp_path, capsys):
    """Items depend only on (seed, epoch, index): with 2 worker processes or none, the slot loader (and,
    separately, the DataLoader) feeds identical batches, so the weights after a stage are identical. One torch
    thread: multi-threaded CPU kernels may sum in another order from run to run."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    weights = {}
    for name, extra in (("main", ["data.workers=0"]), ("slots", ["data.workers=2"]),
                        ("torch-main", ["data.workers=0", "data.loader=torch"]),
                        ("torch", ["data.workers=2", "data.loader=torch"])):
        rc = train_main(cocon_args(cocon_store, tmp_path / name, "schedule.stage=cpc", "schedule.cpc_epochs=2",
                              "data.views=[rgb]", *extra))
        assert rc == 0, capsys.readouterr().err
        weights[name] = _weights(tmp_path / name / "sample" / "cpc-rgb" / "checkpoint.pth")
    torch.set_num_threads(threads)
    for name, ref in (("slots", "main"), ("torch", "torch-main")):
        for k, v in weights[ref].items():
            torch.testing.assert_close(weights[name][k], v, rtol=0, atol=0, msg=f"{name}: {k}")
