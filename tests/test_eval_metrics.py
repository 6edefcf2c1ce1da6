"""Numbers of the evaluation metrics on hand-computed cases: video probabilities, top-k, confusion, ensembles,
retrieval recall, class similarity, nearest classes, inter-class consistency, pair cosines, alignment."""

from __future__ import annotations

import math

import numpy as np
import pytest

from train.evaluation.metrics import (class_similarity, confusion_matrix, consistency, ensemble_probabilities,
                                      feature_spread, l2_normalise_rows, nearest_classes, nearest_neighbours,
                                      pair_cosines, per_class_accuracy, recall_at_k, smooth, soft_alignment,
                                      topk_accuracy, video_probabilities)

E2 = math.exp(2.0)


def _unit_at(degrees: float, scale: float = 1.0) -> list[float]:
    """A 2-D vector of length `scale` at an angle in degrees."""
    return [scale * math.cos(math.radians(degrees)), scale * math.sin(math.radians(degrees))]


# ---------------------------------------------------------------- classification


def test_video_probabilities_is_the_mean_of_window_softmaxes() -> None:
    # video 0: windows [0, 0] -> (1/2, 1/2) and [2, 0] -> (e²/(e²+1), 1/(e²+1)); video 1: [1, 3] -> (1, e²)/(1+e²)
    logits = np.array([[0.0, 0.0], [1.0, 3.0], [2.0, 0.0]])
    probs = video_probabilities(logits, np.array([0, 1, 0]), 2)
    p0 = (0.5 + E2 / (E2 + 1)) / 2
    expected = np.array([[p0, 1 - p0], [1 / (1 + E2), E2 / (1 + E2)]])
    np.testing.assert_allclose(probs, expected, rtol=1e-12)
    assert probs[0, 0] == pytest.approx(0.690398, abs=1e-6)
    # Mean-then-softmax would give softmax([1, 0]) = e/(e+1) = 0.731 for video 0: not the protocol.
    assert abs(probs[0, 0] - math.e / (math.e + 1)) > 0.04


def test_video_probabilities_is_stable_for_huge_logits_and_names_videos_without_windows() -> None:
    probs = video_probabilities(np.array([[1000.0, 1000.0], [-1000.0, 0.0]]), np.array([0, 1]), 2)
    np.testing.assert_allclose(probs, [[0.5, 0.5], [0.0, 1.0]])
    with pytest.raises(ValueError, match="video 2"):
        video_probabilities(np.zeros((2, 3)), np.array([0, 1]), 3)
    with pytest.raises(ValueError, match="video_index"):
        video_probabilities(np.zeros((2, 3)), np.array([0, 3]), 3)


def test_topk_accuracy_on_four_videos() -> None:
    probs = np.array([[0.6, 0.3, 0.1],   # label 0: top-1 hit
                      [0.2, 0.5, 0.3],   # label 2: ranked second
                      [0.1, 0.2, 0.7],   # label 2: top-1 hit
                      [0.5, 0.4, 0.1]])  # label 2: ranked third
    labels = np.array([0, 2, 2, 2])
    assert topk_accuracy(probs, labels, ks=(1, 2, 3, 5)) == {1: 0.5, 2: 0.75, 3: 1.0, 5: 1.0}
    assert topk_accuracy(probs, labels) == {1: 0.5, 5: 1.0}


def test_topk_ties_rank_the_lower_class_first() -> None:
    probs = np.array([[0.4, 0.4, 0.2]])
    assert topk_accuracy(probs, np.array([0]), ks=(1,)) == {1: 1.0}
    assert topk_accuracy(probs, np.array([1]), ks=(1, 2)) == {1: 0.0, 2: 1.0}


def test_confusion_matrix_and_per_class_accuracy() -> None:
    confusion = confusion_matrix(np.array([0, 2, 2, 0]), np.array([0, 2, 1, 2]), 4)
    expected = np.zeros((4, 4), dtype=np.int64)
    expected[0, 0] = expected[2, 2] = expected[1, 2] = expected[2, 0] = 1
    assert confusion.dtype == np.int64
    np.testing.assert_array_equal(confusion, expected)
    np.testing.assert_array_equal(per_class_accuracy(confusion), [1.0, 0.0, 0.5, np.nan])
    with pytest.raises(ValueError, match="pred"):
        confusion_matrix(np.array([0, 4]), np.array([0, 1]), 4)


# ---------------------------------------------------------------- ensembles

