"""Numbers of the evaluation, in plain numpy: video-level accuracy, view ensembles, retrieval recall, and the
representation analyses of CoCon (class similarity, inter-class consistency, pair cosines, action alignment).

Rankings are stable everywhere: equal scores keep the lower index first, so every result is reproducible.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import numpy as np
from scipy.ndimage import gaussian_filter

NORM_EPS = 1e-12


def _matrix(name: str, x: np.ndarray) -> np.ndarray:
    """x as a float64 2-D array, or a ValueError naming it."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"{name} must be 2-D, got shape {x.shape}")
    return x


def _labels(name: str, labels: np.ndarray, length: int | None, num_classes: int | None = None) -> np.ndarray:
    """labels as an int64 vector (of `length`, ids below num_classes, when given), or a ValueError naming it."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or (length is not None and labels.shape[0] != length):
        raise ValueError(f"{name} must have shape ({'n' if length is None else length},), got {labels.shape}")
    if labels.size and not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{name} must be integers, got {labels.dtype}")
    labels = labels.astype(np.int64)
    if labels.size and (labels.min() < 0 or (num_classes is not None and labels.max() >= num_classes)):
        allowed = ">= 0" if num_classes is None else f"in [0, {num_classes})"
        raise ValueError(f"{name} must be {allowed}, got values {labels.min()}..{labels.max()}")
    return labels


def _ks(ks: Iterable[int]) -> list[int]:
    """The requested cut-offs, each at least 1."""
    ks = [int(k) for k in ks]
    if not ks or min(ks) < 1:
        raise ValueError(f"ks must be a non-empty list of integers >= 1, got {ks}")
    return ks


def video_probabilities(window_logits: np.ndarray, video_index: np.ndarray, num_videos: int) -> np.ndarray:
    """Per-video class probabilities (V, C): the softmax of each window's logits, averaged over the video's
    windows (DPC's and CoCon's dense test protocol: softmax first, then the mean)."""
    logits = _matrix("window_logits", window_logits)
    index = _labels("video_index", video_index, logits.shape[0], num_videos)
    counts = np.bincount(index, minlength=num_videos)
    if (counts == 0).any():
        missing = np.flatnonzero(counts == 0)
        shown = ", ".join(str(v) for v in missing[:10]) + (", ..." if missing.size > 10 else "")
        raise ValueError(f"{missing.size} of {num_videos} videos have no window: video {shown}")
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs = e / e.sum(axis=1, keepdims=True)
    sums = np.zeros((num_videos, logits.shape[1]))
    np.add.at(sums, index, probs)
    return sums / counts[:, None]


def topk_accuracy(probs: np.ndarray, labels: np.ndarray, ks: Iterable[int] = (1, 5)) -> dict[int, float]:
    """{k: fraction of videos whose label is among their k highest probabilities}; k > C counts as C.

    Ties are ranked by np.argsort(-probs, kind="stable"): of equal probabilities the lower class id ranks first.
    """
    probs = _matrix("probs", probs)
    v, c = probs.shape
    if v == 0:
        raise ValueError("topk_accuracy needs at least one video")
    labels = _labels("labels", labels, v, c)
    order = np.argsort(-probs, axis=1, kind="stable")
    return {k: float((order[:, :min(k, c)] == labels[:, None]).any(axis=1).mean()) for k in _ks(ks)}


def confusion_matrix(pred: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts (C, C) int64 of videos: rows are the true class, columns the predicted one."""
    labels = _labels("labels", labels, None, num_classes)
    pred = _labels("pred", pred, labels.shape[0], num_classes)
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(confusion, (labels, pred), 1)
    return confusion


def per_class_accuracy(confusion: np.ndarray) -> np.ndarray:
    """Recall of each true class (C,) from a confusion matrix; NaN for a class without test videos."""
    confusion = np.asarray(confusion)
    if confusion.ndim != 2 or confusion.shape[0] != confusion.shape[1]:
        raise ValueError(f"confusion must be square, got shape {confusion.shape}")
    totals = confusion.sum(axis=1).astype(np.float64)
    correct = np.diag(confusion).astype(np.float64)
    out = np.full(totals.shape, np.nan)
    np.divide(correct, totals, out=out, where=totals > 0)
    return out


