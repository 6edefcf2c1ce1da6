"""`python -m train.evaluate`: retrieval and the CoCon analyses end to end, features on disk, errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from tests.conftest import ROOT, TINY_MOTION
from train.evaluate import alignment_pairs
from train.evaluate import main as evaluate_main
from train.evaluation.metrics import recall_at_k

CONFIG = ROOT / "configs" / "evaluate_r18w0.125-64_sample-rgb-flow.yaml"
TINY = [*TINY_MOTION, "data.split=null", "data.holdout=0.5", "data.views=[]"]


def _run(store: Path, out: Path, *extra: str) -> int:
    return evaluate_main(["--config", str(CONFIG), f"data.root={store}", f"out={out}", *TINY, *extra])


def test_evaluation_report_metrics_and_figures(motion_store, motion_checkpoint, tmp_path, capsys):
    rc = _run(motion_store, tmp_path, f"checkpoint={motion_checkpoint}", "name=ev", "analysis.alignment_blocks=6")
    assert rc == 0, capsys.readouterr().err
    run = tmp_path / "ev"
    m = json.loads((run / "metrics.json").read_text())
    assert m["views"] == ["rgb", "flow_farneback"] and m["queries"] == 6 and m["gallery"] == 6
    for view in ("rgb", "flow_farneback"):
        with np.load(run / view / "features.npz") as f:
            np.testing.assert_allclose(np.linalg.norm(f["queries"], axis=1), 1.0, rtol=1e-9)
            expect = recall_at_k(f["queries"], f["query_labels"], f["gallery"], f["gallery_labels"], (1, 5, 10, 20))
        got = m["results"][view]["recall"]
        assert [got[str(k)] for k in (1, 5, 10, 20)] == [expect[k] for k in (1, 5, 10, 20)]
        assert got["20"] == 1.0  # a gallery of 6 holds every class
        align = m["results"][view]["alignment"][0]
        assert align["videos"][0].split("/")[0] == align["videos"][1].split("/")[0]  # a same-class pair
    c = m["results"]["consistency"]
    assert c["classes"] == 3 and c["k"] == 2 and c["min_shared"] == 2 and 0 <= c["count"] <= 3
    # 2 training videos per class of 6: R@5 and beyond hit for any features; k = classes - 1 counts every class.
    assert m["recall_by_construction"] == [5, 10, 20] and m["recall_chance"]["1"] == pytest.approx(1 / 3)
    assert c["informative"] is False and c["count"] == 3
    report = (run / "report.md").read_text()
    not_informative = " | ".join(["not informative at this size"] * 3)
    assert f"| chance (random ranking) | 33.3% | {not_informative} |" in report
    assert "| all views | " in report and report.count(f"% | {not_informative} |") == 4  # 3 feature rows, chance
    assert "Not informative at this size: with k = 2 nearest classes of 3" in report
    assert "Inter-class relationships" in report
    figures = re.findall(r"!\[[^]]*\]\(([^)]+)\)", report)
    assert len(figures) == 2 * 5  # per view: class similarity, t-SNE, histograms, neighbour strips, one alignment
    for rel in figures:
        img = imread(run / rel)
        assert img.shape[0] > 100 and img.shape[1] > 100 and img.std() > 0


def test_per_view_checkpoints_evaluate_cpc_for_the_papers_comparison(motion_store, motion_checkpoint, tmp_path,
                                                                     capsys):
    run = motion_checkpoint.parents[1]
    cpc = {v: run / f"cpc-{v}" / "checkpoint.pth" for v in ("rgb", "flow_farneback")}
    rc = _run(motion_store, tmp_path, "name=cpc", "analysis.alignment_pairs=0", "analysis.strip_queries=0",
              f"checkpoints={{rgb: {cpc['rgb']}, flow_farneback: {cpc['flow_farneback']}}}")
    assert rc == 0, capsys.readouterr().err
    m = json.loads((tmp_path / "cpc" / "metrics.json").read_text())
    assert m["views"] == ["rgb", "flow_farneback"] and m["checkpoints"] == {v: str(p) for v, p in cpc.items()}
    assert "consistency" in m["results"]
    with np.load(tmp_path / "cpc" / "rgb" / "features.npz") as f:  # other weights than CoCon's: other features
        cpc_rgb = f["queries"]
    assert _run(motion_store, tmp_path, "name=cocon", "analysis.alignment_pairs=0", "analysis.strip_queries=0",
                f"checkpoint={motion_checkpoint}") == 0
    with np.load(tmp_path / "cocon" / "rgb" / "features.npz") as f:
        assert not np.allclose(f["queries"], cpc_rgb)


def test_alignment_pairs_prefer_same_class_videos():
    assert alignment_pairs(np.array([0, 1, 0, 1, 2]), 2) == [(0, 2), (1, 3)]
    assert alignment_pairs(np.array([0, 1, 2]), 2) == [(0, 1), (1, 2)]
    assert alignment_pairs(np.array([0, 0]), 0) == []


def test_random_initialisation_needs_views(motion_store, tmp_path, capsys):
    assert _run(motion_store, tmp_path, "checkpoint=") == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: without a checkpoint, name the views to evaluate with data.views=[...]"


def test_checkpoint_of_another_width_is_one_line(motion_store, motion_checkpoint, tmp_path, capsys):
    assert _run(motion_store, tmp_path, f"checkpoint={motion_checkpoint}", "model.width=0.25") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "this config asks for depth 18 and width 0.25" in err


def test_even_clip_placement_without_a_count_is_one_line(motion_store, motion_checkpoint, tmp_path, capsys):
    assert _run(motion_store, tmp_path, f"checkpoint={motion_checkpoint}", "data.clip_placement=even",
                "data.clips_per_video=0") == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: evenly placed test clips need a count: set data.clips_per_video to 1 or more"


def test_a_fine_tuning_checkpoint_is_one_line(motion_store, tmp_path, capsys):
    """Before: 'checkpoint ... holds the view(s) none, not flow_farneback', about a checkpoint that has the view."""
    from train.finetune import main as finetune_main
    assert finetune_main(["--config", str(ROOT / "configs" / "finetune_r18w0.125-64_sample-rgb-flow.yaml"),
                          f"data.root={motion_store}", f"out={tmp_path}", *TINY_MOTION, "data.splits=[]",
                          "data.holdout=0.5", "data.batch_size=3", "name=ft", "data.views=[flow_farneback]",
                          "model.init=", "epochs=1", "optim.milestones=[2]"]) == 0
    ckpt = tmp_path / "ft" / "holdout" / "labels100" / "flow_farneback" / "checkpoint.pth"
    capsys.readouterr()
    assert _run(motion_store, tmp_path, "name=ev", f"checkpoint={ckpt}", "data.views=[flow_farneback]") == 2
    assert capsys.readouterr().err.strip() == (
        f"error: {ckpt} is a fine-tuning checkpoint (train.finetune, view flow_farneback); give the checkpoint of a "
        f"pre-training run (train.cocon, train.tclr)")