RGB = np.array([[0.6, 0.4], [0.2, 0.8]])
FLOW = np.array([[0.4, 0.6], [0.5, 0.5]])
POSE = np.array([[1.0, 0.0], [0.0, 1.0]])
WEIGHTS = {"rgb": 2.0, "flow": 2.0, "seg": 1.0, "pose": 1.0}


def test_ensemble_weights_the_views_given() -> None:
    # (2·rgb + 2·flow + 1·pose) / 5: row 0 (1.2+0.8+1.0, 0.8+1.2+0)/5, row 1 (0.4+1.0+0, 1.6+1.0+1.0)/5
    np.testing.assert_allclose(ensemble_probabilities({"rgb": RGB, "flow": FLOW, "pose": POSE}, WEIGHTS),
                               [[0.6, 0.4], [0.28, 0.72]], rtol=1e-12)
    # rgb and flow only: normalised by 2 + 2 = 4, the plain mean here.
    np.testing.assert_allclose(ensemble_probabilities({"rgb": RGB, "flow": FLOW}, WEIGHTS),
                               [[0.5, 0.5], [0.35, 0.65]], rtol=1e-12)


@pytest.mark.parametrize("probs, weights, message", [
    ({"rgb": RGB, "depth": FLOW}, WEIGHTS, "depth"),
    ({"rgb": RGB, "flow": FLOW}, {"rgb": 2.0, "flow": -1.0}, "flow=-1"),
    ({"rgb": RGB, "flow": FLOW}, {"rgb": 0.0, "flow": 0.0, "pose": 1.0}, "sum to 0"),
    ({"rgb": RGB, "flow": FLOW[:1]}, WEIGHTS, "shape"),
    ({}, WEIGHTS, "at least one view"),
])
def test_ensemble_rejects_bad_views_and_weights(probs: dict, weights: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ensemble_probabilities(probs, weights)


# ---------------------------------------------------------------- retrieval


def test_l2_normalise_rows() -> None:
    out = l2_normalise_rows(np.array([[3, 4], [0, 0]], dtype=np.float32))
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 0.0]])


def test_recall_at_k_by_hand() -> None:
    # Gallery g0 = (1, 0) class 0, g1 = (0, 1) class 1, g2 = (-1, 0) class 2. Every query has a large x,
    # so each ranks g0 > g1 > g2 (cosines x/|q|, y/|q|, -x/|q|):
    #   q0 = (1, 0.1) class 0: first hit at rank 1
    #   q1 = (1, 0.2) class 1: first hit at rank 2
    #   q2 = (1, -0.2) class 2: first hit at rank 3
    # so R@1 = 1/3, R@2 = 2/3, R@3 = 1 (and k = 5 is clipped to the 3 gallery items).
    gallery = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    query = np.array([[1.0, 0.1], [1.0, 0.2], [1.0, -0.2]])
    recalls = recall_at_k(query, np.array([0, 1, 2]), gallery, np.array([0, 1, 2]), ks=(1, 2, 3, 5))
    assert recalls == pytest.approx({1: 1 / 3, 2: 2 / 3, 3: 1.0, 5: 1.0})
    indices, sims = nearest_neighbours(query, gallery, 5)
    np.testing.assert_array_equal(indices, [[0, 1, 2]] * 3)
    norm = math.sqrt(1.04)
    np.testing.assert_allclose(sims[2], [1 / norm, -0.2 / norm, -1 / norm])


def test_nearest_neighbours_ties_keep_the_lower_index() -> None:
    gallery = np.array([[0.0, 1.0], [2.0, 0.0], [1.0, 0.0]])
    indices, sims = nearest_neighbours(np.array([[5.0, 0.0]]), gallery, 2)
    np.testing.assert_array_equal(indices, [[1, 2]])
    np.testing.assert_allclose(sims, [[1.0, 1.0]])


# ---------------------------------------------------------------- class structure

# A Golomb ruler (all pairwise distances differ) times 3 degrees: no ties between nearest classes.
ANGLES_A = [0, 3, 12, 30, 36, 51]
# View B moves class 2 far away, to 80 degrees.
ANGLES_B = [0, 3, 80, 30, 36, 51]
DELTA = 1.0  # each class has two videos, at its angle +- DELTA degrees


