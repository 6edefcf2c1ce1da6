"""Numbers that hold by construction on small test sets: chance R@k (100% when every query has fewer than k
gallery videos of other classes), the consistency count with k = classes - 1, and classes without videos; and
how the report prints them."""

from __future__ import annotations

import numpy as np
import pytest

from train.evaluation.metrics import (by_construction, chance_recall_at_k, classes_without, consistency,
                                      consistency_informative, nearest_classes, class_similarity, recall_at_k)
from train.evaluation.report import NOT_INFORMATIVE, missing_classes_note, recall_table

# The README's sample: a gallery of 6 training videos, 2 per class, queried by 6 test videos, 2 per class.
GALLERY = np.array([0, 0, 1, 1, 2, 2])
QUERIES = np.array([0, 0, 1, 1, 2, 2])


def test_chance_recall_by_hand() -> None:
    # G = 6, n = 2 per class: R@1 = 2/6; R@2 = 1 - (4/6)(3/5) = 0.6; R@4 = 1 - (4*3*2*1)/(6*5*4*3) = 1 - 1/15;
    # R@5: only 4 videos of other classes, so the 5th neighbour is always of the query's class: 1.
    chance = chance_recall_at_k(QUERIES, GALLERY, (1, 2, 4, 5, 10))
    assert chance == pytest.approx({1: 1 / 3, 2: 0.6, 4: 14 / 15, 5: 1.0, 10: 1.0})
    assert by_construction(chance) == [5, 10]
    assert chance[5] == 1.0 and chance[4] < 1.0  # exact, not approximately one


def test_recall_is_one_for_any_features_exactly_where_chance_says_so() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        q, g = rng.standard_normal((6, 8)), rng.standard_normal((6, 8))
        recall = recall_at_k(q, QUERIES, g, GALLERY, (4, 5))
        assert recall[5] == 1.0
    # ...while R@4 can miss: a query (class 0) whose 4 nearest are the 4 videos of classes 1 and 2.
    g = np.array([[-1.0, 0], [-1.0, 0.1], [1.0, 0], [1.0, 0.1], [1.0, 0.2], [1.0, 0.3]])
    q = np.array([[1.0, 0.15]])
    assert recall_at_k(q, np.array([0]), g, GALLERY, (4, 5)) == {4: 0.0, 5: 1.0}


def test_chance_recall_with_unequal_classes_and_a_class_missing_from_the_gallery() -> None:
    # Gallery: 3 of class 0, 1 of class 1 (G = 4). Queries: one of class 0, one of class 1, one of class 2.
    # k = 1: class 0 3/4, class 1 1/4, class 2 0 -> mean 1/3. k = 2: class 0 1 (only 1 other), class 1
    # 1 - (3/4)(2/3) = 1/2, class 2 0 -> 1/2. Class 2 is never hit, so no k holds by construction.
    chance = chance_recall_at_k(np.array([0, 1, 2]), np.array([0, 0, 0, 1]), (1, 2, 4))
    assert chance == pytest.approx({1: 1 / 3, 2: 0.5, 4: 2 / 3})
    assert by_construction(chance) == []
    with pytest.raises(ValueError, match="at least one"):
        chance_recall_at_k(np.array([], dtype=int), GALLERY)


def test_consistency_with_k_of_classes_minus_one_counts_every_class_for_any_features() -> None:
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(3), 2)
    for _ in range(10):  # k = 2 = classes - 1: every list is "the two other classes", whatever the features
        views = {v: nearest_classes(class_similarity(rng.standard_normal((6, 4)), labels, 3), 2) for v in "ab"}
        assert consistency(views, min_shared=2)[0] == 3
    assert not consistency_informative(2, 3) and consistency_informative(1, 3)
    assert consistency_informative(5, 101) and not consistency_informative(5, 6) and consistency_informative(4, 6)


def test_classes_without_videos() -> None:
    assert classes_without(np.array([0, 2, 2]), 4) == [1, 3]
    assert classes_without(QUERIES, 3) == []


def test_recall_table_prints_numbers_that_hold_by_construction_as_not_informative() -> None:
    chance = chance_recall_at_k(QUERIES, GALLERY, (1, 5))
    rows = recall_table({"rgb": {1: 0.5, 5: 1.0}, "flow": {1: 5 / 6, 5: 1.0}}, chance)
    assert rows == [["features", "R@1", "R@5"],
                    ["rgb", "50.0%", NOT_INFORMATIVE],
                    ["flow", "83.3%", NOT_INFORMATIVE],
                    ["chance (random ranking)", "33.3%", NOT_INFORMATIVE]]
    assert NOT_INFORMATIVE == "not informative at this size"


def test_missing_classes_note_names_classes_without_test_or_training_videos() -> None:
    names = ["pan", "rotate", "zoom"]
    assert missing_classes_note(names, QUERIES, GALLERY) == ""
    note = missing_classes_note(names, np.array([0, 0, 2]), np.array([0, 1]))
    assert note == ("1 of 3 classes have no test video: rotate. "
                    "1 of 3 classes have no training video: zoom.")
