"""Which labelled videos train and which test: a dataset's split, or a seeded stratified hold-out for stores
without split files (class folders), and stratified label fractions for limited-label fine-tuning (TCLR)."""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from data_specs import VideoRecord
from preprocess.store import Store

from .dataset import DataError, _open_store


def _by_class(records: list[VideoRecord]) -> dict[int, list[VideoRecord]]:
    unlabelled = [r.id for r in records if r.label < 0]
    if unlabelled:
        raise DataError(f"{len(unlabelled)} video(s) have no label (first: {unlabelled[0]}): fine-tuning needs a "
                        f"store made from class folders or a dataset with annotations")
    groups: dict[int, list[VideoRecord]] = defaultdict(list)
    for r in sorted(records, key=lambda r: r.id):
        groups[r.label].append(r)
    return dict(sorted(groups.items()))


def _pick(n: int, k: int, seed: int, label: int) -> np.ndarray:
    """A seeded choice of k of range(n), the same for the same (seed, class, n) on any machine."""
    return np.sort(np.random.default_rng([seed, label, n]).choice(n, size=k, replace=False))


def stratified_fraction(records: list[VideoRecord], fraction: float, seed: int) -> list[str]:
    """Ids of round(fraction · n_c) videos of every class c (at least one each), seeded; all for fraction 1.

    Smaller fractions of one seed are not nested in larger ones; each fraction is its own draw."""
    if not 0.0 < fraction <= 1.0:
        raise DataError(f"a label fraction must be in (0, 1], got {fraction}")
    chosen = []
    for label, group in _by_class(records).items():
        k = len(group) if fraction == 1.0 else max(1, int(round(fraction * len(group))))
        chosen += [group[i].id for i in _pick(len(group), k, seed, label)]
    return sorted(chosen)


def stratified_holdout(records: list[VideoRecord], fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """(train ids, test ids): round(fraction · n_c) videos of each class c held out for testing, at least one
    each way for a class of two or more videos (a class with one video only trains)."""
    if not 0.0 < fraction < 1.0:
        raise DataError(f"data.holdout must be in (0, 1), got {fraction}")
    train, test = [], []
    for label, group in _by_class(records).items():
        k = min(len(group) - 1, max(1, int(round(fraction * len(group))))) if len(group) > 1 else 0
        held = set(_pick(len(group), k, seed, label).tolist()) if k else set()
        for i, r in enumerate(group):
            (test if i in held else train).append(r.id)
    if not test:
        raise DataError("no class has two videos: nothing to hold out for testing")
    return sorted(train), sorted(test)


def split_ids(records: list[VideoRecord], split: str | None, train_subset: str = "train", test_subset: str = "test",
              holdout: float = 0.3, seed: int = 0) -> tuple[list[str], list[str]]:
    """(train ids, test ids) of a dataset split, or of a stratified hold-out when `split` is None."""
    if split is None:
        return stratified_holdout(records, holdout, seed)
    known = sorted({s for r in records for s in r.splits})
    if split not in known:
        raise DataError(f"no video of the store is in split {split!r} (splits: {', '.join(known) or 'none'}); "
                        f"for a store without splits set data.splits=[] to hold out data.holdout of each class")
    ids = {}
    for subset in (train_subset, test_subset):
        ids[subset] = sorted(r.id for r in records if r.splits.get(split) == subset)
        if not ids[subset]:
            raise DataError(f"split {split} has no {subset!r} videos")
    _by_class([r for r in records if r.id in set(ids[train_subset]) | set(ids[test_subset])])
    return ids[train_subset], ids[test_subset]


def store_records(root: str) -> list[VideoRecord]:
    """The videos the store at `root` lists (a DataError when it is not a store); no file stays open."""
    store = _open_store(root)
    try:
        return list(store.manifest.records)
    finally:
        store.close()


def pretraining_ids(records: list[VideoRecord], holdout: float, seed: int) -> list[str]:
    """Ids of every video (in manifest order) except the test videos that `split_ids(labelled, None, holdout=holdout,
    seed=seed)` holds out: what `train.cocon data.holdout=h` pre-trains on, so that `train.finetune
    data.splits=[]` and `train.evaluate data.split=null` with the same holdout and seed test on videos it never saw.
    Unlabelled videos are never test videos, so they always pre-train."""
    _, test = split_ids([r for r in records if r.label >= 0], None, holdout=holdout, seed=seed)
    held = set(test)
    return [r.id for r in records if r.id not in held]


def holdout_videos(root: str, holdout: float, seed: int) -> list[str] | None:
    """The videos a pre-training run (any method, `train.config.PretrainData`) trains on with `data.holdout`:
    `pretraining_ids` of the store at `root`; None when holdout is 0 (the config's split decides)."""
    if holdout <= 0:
        return None
    return pretraining_ids(store_records(root), holdout, seed)


def class_names(store: Store) -> list[str]:
    """Label names by label id over the whole store (ids fixed by the store, not by a split)."""
    names: dict[int, str] = {}
    for r in store.manifest.records:
        if r.label >= 0:
            names.setdefault(r.label, r.label_name or str(r.label))
    if not names:
        raise DataError(f"the videos of {store.root} have no labels: this needs a store made from class folders "
                        f"or a dataset with annotations")
    return [names.get(i, str(i)) for i in range(max(names) + 1)]