def _class_features(angles: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """Two videos per class at angle +- DELTA, the second one 5 times longer (cosines ignore length)."""
    features = [v for a in angles for v in (_unit_at(a - DELTA), _unit_at(a + DELTA, scale=5.0))]
    return np.array(features), np.repeat(np.arange(len(angles)), 2)


def test_class_similarity_matches_the_pair_means() -> None:
    features, labels = _class_features(ANGLES_A)
    sim = class_similarity(features, labels, 6)
    # Pairs between classes differ by d, d, d + 2δ, d - 2δ: mean cos d · (1 + cos 2δ) / 2; within a class: cos 2δ.
    diff = np.radians(np.subtract.outer(ANGLES_A, ANGLES_A))
    expected = np.cos(diff) * (1 + math.cos(math.radians(2 * DELTA))) / 2
    np.fill_diagonal(expected, math.cos(math.radians(2 * DELTA)))
    np.testing.assert_allclose(sim, expected, rtol=1e-12)


def test_class_similarity_small_and_missing_classes() -> None:
    # class 0: (2, 0) and (0, 3), orthogonal; class 1: one video (1, 0); class 2: none.
    sim = class_similarity(np.array([[2.0, 0.0], [0.0, 3.0], [1.0, 0.0]]), np.array([0, 0, 1]), 3)
    expected = np.array([[0.0, 0.5, np.nan], [0.5, np.nan, np.nan], [np.nan, np.nan, np.nan]])
    np.testing.assert_allclose(sim, expected)


def test_class_similarity_equals_brute_force() -> None:
    rng = np.random.default_rng(0)
    features, labels = rng.normal(size=(20, 5)), rng.integers(0, 4, size=20)
    x = features / np.linalg.norm(features, axis=1, keepdims=True)
    sim = class_similarity(features, labels, 4)
    for a in range(4):
        for b in range(4):
            pairs = [x[i] @ x[j] for i in np.flatnonzero(labels == a) for j in np.flatnonzero(labels == b) if i != j]
            assert sim[a, b] == pytest.approx(np.mean(pairs), abs=1e-12)


def test_nearest_classes_from_features() -> None:
    # Angular distances in view A, e.g. class 3 at 30: to 0: 30, 1: 27, 2: 18, 4: 6, 5: 21 -> 4, 2, 5.
    sim = class_similarity(*_class_features(ANGLES_A), num_classes=6)
    expected = [[1, 2, 3], [0, 2, 3], [1, 0, 3], [4, 2, 5], [3, 5, 2], [4, 3, 2]]
    np.testing.assert_array_equal(nearest_classes(sim, k=3), expected)
    assert nearest_classes(sim, k=3).dtype == np.int64


def test_nearest_classes_leaves_out_nan_pads_and_breaks_ties_by_index() -> None:
    sim = np.array([[1.0, 0.5, 0.5, np.nan],
                    [0.5, 1.0, 0.9, np.nan],
                    [0.5, 0.9, 1.0, np.nan],
                    [np.nan, np.nan, np.nan, np.nan]])
    np.testing.assert_array_equal(nearest_classes(sim, k=3), [[1, 2, -1], [2, 0, -1], [1, 0, -1], [-1, -1, -1]])


def test_consistency_of_hand_written_lists() -> None:
    rgb = np.array([[1, 2, 3, 4, 5], [0, 2, 3, 4, 5], [0, 1, 3, 4, 5], [0, 1, 2, 4, 5],
                    [0, 1, 2, 3, 5], [6, 7, 0, 1, 2], [7, 5, 4, 3, 2], [6, 5, 4, 3, -1]])
    flow = np.array([[5, 4, 3, 2, 1],    # same set: 5
                     [2, 0, 5, 3, 4],    # 5
                     [0, 1, 3, 6, 7],    # {0, 1, 3}: 3
                     [0, 1, 2, 4, 6],    # 4
                     [6, 7, 0, 1, 2],    # {0, 1, 2}: 3
                     [7, 6, 2, 1, 0],    # 5
                     [7, 5, 4, 3, 1],    # 4
                     [6, 5, 4, -1, -1]])  # {6, 5, 4}: 3, the shared -1 padding does not count
    count, shared = consistency({"rgb": rgb, "flow": flow}, min_shared=4)
    np.testing.assert_array_equal(shared, [5, 5, 3, 4, 3, 5, 4, 3])
    assert count == 5
    assert consistency({"rgb": rgb, "flow": flow}, min_shared=5)[0] == 3
    assert consistency({"rgb": rgb, "flow": flow}, min_shared=3)[0] == 8
    # A third view equal to rgb changes nothing; one equal to flow but for class 1's list [0, 2, 3, 6, 7]
    # leaves class 1 only {0, 2, 3} shared by all three views.
    seg = flow.copy()
    seg[1] = [0, 2, 3, 6, 7]
    assert consistency({"rgb": rgb, "flow": flow, "seg": rgb})[0] == 5
    count, shared = consistency({"rgb": rgb, "flow": flow, "seg": seg})
    assert (count, shared[1]) == (4, 3)


def test_consistency_end_to_end_from_two_views_features() -> None:
    # View B moves class 2 to 80 degrees; its nearest classes become (see ANGLES_B):
    #   0: 1, 3, 4   1: 0, 3, 4   2: 5, 4, 3   3: 4, 5, 1   4: 3, 5, 1   5: 4, 3, 2
    # and against view A's lists the shared counts are 2, 2, 1, 2, 2, 3.
    neighbours = {name: nearest_classes(class_similarity(*_class_features(angles), num_classes=6), k=3)
                  for name, angles in (("rgb", ANGLES_A), ("flow", ANGLES_B))}
    np.testing.assert_array_equal(neighbours["flow"], [[1, 3, 4], [0, 3, 4], [5, 4, 3], [4, 5, 1], [3, 5, 1],
                                                       [4, 3, 2]])
    count, shared = consistency(neighbours, min_shared=2)
    np.testing.assert_array_equal(shared, [2, 2, 1, 2, 2, 3])
    assert count == 5
    assert consistency(neighbours, min_shared=3)[0] == 1


def test_consistency_needs_two_views_of_one_shape() -> None:
    lists = np.zeros((3, 2), dtype=np.int64)
    with pytest.raises(ValueError, match="at least 2 views"):
        consistency({"rgb": lists})
    with pytest.raises(ValueError, match="same shape"):
        consistency({"rgb": lists, "flow": lists[:, :1]})


# ---------------------------------------------------------------- pairs and alignment


def test_pair_cosines_split_by_class() -> None:
    # Pairs (0, 1): same class, orthogonal -> 0; (0, 2) and (1, 2): other class, 45 degrees -> 1/sqrt(2).
    same, other = pair_cosines(np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]]), np.array([0, 0, 1]))
    np.testing.assert_allclose(same, [0.0], atol=1e-15)
    np.testing.assert_allclose(other, [1 / math.sqrt(2)] * 2)
    same, other = pair_cosines(np.eye(3), np.array([0, 1, 2]))
    assert same.shape == (0,) and other.shape == (3,)