def ensemble_probabilities(probs: Mapping[str, np.ndarray], weights: Mapping[str, float]) -> np.ndarray:
    """Weighted mean of the views' per-video probabilities, normalised by the weights of the views given
    (CoCon weighs rgb 2, flow 2, seg 1, pose 1; weights of views not given are ignored)."""
    if not probs:
        raise ValueError("ensemble_probabilities needs at least one view")
    missing = [view for view in probs if view not in weights]
    if missing:
        raise ValueError(f"no ensemble weight for view(s) {', '.join(missing)}; weights are for {sorted(weights)}")
    negative = [f"{view}={weights[view]}" for view in probs if weights[view] < 0]
    if negative:
        raise ValueError(f"ensemble weights must be >= 0, got {', '.join(negative)}")
    total = float(sum(weights[view] for view in probs))
    if total <= 0:
        raise ValueError(f"the weights of views {', '.join(probs)} sum to 0")
    arrays = {view: _matrix(f"probs[{view!r}]", p) for view, p in probs.items()}
    shapes = {view: a.shape for view, a in arrays.items()}
    if len(set(shapes.values())) > 1:
        raise ValueError(f"views' probabilities differ in shape: {shapes}")
    return sum(weights[view] * a for view, a in arrays.items()) / total


def l2_normalise_rows(x: np.ndarray) -> np.ndarray:
    """Rows of x divided by max(||row||_2, 1e-12), as float64 (an all-zero row stays zero)."""
    x = _matrix("x", x)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), NORM_EPS)


