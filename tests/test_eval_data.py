"""Evaluation data pieces: stratified label fractions and hold-outs, dense test windows, the classifier's
frozen backbone, precise BatchNorm statistics."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from data_specs import VideoRecord
from preprocess.store import Store
from train.data import DataError, DenseClips, dense_windows, even_windows
from train.data.splits import split_ids, stratified_fraction, stratified_holdout
from train.models import CPCModel, VideoClassifier
from train.precise_bn import recalibrate_batchnorm


def _records(counts: dict[int, int]) -> list[VideoRecord]:
    return [VideoRecord(f"c{c}/v{i:02d}", f"c{c}/v{i:02d}.mp4", c, f"c{c}", {"1": "train" if i % 3 else "test"})
            for c, n in counts.items() for i in range(n)]


def _per_class(ids: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for i in ids:
        out[i.split("/")[0]] = out.get(i.split("/")[0], 0) + 1
    return out


def test_label_fractions_are_stratified_seeded_and_keep_every_class():
    records = _records({0: 10, 1: 4, 2: 1})
    assert _per_class(stratified_fraction(records, 0.1, seed=0)) == {"c0": 1, "c1": 1, "c2": 1}
    assert _per_class(stratified_fraction(records, 0.5, seed=0)) == {"c0": 5, "c1": 2, "c2": 1}
    assert len(stratified_fraction(records, 1.0, seed=0)) == 15
    assert stratified_fraction(records, 0.5, seed=0) == stratified_fraction(records, 0.5, seed=0)
    assert stratified_fraction(records, 0.5, seed=0) != stratified_fraction(records, 0.5, seed=1)
    with pytest.raises(DataError, match=r"in \(0, 1\]"):
        stratified_fraction(records, 0.0, seed=0)


def test_holdout_and_dataset_splits():
    records = _records({0: 10, 1: 4, 2: 1})
    train, test = stratified_holdout(records, 0.3, seed=0)
    assert _per_class(test) == {"c0": 3, "c1": 1} and _per_class(train) == {"c0": 7, "c1": 3, "c2": 1}
    assert not set(train) & set(test)
    train, test = split_ids(records, "1")
    assert len(test) == 4 + 2 + 1 and all(int(i[-2:]) % 3 == 0 for i in test)
    unlabelled = [VideoRecord("a", "a.mp4", -1, "", {})]
    with pytest.raises(DataError, match="no label"):
        stratified_holdout(unlabelled + records, 0.3, seed=0)


def test_dense_clips_cover_each_video_with_half_overlapping_centre_cropped_windows(motion_store):
    ds = DenseClips(motion_store, ["rgb"], num_blocks=2, block_frames=3, overlap=0.5, crop_fraction=0.5)
    store = Store(motion_store)
    n = ds.num_frames[0]
    windows = dense_windows(n, 2, 3, 0.5)
    assert [w.tolist() for v, w in ds.items if v == 0] == [w.tolist() for w in windows]
    assert len(ds) == sum(len(dense_windows(k, 2, 3, 0.5)) for k in ds.num_frames)
    item = ds[1]
    frames = store.read(ds.video_ids[item["video"]], "rgb")
    h, w = frames.shape[1:3]
    side = ds.crop_sides["rgb"]
    top, left = (h - side) // 2, (w - side) // 2
    np.testing.assert_array_equal(item["rgb"].numpy(), frames[ds.items[1][1], top:top + side, left:left + side])
    assert ds.items[1][1][0] == 3  # the second window starts one block (half a clip) later
    capped = DenseClips(motion_store, ["rgb"], num_blocks=2, block_frames=3, max_windows=2)
    assert len(capped) == 2 * len(capped.records)
    # every video is longer than 2x3 frames but shorter than 8x5: "skip" would drop them all in training,
    # a test set keeps each with one spread window
    long = DenseClips(motion_store, ["rgb"], num_blocks=8, block_frames=5, short="skip")
    assert len(long.records) == len(ds.records) == 12 and len(long) == 12


def test_even_placement_cuts_exactly_count_clips_with_evenly_spaced_starts():
    # 13 frames, clips of 4: starts int(linspace(0, 9, 9)) = 0, 1, 2, 3, 4, 5, 6, 7, 9 (TCLR's test clips)
    assert [w[0] for w in even_windows(13, 2, 2, 9)] == [0, 1, 2, 3, 4, 5, 6, 7, 9]
    assert all(w.tolist() == list(range(w[0], w[0] + 4)) for w in even_windows(13, 2, 2, 9))
    # repeats kept (a mean over them weighs clips as TCLR does); one spread window for a short video
    assert [w[0] for w in even_windows(5, 2, 2, 3)] == [0, 0, 1]
    assert [w.tolist() for w in even_windows(3, 2, 2, 9)] == [[0, 1, 1, 2]]


def test_frozen_classifier_keeps_its_backbone_in_eval_mode_without_gradients():
    encoder = CPCModel(2, width=0.125, num_blocks=4, pred_steps=1)
    model = VideoClassifier(encoder, 3, frozen=True).train()
    assert not model.backbone.training and model.norm.training
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"norm.weight", "norm.bias", "fc.weight", "fc.bias"}
    logits = model(torch.randn(4, 4, 2, 3, 32, 32))
    assert logits.shape == (4, 3)
    logits.sum().backward()
    assert all(p.grad is None for p in model.backbone.parameters())


def test_precise_batchnorm_is_the_plain_mean_over_batches():
    bn = nn.BatchNorm1d(1)
    model = nn.Sequential(bn)
    batches = [torch.tensor([[1.0], [3.0]]), torch.tensor([[5.0], [7.0]]), torch.tensor([[100.0], [100.0]])]
    used = recalibrate_batchnorm(model.eval(), batches, model, max_batches=2)
    assert used == 2 and not model.training and bn.momentum == 0.1
    # batch means 2 and 6 -> 4; unbiased batch variances 2 and 2 -> 2 (the third batch is past max_batches)
    assert bn.running_mean.item() == pytest.approx(4.0) and bn.running_var.item() == pytest.approx(2.0)
    frozen = nn.Sequential(nn.BatchNorm1d(1))
    frozen.requires_grad_(False)
    assert recalibrate_batchnorm(frozen, batches, frozen, max_batches=2) == 0
    assert frozen[0].running_mean.item() == 0.0
