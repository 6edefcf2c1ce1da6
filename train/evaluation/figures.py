"""Figures of the evaluation as PNG files: confusion matrix, t-SNE of video features, cosine histograms,
action alignment, and retrieval strips.

Each figure is a matplotlib `Figure` drawn by the Agg canvas directly (no pyplot, so no global figure state
and no display needed), written to a temporary file beside the target and renamed into place.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from .metrics import smooth

DPI = 110
HIT_COLOUR, MISS_COLOUR = "tab:green", "tab:red"
NeighbourFrame = tuple[np.ndarray, str, float, bool]  # frame, name, similarity, same class as the query


def _figure(width: float, height: float) -> Figure:
    """A figure of width x height inches with its own Agg canvas."""
    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: str | os.PathLike) -> Path:
    """Write fig as a PNG to path (parent folders created, atomically) and release it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fig.savefig(tmp, format="png", dpi=DPI, bbox_inches="tight")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
        fig.clear()
    return path


def _class_colours(n: int) -> list[tuple[float, ...]]:
    """n distinct colours: tab20, then tab20b, then around again."""
    palette = list(matplotlib.colormaps["tab20"].colors) + list(matplotlib.colormaps["tab20b"].colors)
    return [palette[i % len(palette)] for i in range(n)]


def plot_confusion(confusion: np.ndarray, class_names: Sequence[str], path: str | os.PathLike, title: str) -> Path:
    """Confusion matrix coloured by row (the fraction of each true class), counts in the cells up to 30
    classes, class names on the axes up to 60."""
    confusion = np.asarray(confusion)
    c = confusion.shape[0]
    if confusion.ndim != 2 or confusion.shape[1] != c or c == 0:
        raise ValueError(f"confusion must be square and non-empty, got shape {confusion.shape}")
    if len(class_names) != c:
        raise ValueError(f"{len(class_names)} class names for a {c}-class confusion matrix")
    totals = confusion.sum(axis=1, keepdims=True).astype(np.float64)
    rates = np.divide(confusion, totals, out=np.zeros(confusion.shape), where=totals > 0)
    side = float(np.clip(2.5 + 0.3 * c, 4.0, 16.0))
    fig = _figure(side + 1.0, side)
    ax = fig.add_subplot()
    image = ax.imshow(rates, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
    if c <= 30:
        for (i, j), count in np.ndenumerate(confusion):
            if count:
                ax.text(j, i, str(count), ha="center", va="center", fontsize=7 if c > 12 else 9,
                        color="white" if rates[i, j] > 0.5 else "black")
    if c <= 60:
        ticks = np.arange(c)
        ax.set_xticks(ticks, list(class_names), rotation=90, fontsize=7)
        ax.set_yticks(ticks, list(class_names), fontsize=7)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title)
    return _save(fig, path)


def plot_class_similarity(similarity: np.ndarray, neighbours: np.ndarray, class_names: Sequence[str],
                          path: str | os.PathLike, title: str) -> Path:
    """Class-to-class mean cosine similarity (C, C) as a heat map, each class's nearest classes (row of
    `neighbours`, -1 = none) outlined; classes without test videos (NaN rows) left blank."""
    similarity = np.asarray(similarity, dtype=np.float64)
    c = similarity.shape[0]
    if similarity.ndim != 2 or similarity.shape[1] != c or c == 0 or len(class_names) != c:
        raise ValueError(f"need a square similarity matrix and one name per class, got {similarity.shape} "
                         f"and {len(class_names)} names")
    side = float(np.clip(2.5 + 0.3 * c, 4.0, 16.0))
    fig = _figure(side + 1.0, side)
    ax = fig.add_subplot()
    shown = np.ma.masked_invalid(similarity)
    image = ax.imshow(shown, cmap="viridis", interpolation="nearest")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="mean cosine similarity")
    for i, row in enumerate(np.asarray(neighbours)):
        for j in row:
            if j >= 0:
                ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="red",
                                       linewidth=1.5 if c <= 30 else 0.6))
    if c <= 60:
        ticks = np.arange(c)
        ax.set_xticks(ticks, list(class_names), rotation=90, fontsize=7)
        ax.set_yticks(ticks, list(class_names), fontsize=7)
    ax.set_title(f"{title} (red: each row's nearest classes)")
    return _save(fig, path)


