"""`python -m train.finetune`: learning above chance, ensembles, label fractions, linear probe, resume, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.image import imread

from tests.conftest import ROOT, TINY_MOTION
from train.evaluation.metrics import ensemble_probabilities, topk_accuracy
from train.finetune import main as finetune_main
from train.methods.cocon.encoder import view_weights

CONFIG = ROOT / "configs" / "finetune_r18w0.125-64_sample-rgb-flow.yaml"
# Tiny (conftest.TINY_MOTION), half of each class held out.
TINY = [*TINY_MOTION, "data.splits=[]", "data.holdout=0.5", "data.batch_size=3"]


def _run(store: Path, out: Path, *extra: str) -> int:
    return finetune_main(["--config", str(CONFIG), f"data.root={store}", f"out={out}", *TINY, *extra])


def _metrics(out: Path, name: str) -> dict:
    return json.loads((out / name / "metrics.json").read_text())


def _real_png(path: Path) -> None:
    img = imread(path)
    assert img.shape[0] > 100 and img.shape[1] > 100 and img.std() > 0


def test_finetuning_from_random_init_beats_chance(motion_store, tmp_path, capsys):
    rc = _run(motion_store, tmp_path, "name=ft", "data.views=[flow_farneback]", "model.init=", "epochs=8",
              "optim.milestones=[6]", "data.repeats=2")
    assert rc == 0, capsys.readouterr().err
    res = _metrics(tmp_path, "ft")["results"]["labels100"]
    assert res["chance"]["holdout"] == pytest.approx(1 / 3)
    # 3 motion classes, 2 held-out videos each; measured 6 of 6 right with seed 0 (chance: 2 of 6)
    assert res["mean"]["flow_farneback"]["top1"] >= 4 / 6
    unit = tmp_path / "ft" / "holdout" / "labels100" / "flow_farneback"
    with np.load(unit / "test_probs.npz") as f:
        assert f["probs"].shape == (6, 3)
        np.testing.assert_allclose(f["probs"].sum(1), 1.0, rtol=1e-6)
        assert topk_accuracy(f["probs"], f["labels"], (1,))[1] == res["mean"]["flow_farneback"]["top1"]
        hits = f["probs"].argmax(1) == f["labels"]
        per_class = [hits[f["labels"] == c].mean() for c in range(3)]
    assert res["mean"]["flow_farneback"]["per_class_top1"] == pytest.approx(per_class)
    assert len((unit / "metrics.jsonl").read_text().splitlines()) == 8
    report = (tmp_path / "ft" / "report.md").read_text()
    assert "| flow_farneback |" in report and "confusion_flow_farneback.png" in report
    assert "Per-class top-1 with 100% of the labels" in report and "| zoom |" in report
    _real_png(tmp_path / "ft" / "holdout" / "labels100" / "confusion_flow_farneback.png")


def test_ensemble_and_label_fractions_from_a_checkpoint(motion_store, motion_checkpoint, tmp_path, capsys):
    rc = _run(motion_store, tmp_path, "name=ens", "data.views=[rgb, flow_farneback]", f"model.init={motion_checkpoint}",
              "epochs=1", "model.precise_bn_batches=2", "data.label_fractions=[0.5, 1.0]",
              "ensemble_weights={rgb: 3, flow: 1}")
    assert rc == 0, capsys.readouterr().err
    m = _metrics(tmp_path, "ens")
    assert m["ensemble_weights"] == {"rgb": 3.0, "flow_farneback": 1.0}
    for tag, per_class in (("labels50", 1), ("labels100", 2)):
        probs = {}
        for view in ("rgb", "flow_farneback"):
            unit = tmp_path / "ens" / "holdout" / tag / view
            state = torch.load(unit / "checkpoint.pth", weights_only=False)
            assert state["epoch"] == 1 and state["init"] == str(motion_checkpoint)
            assert json.loads((unit / "metrics.jsonl").read_text())["epoch"] == 1
            videos = json.loads((unit / "videos.json").read_text())
            classes = [v.split("/")[0] for v in videos["train"]]
            assert sorted(classes) == sorted(["pan", "rotate", "zoom"] * per_class)  # stratified
            assert not set(videos["train"]) & set(videos["test"]) and len(videos["test"]) == 6
            with np.load(unit / "test_probs.npz") as f:
                probs[view], labels = f["probs"], f["labels"]
        mixed = ensemble_probabilities(probs, {"rgb": 3.0, "flow_farneback": 1.0})
        np.testing.assert_allclose(mixed, (3 * probs["rgb"] + probs["flow_farneback"]) / 4)
        assert m["results"][tag]["splits"]["holdout"]["ensemble"]["top1"] == topk_accuracy(mixed, labels, (1,))[1]
        _real_png(tmp_path / "ens" / "holdout" / tag / "confusion_ensemble.png")
    assert "Accuracy with 50% of the training labels" in (tmp_path / "ens" / "report.md").read_text()


def test_linear_probe_trains_only_the_head(motion_store, motion_checkpoint, tmp_path, capsys):
    rc = _run(motion_store, tmp_path, "name=probe", "data.views=[rgb]", f"model.init={motion_checkpoint}",
              "model.linear_probe=true", "epochs=2", "model.precise_bn_batches=2")
    assert rc == 0, capsys.readouterr().err
    start = view_weights(torch.load(motion_checkpoint, weights_only=False), "rgb")
    tuned = torch.load(tmp_path / "probe" / "holdout" / "labels100" / "rgb" / "checkpoint.pth", weights_only=False)
    backbone = {k[len("backbone."):]: v for k, v in tuned["model"].items() if k.startswith("backbone.")}
    assert backbone.keys() == start.keys()
    for k in start:  # weights and BatchNorm statistics of f and g untouched
        torch.testing.assert_close(backbone[k], start[k], rtol=0, atol=0)
    assert not torch.equal(tuned["model"]["norm.running_var"], torch.ones_like(tuned["model"]["norm.running_var"]))


def test_a_finished_run_is_refused_without_resume_and_skipped_with_it(motion_store, tmp_path, capsys):
    args = ("name=again", "data.views=[flow_farneback]", "model.init=", "epochs=1", "model.precise_bn_batches=1")
    assert _run(motion_store, tmp_path, *args) == 0
    before = (tmp_path / "again" / "holdout" / "labels100" / "flow_farneback" / "test_probs.npz").read_bytes()
    capsys.readouterr()
    assert _run(motion_store, tmp_path, *args) == 2
    assert "exists: pass --resume" in capsys.readouterr().err
    assert finetune_main(["--config", str(CONFIG), f"data.root={motion_store}", f"out={tmp_path}", *TINY, *args,
                          "--resume"]) == 0
    assert (tmp_path / "again" / "holdout" / "labels100" / "flow_farneback" / "test_probs.npz").read_bytes() == before


@pytest.mark.parametrize("extra, message", [
    (["model.width=0.25"], "was trained with depth 18 and width 0.125; this config asks for depth 18 and width 0.25"),
    (["data.views=[flow_dis]"], "not in store"),
    (["model.init=/nonexistent/checkpoint.pth"], "/nonexistent/checkpoint.pth does not exist"),
    (["model.init=", "model.linear_probe=true"], "model.linear_probe needs model.init"),
    (["data.splits=[1]"], "no video of the store is in split '1'"),
    (["data.label_fractions=[0]"], "data.label_fractions must list fractions in (0, 1]"),
    (["data.batch_size=1"], "data.batch_size must be at least 2 per process"),
])
def test_bad_setups_are_one_line(motion_store, motion_checkpoint, tmp_path, capsys, extra, message):
    rc = _run(motion_store, tmp_path, f"model.init={motion_checkpoint}", "data.views=[rgb]", *extra)
    err = capsys.readouterr().err.strip()
    assert rc == 2 and message in err and len(err.splitlines()) == 1 and err.startswith("error:")


def test_checkpoint_of_another_view_is_one_line(motion_store, motion_checkpoint, tmp_path, capsys):
    cpc_rgb = motion_checkpoint.parents[1] / "cpc-rgb" / "checkpoint.pth"
    rc = _run(motion_store, tmp_path, f"model.init={cpc_rgb}", "data.views=[flow_farneback]")
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1
    assert f"checkpoint {cpc_rgb} holds the view(s) rgb, not flow_farneback" in err
