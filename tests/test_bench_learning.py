"""`bench/bench_learning.py --quick` runs end to end through the public commands: a table with every arm, a plot,
the same number of RGB-encoder steps in every pre-trained arm (TCLR's included), and pre-training without the test
videos. Its
numbers are not asserted (a smoke check; the benchmark's numbers are in docs/learning_benchmark.md)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import yaml

from bench import bench_learning
from tests.conftest import ROOT


def _last_step(metrics_jsonl) -> int:
    return json.loads(metrics_jsonl.read_text().splitlines()[-1])["step"]


def test_quick_learning_benchmark_writes_a_table_with_every_arm(tmp_path):
    work = tmp_path / "work"
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_learning.py"), "--quick", "--work", str(work)],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    table = (work / "table.md").read_text()
    for arm in ("random", "cpc", "cocon", "authors", "teacher"):
        for view in ("rgb", "flow_dis"):
            assert f"| {arm} | {view} | " in table
    assert "| tclr | rgb | " in table and "| tclr | flow_dis | - |" in table   # TCLR pre-trains RGB only
    assert (work / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    runs = work / "seed0"
    # The same RGB-encoder steps: the cpc arm's single stage = CoCon's cpc-rgb stage + its cocon stage.
    for arm in ("cocon", "authors", "teacher"):
        assert _last_step(runs / "cpc" / "runs" / "cpc" / "cpc-rgb" / "metrics.jsonl") == (
            _last_step(runs / arm / "runs" / arm / "cpc-rgb" / "metrics.jsonl")
            + _last_step(runs / arm / "runs" / arm / "cocon" / "metrics.jsonl"))
    assert _last_step(runs / "tclr" / "runs" / "tclr" / "tclr" / "metrics.jsonl") == _last_step(
        runs / "cpc" / "runs" / "cpc" / "cpc-rgb" / "metrics.jsonl")   # TCLR: as many optimiser steps
    tclr = yaml.safe_load((runs / "tclr" / "runs" / "tclr" / "tclr" / "config.yaml").read_text())
    assert (tclr["data"]["holdout"], tclr["data"]["clip_frames"], tclr["data"]["local_clips"]) == (0.5, 8, 2)
    authors = yaml.safe_load((runs / "authors" / "runs" / "authors" / "cocon" / "config.yaml").read_text())
    assert (authors["preset"], authors["loss"]["sync_penalty"], authors["data"]["holdout"]) == ("authors-code", "l1",
                                                                                                0.5)
    teacher = yaml.safe_load((runs / "teacher" / "runs" / "teacher" / "cocon" / "config.yaml").read_text())
    assert (teacher["loss"]["teacher"], teacher["loss"]["sync_form"], teacher["loss"]["freeze_teacher"],
            teacher["augment"]["grey_p"]) == ("flow_dis", "standardised", True, 0.0)
    result = json.loads((runs / "cocon" / "result.json").read_text())
    assert result["queries"] + result["gallery"] == 18 and 0 <= result["rgb"]["r1"] <= 1
    assert "| ρ appearance | ρ class |" in table and -1 <= result["rgb"]["rho_class"] <= 1
    # The correlation with the class of features that are the class: exactly 1 (same-class pairs cos 1, others 0).
    z = dict(np.load(runs / "cocon" / "evaluate" / "rgb" / "features.npz"))
    one_hot = np.eye(int(z["gallery_labels"].max()) + 1)
    z["queries"], z["gallery"] = one_hot[z["query_labels"]], one_hot[z["gallery_labels"]]
    np.savez(tmp_path / "class.npz", **z)
    rho = bench_learning.appearance_and_class(work / "store", tmp_path / "class.npz")
    assert rho["rho_class"] == pytest.approx(1.0)


def test_spearman_by_hand():
    # no ties: 1 - 6 * sum(d^2) / (n (n^2 - 1)) with d = (0, 1, -1, 0): 1 - 12 / 60
    assert bench_learning.spearman([1, 2, 3, 4], [10, 30, 20, 40]) == pytest.approx(0.8)
    # ties take their mean rank: ranks (0.5, 0.5, 2, 3) against (0, 1, 2, 3)
    r = np.array([0.5, 0.5, 2, 3]) - 1.5
    expected = float(r @ (np.arange(4) - 1.5) / np.sqrt((r @ r) * 5))
    assert bench_learning.spearman([1, 1, 2, 3], [1, 2, 3, 4]) == pytest.approx(expected)