def _embed_2d(x: np.ndarray, seed: int) -> np.ndarray:
    """2-D t-SNE of the rows of x (PCA init); fewer than 4 points are projected on their 2 principal axes."""
    n = x.shape[0]
    if x.shape[1] < 2:
        x = np.pad(x, ((0, 0), (0, 2 - x.shape[1])))
    if n < 4:
        centred = x - x.mean(axis=0)
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        out = np.zeros((n, 2))
        out[:, :min(2, vt.shape[0])] = centred @ vt[:2].T
        return out
    from sklearn.manifold import TSNE  # slow to import, and only needed here

    # t-SNE needs perplexity < n; (n - 1) / 3 keeps three effective neighbours per point for small sets.
    perplexity = min(30.0, max(2.0, (n - 1) / 3))
    return TSNE(n_components=2, init="pca", random_state=seed, perplexity=perplexity).fit_transform(x)


def plot_tsne(features: np.ndarray, labels: np.ndarray, class_names: Sequence[str], path: str | os.PathLike,
              title: str, seed: int = 0, max_classes: int = 21) -> Path:
    """t-SNE of video features (V, D) coloured by class, for the `max_classes` lowest class ids present
    (deterministic for a given seed)."""
    features = np.asarray(features, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if features.ndim != 2 or labels.shape != (features.shape[0],):
        raise ValueError(f"need features (V, D) and labels (V,), got {features.shape} and {labels.shape}")
    present = np.unique(labels)
    if present.size == 0:
        raise ValueError("plot_tsne needs at least one video")
    if present[0] < 0 or present[-1] >= len(class_names):
        raise ValueError(f"labels {present[0]}..{present[-1]} do not index {len(class_names)} class names")
    shown = present[:max_classes]
    keep = np.isin(labels, shown)
    xy = _embed_2d(features[keep], seed)
    kept = labels[keep]
    fig = _figure(9.0, 7.0)
    ax = fig.add_subplot()
    for cls, colour in zip(shown, _class_colours(shown.size)):
        at = kept == cls
        ax.scatter(xy[at, 0], xy[at, 1], s=14, color=colour, label=class_names[cls])
    which = (f"all {present.size} classes" if shown.size == present.size
             else f"classes {shown[0]}..{shown[-1]}: first {shown.size} of {present.size}")
    ax.set_title(f"{title}\n({which}, {int(keep.sum())} videos)")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, markerscale=1.5, frameon=False)
    return _save(fig, path)


def plot_cosine_histograms(same: np.ndarray, other: np.ndarray, path: str | os.PathLike, title: str) -> Path:
    """Density histograms, on common bins over [-1, 1], of the cosine similarity of same-class pairs (blue)
    and of other-class pairs (orange); an empty group is left out."""
    bins = np.linspace(-1.0, 1.0, 51)
    fig = _figure(6.5, 4.0)
    ax = fig.add_subplot()
    drawn = 0
    for values, name, colour in ((same, "same class", "tab:blue"), (other, "other classes", "tab:orange")):
        values = np.clip(np.asarray(values, dtype=np.float64).ravel(), -1.0, 1.0)
        if values.size:
            ax.hist(values, bins=bins, density=True, alpha=0.55, color=colour,
                    label=f"{name} (n={values.size}, mean {values.mean():.3f})")
            drawn += 1
    if drawn:
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no pairs", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlim(-1.0, 1.0)
    ax.set_xlabel("cosine similarity")
    ax.set_ylabel("density")
    ax.set_title(title)
    return _save(fig, path)


