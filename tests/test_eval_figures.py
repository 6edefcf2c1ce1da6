"""Figures and the report: every plot writes a readable, non-blank PNG; t-SNE handles tiny and larger sets
deterministically; the report round-trips its metrics and links figures that exist."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from train.evaluation.figures import (plot_alignment, plot_class_similarity, plot_confusion, plot_cosine_histograms,
                                      plot_neighbour_strips, plot_tsne)
from train.evaluation.metrics import class_similarity, nearest_classes, pair_cosines, soft_alignment
from train.evaluation.report import Section, format_percent, write_report


def _check_png(path: Path) -> np.ndarray:
    """The image at path, after checking it is a PNG larger than 100 px each side and not blank."""
    assert path.suffix == ".png" and path.is_file()
    image = imread(path)
    assert image.shape[0] > 100 and image.shape[1] > 100
    assert image.std() > 0
    return image


def _clustered(num_classes: int, per_class: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Features (V, 16) of num_classes separated clusters with per_class videos each, and their labels."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(num_classes, 16)) * 4
    labels = np.repeat(np.arange(num_classes), per_class)
    return centres[labels] + rng.normal(size=(labels.size, 16)), labels


def test_plot_confusion(tmp_path: Path) -> None:
    confusion = np.array([[5, 1, 0], [2, 3, 0], [0, 0, 0]])
    path = plot_confusion(confusion, ["walk", "run", "jump"], tmp_path / "deep" / "confusion.png", "rgb, split 1")
    assert path == tmp_path / "deep" / "confusion.png"
    _check_png(path)
    big = np.random.default_rng(0).integers(0, 5, size=(70, 70))
    _check_png(plot_confusion(big, [f"c{i}" for i in range(70)], tmp_path / "big.png", "70 classes"))
    with pytest.raises(ValueError, match="class names"):
        plot_confusion(confusion, ["walk"], tmp_path / "bad.png", "bad")
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize("num_classes, per_class", [(3, 2), (20, 3), (30, 2), (1, 3)])
def test_plot_tsne_small_and_larger_sets(tmp_path: Path, num_classes: int, per_class: int) -> None:
    features, labels = _clustered(num_classes, per_class)
    names = [f"class {i}" for i in range(num_classes)]
    _check_png(plot_tsne(features, labels, names, tmp_path / "tsne.png", "t-SNE"))


def test_plot_tsne_is_deterministic_for_a_seed(tmp_path: Path) -> None:
    features, labels = _clustered(3, 2)
    names = ["a", "b", "c"]
    first = _check_png(plot_tsne(features, labels, names, tmp_path / "1.png", "t-SNE", seed=3))
    second = _check_png(plot_tsne(features, labels, names, tmp_path / "2.png", "t-SNE", seed=3))
    np.testing.assert_array_equal(first, second)


def test_plot_class_similarity_outlines_nearest_classes(tmp_path: Path) -> None:
    features, labels = _clustered(6, 3)
    sim = class_similarity(features, labels, 7)              # class 6 has no video: a blank row and column
    near = nearest_classes(sim, 2)
    image = _check_png(plot_class_similarity(sim, near, [f"c{i}" for i in range(7)], tmp_path / "cs.png", "rgb"))
    red = (image[..., 0] > 0.9) & (image[..., 1] < 0.2) & (image[..., 2] < 0.2)
    assert red.sum() > 50                                    # the outlines are drawn
    with pytest.raises(ValueError, match="one name per class"):
        plot_class_similarity(sim, near, ["a"], tmp_path / "bad.png", "bad")


def test_plot_cosine_histograms(tmp_path: Path) -> None:
    same, other = pair_cosines(*_clustered(4, 5))
    assert same.size == 4 * 10 and other.size == 190 - 40
    _check_png(plot_cosine_histograms(same, other, tmp_path / "hist.png", "rgb cosines"))
    _check_png(plot_cosine_histograms(np.zeros(0), other, tmp_path / "no_same.png", "no same-class pairs"))


def test_plot_alignment(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(18, 8)), rng.normal(size=(18, 8))
    similarity = soft_alignment(a, b)
    _check_png(plot_alignment(similarity, tmp_path / "align.png", "run vs run", "video b block", "video a block"))
    _check_png(plot_alignment(similarity, tmp_path / "raw.png", "unsmoothed", "b", "a", sigma=0))


def test_plot_neighbour_strips(tmp_path: Path) -> None:
    # Grey frames (a colour one with equal channels), so that only the borders are green or red.
    grey = np.tile(np.linspace(0, 255, 64).astype(np.uint8), (48, 1))
    colour = np.repeat(grey[..., None], 3, axis=2)
    rows = [(colour, "v_Run_g01", [(colour, "v_Run_g02", 0.91, True), (grey, "v_Walk_g03", 0.85, False)]),
            (grey, "v_Walk_g01", [(colour, "v_Run_g04", 0.70, False)])]
    image = _check_png(plot_neighbour_strips(rows, tmp_path / "strips.png", "rgb retrieval"))
    # A green (hit) and a red (miss) border are both drawn.
    rgb = image[..., :3]
    assert ((rgb[..., 1] > 0.4) & (rgb[..., 0] < 0.3) & (rgb[..., 2] < 0.3)).any()
    assert ((rgb[..., 0] > 0.7) & (rgb[..., 1] < 0.3) & (rgb[..., 2] < 0.3)).any()
    with pytest.raises(ValueError, match="frame"):
        plot_neighbour_strips([(np.zeros((4, 4, 2)), "bad", [])], tmp_path / "bad.png", "bad")


def test_format_percent() -> None:
    assert format_percent(0.83333) == "83.3%"
    assert format_percent(np.float32(1.0)) == "100.0%"
    assert format_percent(0.5, digits=2) == "50.00%"
    assert format_percent(None) == "n/a" and format_percent(float("nan")) == "n/a"


def test_write_report(tmp_path: Path) -> None:
    run = tmp_path / "run"
    same, other = pair_cosines(*_clustered(3, 3))
    hist = plot_cosine_histograms(same, other, run / "figures" / "hist.png", "cosines")
    metrics = {"top1": np.float64(0.8), "per_class": np.array([0.5, np.nan]), "recall": {1: 0.25, 5: np.float32(0.5)},
               "count": np.int64(41), "views": ("rgb", "flow")}
    sections = [Section("Accuracy", "Dense test, softmax then mean.",
                        [["view", "top-1"], ["rgb", format_percent(0.8333)], ["flow", format_percent(math.nan)]]),
                Section("Cosines", figures=[hist])]
    report = write_report(run, "CoCon on UCF101", metrics, sections)
    assert report == run / "report.md"
    loaded = json.loads((run / "metrics.json").read_text())
    assert loaded == {"top1": 0.8, "per_class": [0.5, None], "recall": {"1": 0.25, "5": 0.5}, "count": 41,
                      "views": ["rgb", "flow"]}
    text = report.read_text()
    assert text.startswith("# CoCon on UCF101\n") and "Generated at" in text
    for line in ("## Accuracy", "Dense test, softmax then mean.", "| view | top-1 |", "| --- | --- |",
                 "| rgb | 83.3% |", "| flow | n/a |", "## Cosines", "![hist](figures/hist.png)"):
        assert line in text.splitlines()
    for link in ("figures/hist.png",):
        assert (run / link).is_file()
    assert sorted(p.name for p in run.iterdir()) == ["figures", "metrics.json", "report.md"]


def test_write_report_rejects_missing_figures_and_ragged_tables(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.png"):
        write_report(tmp_path, "t", {}, [Section("Figures", figures=[Path("nope.png")])])
    with pytest.raises(ValueError, match="table rows"):
        write_report(tmp_path, "t", {}, [Section("Table", table=[["a", "b"], ["1"]])])


def test_neighbour_captions_with_long_real_names_do_not_overlap(tmp_path: Path, monkeypatch) -> None:
    """Real file names (e.g. 'clean_and_jerk__k400-via-mmskeleton__1') were wider than their frame and ran
    into the next caption; each caption's drawn box now stays clear of its row neighbours'."""
    import train.evaluation.figures as figures
    drawn = []
    monkeypatch.setattr(figures, "_save", lambda fig, path: drawn.append(fig) or Path(path))
    frame = np.zeros((48, 64), np.uint8)
    names = ["clean_and_jerk__k400-via-mmskeleton__1", "eating_watermelon__k400-via-mmaction2-old-demo__1",
             "soccer_juggling__ucf101-via-torchvision-assets__2", "segwaying__k400-via-torchvision-assets__3"]
    figures.plot_neighbour_strips([(frame, names[0], [(frame, n, 0.5, True) for n in names[1:]])],
                                  tmp_path / "n.png", "rgb retrieval")
    fig = drawn[0]
    renderer = fig.canvas.get_renderer()
    boxes = sorted((ax.title.get_window_extent(renderer) for ax in fig.axes), key=lambda b: b.x0)
    assert len(boxes) == 4
    for left, right in zip(boxes, boxes[1:]):
        assert left.x1 < right.x0, (left, right)
    assert figures.fit_caption("a" * 30) == "a" * 24 + "\n" + "a" * 6
    assert len(figures.fit_caption("x" * 100).replace("\n", "")) == 48 and "…" in figures.fit_caption("x" * 100)
