"""TCLR's clip indices in stored frames (tclr_reference.md §2) on known numbers."""

from __future__ import annotations

import numpy as np
import pytest

from train.data.sampling import window_indices
from train.data.tclr_clips import TCLRClipSpec, tclr_clip_indices


def test_centred_window_of_the_paper_values_by_hand() -> None:
    clips = tclr_clip_indices(100, TCLRClipSpec(), rng=None)
    assert clips is not None
    # 64-frame window, slack 100 - 64 = 36, centred start 18
    np.testing.assert_array_equal(clips.window, np.arange(18, 82))
    np.testing.assert_array_equal(clips.sparse, 18 + 4 * np.arange(16))  # 18, 22, ..., 78
    np.testing.assert_array_equal(clips.dense, 18 + np.arange(64).reshape(4, 16))  # 18..33, 34..49, ...


def test_dense_clips_tile_the_sparse_span_each_on_its_time_cell() -> None:
    spec = TCLRClipSpec()
    for seed in range(20):
        clips = tclr_clip_indices(150, spec, np.random.default_rng(seed))
        assert clips is not None
        start = int(clips.window[0])
        assert 0 <= start <= 150 - 64
        np.testing.assert_array_equal(clips.dense.ravel(), np.arange(start, start + 64))  # no gap, no overlap
        for j in range(4):  # dense clip j = the frames of sparse time cell j (sparse frames 4j..4j+3)
            assert clips.dense[j, 0] == clips.sparse[4 * j]
            assert clips.dense[j, -1] == clips.sparse[4 * j + 3] + 3
    starts = {int(tclr_clip_indices(150, spec, np.random.default_rng(s)).window[0]) for s in range(200)}
    assert min(starts) == 0 and max(starts) == 86 and len(starts) > 60  # the whole range is drawn


def test_other_settings_keep_the_tiling() -> None:
    clips = tclr_clip_indices(40, TCLRClipSpec(clip_frames=8, sparse_step=2, local_clips=2), rng=None)
    assert clips is not None  # span 16, slack 24, start 12, dense step 1
    np.testing.assert_array_equal(clips.sparse, 12 + 2 * np.arange(8))
    np.testing.assert_array_equal(clips.dense, 12 + np.arange(16).reshape(2, 8))
    clips = tclr_clip_indices(128, TCLRClipSpec(clip_frames=16, sparse_step=8, local_clips=4), rng=None)
    assert clips is not None  # span 128, dense step 2: dense clip j = 32j, 32j + 2, ..., 32j + 30
    np.testing.assert_array_equal(clips.dense, 2 * np.arange(64).reshape(4, 16))
    np.testing.assert_array_equal(clips.sparse, 8 * np.arange(16))
    with pytest.raises(ValueError):
        TCLRClipSpec(clip_frames=16, sparse_step=2, local_clips=4)
    with pytest.raises(ValueError):
        TCLRClipSpec(clip_frames=0)


def test_short_videos_follow_cocons_policy() -> None:
    spec = TCLRClipSpec()
    spread = tclr_clip_indices(40, spec, rng=None)
    assert spread is not None
    # CoCon's spread window: floor(phase + i * 40/64), phase 40/64/2 -> every frame 0..39, some twice
    np.testing.assert_array_equal(spread.window, window_indices(40, 4, 16, None, "spread"))
    assert spread.window[0] == 0 and spread.window[-1] == 39 and set(spread.window.tolist()) == set(range(40))
    np.testing.assert_array_equal(spread.sparse, spread.window[::4])
    np.testing.assert_array_equal(spread.dense.ravel(), spread.window)
    rng_spread = tclr_clip_indices(40, spec, np.random.default_rng(0))
    assert rng_spread is not None and np.all(np.diff(rng_spread.window) >= 0) and rng_spread.window.max() <= 39
    assert tclr_clip_indices(40, spec, rng=None, short="skip") is None
    assert tclr_clip_indices(64, spec, rng=None, short="skip") is not None  # exactly one window long
    assert tclr_clip_indices(0, spec, rng=None) is None