def nearest_neighbours(query: np.ndarray, gallery: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (Q, k) and cosine similarities (Q, k) of each query's k most similar gallery rows, most
    similar first (ties: lower gallery index first); k > G is clipped to G."""
    q, g = l2_normalise_rows(query), l2_normalise_rows(gallery)
    if q.shape[1] != g.shape[1]:
        raise ValueError(f"query and gallery differ in feature size: {q.shape[1]} vs {g.shape[1]}")
    if g.shape[0] == 0:
        raise ValueError("the gallery is empty")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    sims = q @ g.T
    order = np.argsort(-sims, axis=1, kind="stable")[:, :min(k, g.shape[0])]
    return order, np.take_along_axis(sims, order, axis=1)


def recall_at_k(query: np.ndarray, query_labels: np.ndarray, gallery: np.ndarray, gallery_labels: np.ndarray,
                ks: Iterable[int] = (1, 5, 10, 20)) -> dict[int, float]:
    """{k: fraction of queries with at least one gallery item of their own class among their k nearest by
    cosine similarity} (TCLR's retrieval R@k); k > G counts as G."""
    ks = _ks(ks)
    query, gallery = _matrix("query", query), _matrix("gallery", gallery)
    if query.shape[0] == 0:
        raise ValueError("recall_at_k needs at least one query")
    query_labels = _labels("query_labels", query_labels, query.shape[0])
    gallery_labels = _labels("gallery_labels", gallery_labels, gallery.shape[0])
    indices, _ = nearest_neighbours(query, gallery, max(ks))
    hits = gallery_labels[indices] == query_labels[:, None]
    first_hit = np.where(hits.any(axis=1), hits.argmax(axis=1), indices.shape[1])
    return {k: float((first_hit < k).mean()) for k in ks}


def class_similarity(features: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Mean cosine similarity (C, C) over all video pairs (i of class a, j of class b), i != j on the diagonal.

    A class without videos gives a NaN row and column; one with a single video a NaN diagonal entry.
    """
    x = l2_normalise_rows(features)
    labels = _labels("labels", labels, x.shape[0], num_classes)
    sums = np.zeros((num_classes, x.shape[1]))
    np.add.at(sums, labels, x)
    self_dots = np.bincount(labels, weights=(x * x).sum(axis=1), minlength=num_classes)
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    # The sum over pairs of different videos is sum_a . sum_b, less the i == j terms on the diagonal.
    dots = sums @ sums.T
    pairs = np.outer(counts, counts)
    np.fill_diagonal(dots, np.diag(dots) - self_dots)
    np.fill_diagonal(pairs, counts * (counts - 1))
    out = np.full(dots.shape, np.nan)
    np.divide(dots, pairs, out=out, where=pairs > 0)
    return out


def nearest_classes(similarity: np.ndarray, k: int = 5) -> np.ndarray:
    """The k most similar other classes (C, k) int64 of each class, most similar first (ties: lower class id),
    NaN similarities left out; -1 pads a row with fewer than k candidates."""
    sim = _matrix("similarity", similarity)
    if sim.shape[0] != sim.shape[1]:
        raise ValueError(f"similarity must be square, got shape {sim.shape}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    out = np.full((sim.shape[0], k), -1, dtype=np.int64)
    for c, row in enumerate(sim):
        candidates = np.flatnonzero(~np.isnan(row) & (np.arange(row.size) != c))
        best = candidates[np.argsort(-row[candidates], kind="stable")[:k]]
        out[c, :best.size] = best
    return out


def consistency(neighbours: Mapping[str, np.ndarray], min_shared: int = 4) -> tuple[int, np.ndarray]:
    """CoCon's inter-class consistency: per class, how many classes are in its nearest-class list in every
    view (C,), and how many classes share at least `min_shared` of them."""
    if len(neighbours) < 2:
        raise ValueError(f"consistency needs at least 2 views, got {len(neighbours)}: {list(neighbours)}")
    lists = {view: np.asarray(n) for view, n in neighbours.items()}
    shapes = {view: n.shape for view, n in lists.items()}
    if len(set(shapes.values())) > 1 or any(len(s) != 2 for s in shapes.values()):
        raise ValueError(f"neighbour lists must all have the same shape (C, k), got {shapes}")
    num_classes = next(iter(shapes.values()))[0]
    shared = np.zeros(num_classes, dtype=np.int64)
    for c in range(num_classes):
        common = set.intersection(*({int(j) for j in n[c] if j >= 0} for n in lists.values()))
        shared[c] = len(common)
    return int((shared >= min_shared).sum()), shared


def pair_cosines(features: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cosine similarities of all unordered video pairs i < j, split into (same class, different classes),
    each in row-major pair order."""
    x = l2_normalise_rows(features)
    labels = _labels("labels", labels, x.shape[0])
    i, j = np.triu_indices(x.shape[0], k=1)
    cos = (x @ x.T)[i, j]
    same = labels[i] == labels[j]
    return cos[same], cos[~same]


def feature_spread(features: np.ndarray) -> dict[str, float]:
    """How far the L2-normalised features are from collapse: `std` is the per-dimension standard deviation
    averaged over dimensions, times sqrt(d) (SimSiam's measure: 0 when every video has one feature, about 1 for
    features spread evenly over the sphere); `effective_rank` is exp of the entropy of the normalised singular
    values of the centred features (1: all variation along one direction; d: spread over every dimension)."""
    x = l2_normalise_rows(_matrix("features", features))
    n, d = x.shape
    if n < 2:
        return {"std": 0.0, "effective_rank": 1.0}
    std = float(x.std(axis=0, ddof=1).mean() * math.sqrt(d))
    s = np.linalg.svd(x - x.mean(axis=0), compute_uv=False)
    p = s / s.sum() if s.sum() > NORM_EPS else np.zeros_like(s)
    p = p[p > 0]
    rank = float(np.exp(-(p * np.log(p)).sum())) if len(p) else 1.0
    return {"std": std, "effective_rank": rank}


def soft_alignment(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity (Na, Nb) of every block feature of video a with every block feature of video b."""
    a, b = l2_normalise_rows(a), l2_normalise_rows(b)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"block features differ in size: {a.shape[1]} vs {b.shape[1]}")
    return a @ b.T


def smooth(matrix: np.ndarray, sigma: float) -> np.ndarray:
    """A Gaussian-smoothed float64 copy of matrix (edges repeat the border); sigma 0 leaves it unchanged."""
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}")
    matrix = np.array(matrix, dtype=np.float64)
    return matrix if sigma == 0 else gaussian_filter(matrix, sigma, mode="nearest")


def chance_recall_at_k(query_labels: np.ndarray, gallery_labels: np.ndarray,
                       ks: Iterable[int] = (1, 5, 10, 20)) -> dict[int, float]:
    """{k: R@k of a ranking drawn at random}: the mean over queries of 1 - C(G - n, k) / C(G, k), n being the
    gallery videos of the query's class and G the gallery size (k > G counts as G, as in `recall_at_k`).

    It is 1.0 exactly when every query has fewer than k gallery videos of other classes (k > G - n): then R@k
    is 100% for any features, a number that holds by construction. A query class absent from the gallery
    contributes 0 (it can never be hit)."""
    ks = _ks(ks)
    query_labels = _labels("query_labels", query_labels, None)
    gallery_labels = _labels("gallery_labels", gallery_labels, None)
    if query_labels.size == 0 or gallery_labels.size == 0:
        raise ValueError("chance_recall_at_k needs at least one query and one gallery video")
    g = int(gallery_labels.size)
    classes, counts = np.unique(query_labels, return_counts=True)
    in_gallery = np.bincount(gallery_labels, minlength=int(classes.max()) + 1)[classes]
    out = {}
    for k in ks:
        k_eff = min(k, g)
        hit = [1.0 - math.comb(g - int(n), k_eff) / math.comb(g, k_eff) for n in in_gallery]
        out[k] = float(np.dot(hit, counts) / counts.sum())
    return out


def by_construction(chance: Mapping[int, float]) -> list[int]:
    """The cut-offs k whose R@k is 100% for any features (chance R@k exactly 1)."""
    return [k for k, p in chance.items() if p == 1.0]


def consistency_informative(k: int, num_classes: int) -> bool:
    """Whether the inter-class consistency count can tell features apart: with k >= classes - 1 every
    class's k nearest classes are all the other classes in every view, so every class counts, whatever
    the features."""
    return k < num_classes - 1


def classes_without(labels: np.ndarray, num_classes: int) -> list[int]:
    """The class ids in 0..num_classes-1 that no video of `labels` has."""
    labels = _labels("labels", labels, None, num_classes)
    return [int(c) for c in np.flatnonzero(np.bincount(labels, minlength=num_classes) == 0)]