def test_soft_alignment_and_smooth() -> None:
    blocks = np.random.default_rng(1).normal(size=(18, 8))
    align = soft_alignment(blocks, 3.0 * blocks)
    assert align.shape == (18, 18)
    np.testing.assert_allclose(np.diag(align), 1.0)
    np.testing.assert_allclose(align, align.T, atol=1e-12)
    np.testing.assert_allclose(soft_alignment(np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([[1.0, 1.0]])),
                               [[1 / math.sqrt(2)], [1 / math.sqrt(2)]])
    unchanged = smooth(align, 0)
    np.testing.assert_array_equal(unchanged, align)
    assert unchanged is not align
    delta = np.zeros((9, 9))
    delta[4, 4] = 1.0
    blurred = smooth(delta, 1.0)
    assert blurred.sum() == pytest.approx(1.0) and 0 < blurred[4, 4] < 0.2 and blurred[4, 5] > 0
    np.testing.assert_allclose(smooth(np.full((4, 5), 0.3), 2.0), 0.3)
    with pytest.raises(ValueError, match="sigma"):
        smooth(delta, -1.0)


def test_feature_spread_is_zero_for_collapsed_features_and_counts_the_directions_used() -> None:
    collapsed = feature_spread(np.tile([[3.0, 4.0, 0.0]], (5, 1)) * np.arange(1, 6)[:, None])   # one direction
    assert collapsed["std"] == pytest.approx(0.0, abs=1e-12)
    # +-e1 and +-e2, after normalisation: per dimension values (1, -1, 0, 0) / (0, 0, 1, -1), std sqrt(2/3) each
    # (ddof 1); the third dimension is 0. Mean over 3 dimensions x sqrt(3) = 2 sqrt(2/3) / 3 x sqrt(3).
    square = feature_spread(np.array([[2.0, 0, 0], [-1.0, 0, 0], [0, 5.0, 0], [0, -3.0, 0]]))
    assert square["std"] == pytest.approx(2 * math.sqrt(2 / 3) / 3 * math.sqrt(3))
    assert square["effective_rank"] == pytest.approx(2.0)          # two equal singular values
    line = feature_spread(np.array([[1.0, 0.1], [-1.0, 0.1], [1.0, 0.1], [-1.0, 0.1]]))
    assert line["effective_rank"] == pytest.approx(1.0)             # centred: all variation along one axis