def plot_alignment(similarity: np.ndarray, path: str | os.PathLike, title: str, xlabel: str, ylabel: str,
                   sigma: float = 1.0) -> Path:
    """Heatmap of the block-to-block similarity of two videos (Na, Nb), Gaussian-smoothed by sigma."""
    similarity = np.asarray(similarity, dtype=np.float64)
    if similarity.ndim != 2 or 0 in similarity.shape:
        raise ValueError(f"similarity must be a non-empty 2-D matrix, got shape {similarity.shape}")
    na, nb = similarity.shape
    fig = _figure(6.0, 5.0)
    ax = fig.add_subplot()
    image = ax.imshow(smooth(similarity, sigma), cmap="viridis", aspect="auto", interpolation="nearest")
    fig.colorbar(image, ax=ax, label="cosine similarity")
    if nb <= 40:
        ax.set_xticks(np.arange(nb))
    if na <= 40:
        ax.set_yticks(np.arange(na))
    ax.tick_params(labelsize=7)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(f"{title} (smoothed, sigma {sigma:g})" if sigma else title)
    return _save(fig, path)


def _show_frame(ax: Axes, frame: np.ndarray, caption: str, border: str | None) -> None:
    """One frame, (H, W) grey or (H, W, 3|4) colour, captioned, framed in `border` when given."""
    frame = np.asarray(frame)
    if frame.ndim not in (2, 3) or (frame.ndim == 3 and frame.shape[2] not in (3, 4)):
        raise ValueError(f"a frame must be (H, W) or (H, W, 3), got shape {frame.shape}")
    if frame.ndim == 2:
        ax.imshow(frame, cmap="gray", vmin=0, vmax=255 if frame.dtype == np.uint8 else 1)
    else:
        ax.imshow(frame)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(caption, fontsize=7)
    for spine in ax.spines.values():
        spine.set_visible(border is not None)
        if border is not None:
            spine.set_color(border)
            spine.set_linewidth(4)


CAPTION_CHARS, CAPTION_LINES = 24, 2   # what fits above a 1.8-inch frame at 7 pt


def fit_caption(text: str, chars: int = CAPTION_CHARS, lines: int = CAPTION_LINES) -> str:
    """`text` wrapped at `chars` characters (file names break anywhere) in at most `lines` lines, the middle
    of a longer one elided with '…', so that captions of neighbouring frames never run into each other."""
    if len(text) <= chars:
        return text
    if len(text) > chars * lines:
        keep = chars * lines - 1
        text = text[: (keep + 1) // 2] + "…" + text[len(text) - keep // 2:]
    return "\n".join(text[i:i + chars] for i in range(0, len(text), chars))


def plot_neighbour_strips(rows: Sequence[tuple[np.ndarray, str, Sequence[NeighbourFrame]]],
                          path: str | os.PathLike, title: str) -> Path:
    """Retrieval examples, one row per query: the query frame, then each neighbour's frame captioned with its
    name and similarity, framed green when it is of the query's class and red otherwise."""
    if not rows:
        raise ValueError("plot_neighbour_strips needs at least one row")
    cols = 1 + max(len(neighbours) for _, _, neighbours in rows)
    frame_h, frame_w = np.asarray(rows[0][0]).shape[:2]
    fig = _figure(1.8 * cols, (1.8 * frame_h / max(frame_w, 1) + 0.75) * len(rows) + 0.4)
    grid = fig.add_gridspec(len(rows), cols)
    for r, (frame, caption, neighbours) in enumerate(rows):
        _show_frame(fig.add_subplot(grid[r, 0]), frame, fit_caption(f"query: {caption}"), None)
        for n, (n_frame, name, sim, hit) in enumerate(neighbours, start=1):
            _show_frame(fig.add_subplot(grid[r, n]), n_frame, f"{fit_caption(name)}\n{sim:.3f}",
                        HIT_COLOUR if hit else MISS_COLOUR)
    fig.suptitle(title)
    return _save(fig, path)
