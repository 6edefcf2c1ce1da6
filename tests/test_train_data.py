"""The training data path: window sampling, aligned crop/flip on known content, seeded determinism,
build-time errors, DataLoader workers, and the batched device augmentation."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from data_specs import VideoRecord
from preprocess.store import Store
from preprocess.store.layout import write_json_atomic
from preprocess.store.manifest import Manifest
from preprocess.store.writer import ShardWriter
from train.data import (COCO17_FLIP_PAIRS, DataError, MultiViewClips, ViewAugment, as_blocks, cut_clip, dense_windows,
                        flip_permutation, window_indices)
from train.data.augment import IMAGENET_MEAN, IMAGENET_STD

from tests.conftest import run_cli

N, K = 8, 5
L = N * K

# id -> (label, splits, stored frames) of the synthetic store; "b/short1" is shorter than one clip.
SYNTH_VIDEOS = {
    "a/long1": (0, {"split1": "train"}, 50),
    "a/long2": (0, {"split1": "test"}, 46),
    "b/short1": (1, {"split1": "train"}, 30),
    "b/long3": (1, {"split1": "train"}, 60),
    "b/long4": (1, {"split1": "test"}, 44),
}
# view -> (kind, channels, (height, width)); "seg" stands for a kind this code does not know.
SYNTH_VIEWS = {
    "rgb": ("rgb", 3, (40, 56)),
    "flow_dis": ("flow", 2, (40, 56)),
    "pose": ("pose", 17, (20, 28)),
    "seg": ("seg", 1, (20, 28)),
}


def coded_frames(kind: str, channels: int, height: int, width: int, num_frames: int) -> np.ndarray:
    """Frames whose values say where they come from: rgb (t, y, x), flow (t, x), pose (t, then channel k
    = 13k + x), other kinds x."""
    t, y, x = np.meshgrid(np.arange(num_frames), np.arange(height), np.arange(width), indexing="ij")
    if kind == "rgb":
        planes = [t, y, x]
    elif kind == "flow":
        planes = [t, x]
    elif kind == "pose":
        planes = [t] + [(13 * k + x) % 256 for k in range(1, channels)]
    else:
        planes = [x] * channels
    return np.stack(planes, axis=-1).astype(np.uint8)


def write_store(root: Path, videos: dict = SYNTH_VIDEOS, views: dict = SYNTH_VIEWS,
                failed: dict[str, dict[str, str]] | None = None) -> Path:
    """A store with coded frames, written with the real shard writer (2 videos per shard)."""
    records = [VideoRecord(vid, f"/nowhere/{vid}.mp4", label, vid.split("/")[0], splits)
               for vid, (label, splits, _) in videos.items()]
    manifest = Manifest(dataset="folder", videos_root="/nowhere", classes=["a", "b"], stride=3,
                        videos_per_shard=2, records=records)
    write_json_atomic(root / "manifest.json", manifest.to_json())
    failed = failed or {}
    for view, (kind, channels, (h, w)) in views.items():
        meta = {"view": view, "kind": kind, "channels": channels, "size": min(h, w), "stride": 3,
                "block_frames": K, "compression": "lz4", "params": {"bound": 20.0} if kind == "flow" else {}}
        write_json_atomic(root / view / "view.json", meta)
        for shard in range(manifest.num_shards):
            writer = ShardWriter(root, view, shard, meta, "lz4", K)
            for rec in manifest.shard_records(shard):
                if rec.id in failed.get(view, {}):
                    writer.add_failure(rec.id, rec.path, failed[view][rec.id])
                    continue
                n = videos[rec.id][2]
                writer.begin_video(rec.id)
                writer.append(coded_frames(kind, channels, h, w, n))
                writer.end_video(np.arange(n) * 3, np.arange(n) * 0.12, {})
            writer.commit()
    return root


@pytest.fixture(scope="session")
def synth_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_store(tmp_path_factory.mktemp("synth_store"))


@pytest.fixture(scope="session")
def cli_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built-in sample (6 videos, 3 classes, 128 frames) through `preprocess run --views rgb,flow_dis`."""
    base = tmp_path_factory.mktemp("cli_store")
    assert run_cli("sample", base / "videos", "--frames", "128", "--per-class", "2") == 0
    assert run_cli("run", "--videos", base / "videos", "--out", base / "store", "--views", "rgb,flow_dis",
                   "--no-progress") == 0
    return base / "store"


# -- sampling -------------------------------------------------------------------------------------------

def test_window_long_video_random_and_centred() -> None:
    starts = set()
    for s in range(300):
        idx = window_indices(46, N, K, np.random.default_rng(s))
        np.testing.assert_array_equal(idx, np.arange(idx[0], idx[0] + L))
        starts.add(int(idx[0]))
    assert starts == set(range(0, 46 - L + 1))
    np.testing.assert_array_equal(window_indices(46, N, K, None), np.arange(3, 3 + L))
    np.testing.assert_array_equal(window_indices(L, N, K, np.random.default_rng(0)), np.arange(L))


def test_window_short_video_spread_repeats_and_skip_is_none() -> None:
    for rng in (None, np.random.default_rng(1)):
        idx = window_indices(30, N, K, rng, short="spread")
        assert idx.shape == (L,) and idx.dtype == np.int64
        assert np.all(np.diff(idx) >= 0) and np.all(np.diff(idx) <= 1)
        assert idx[0] == 0 and idx[-1] == 29          # spans the whole video
        assert len(np.unique(idx)) == 30 < L           # every frame used, some twice
    assert window_indices(30, N, K, None, short="skip") is None
    assert window_indices(0, N, K, None) is None
    with pytest.raises(ValueError):
        window_indices(30, N, K, None, short="pad")


def test_dense_windows_half_overlap_last_aligned_to_end() -> None:
    assert [w[0] for w in dense_windows(100, N, K)] == [0, 20, 40, 60]
    wins = dense_windows(105, N, K)
    assert [w[0] for w in wins] == [0, 20, 40, 60, 65] and wins[-1][-1] == 104
    assert all(len(w) == L for w in wins)
    assert [w[0] for w in dense_windows(100, N, K, overlap=0.25)] == [0, 30, 60]
    short = dense_windows(30, N, K)
    assert len(short) == 1 and short[0][-1] == 29
    assert dense_windows(0, N, K) == []


def test_cut_clip_exact_crop_flip_and_index() -> None:
    frames = torch.from_numpy(coded_frames("rgb", 3, 40, 56, 4))
    out = cut_clip(frames, 4, 10, 20, flip=False)
    assert out.shape == (4, 20, 20, 3) and out.dtype == torch.uint8
    assert out.data_ptr() == frames[:, 4, 10].data_ptr()  # no copy: collate copies the view once, into the batch
    np.testing.assert_array_equal(out[0, :, 0, 1], np.arange(4, 24))
    np.testing.assert_array_equal(out[0, 0, :, 2], np.arange(10, 30))
    flipped = cut_clip(frames, 4, 10, 20, flip=True)
    np.testing.assert_array_equal(flipped[0, 0, :, 2], np.arange(29, 9, -1))
    np.testing.assert_array_equal(flipped[2, :, 0, 1], np.arange(4, 24))
    np.testing.assert_array_equal(flipped[:, 0, 0, 0], [0, 1, 2, 3])
    picked = cut_clip(frames, 0, 0, 8, flip=True, index=torch.tensor([0, 0, 3, 1]))
    np.testing.assert_array_equal(picked[:, 0, 0, 0], [0, 0, 3, 1])
    np.testing.assert_array_equal(picked[1, 0, :, 2], np.arange(7, -1, -1))
    perm = torch.tensor([2, 1, 0])
    swapped = cut_clip(frames, 4, 10, 20, flip=True, flip_perm=perm)
    torch.testing.assert_close(swapped, flipped[..., [2, 1, 0]])
    assert torch.equal(cut_clip(frames, 4, 10, 20, flip=False, flip_perm=perm), out)   # no flip, no swap


def test_flip_permutation_coco17() -> None:
    perm = flip_permutation(17, COCO17_FLIP_PAIRS)
    assert perm[0] == 0 and sorted(perm) == list(range(17))
    for a, b in COCO17_FLIP_PAIRS:
        assert perm[a] == b and perm[b] == a
    with pytest.raises(DataError):
        flip_permutation(5, COCO17_FLIP_PAIRS)


# -- dataset on known content --------------------------------------------------------------------------

def decode_rgb(clip: torch.Tensor) -> tuple[np.ndarray, int, int, bool]:
    """(time indices, top, left, flipped) of a coded rgb clip, checking it is one consistent crop."""
    a = clip.numpy().astype(int)
    t, top = a[:, 0, 0, 0], a[0, 0, 0, 1]
    xs = a[0, 0, :, 2]
    flipped = bool(xs[0] > xs[-1])
    left = int(xs.min())
    side = a.shape[1]
    np.testing.assert_array_equal(a[..., 0], np.broadcast_to(t[:, None, None], a.shape[:3]))
    np.testing.assert_array_equal(a[..., 1], np.broadcast_to((top + np.arange(side))[None, :, None], a.shape[:3]))
    cols = left + np.arange(side)
    np.testing.assert_array_equal(a[..., 2], np.broadcast_to((cols[::-1] if flipped else cols)[None, None, :],
                                                             a.shape[:3]))
    return t, int(top), left, flipped


def test_sample_aligned_cropped_and_typed(synth_store: Path) -> None:
    ds = MultiViewClips(synth_store, ["rgb", "flow_dis", "pose", "seg"], split="split1", subset="train")
    assert ds.video_ids == ["a/long1", "b/short1", "b/long3"]
    assert ds.crop_sides == {"rgb": 35, "flow_dis": 35, "pose": 18, "seg": 18}
    flips = {"rgb": set(), "flow_dis": set(), "pose": set(), "seg": set()}
    for epoch in range(8):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            s = ds[i]
            assert s["index"] == i and s["label"] == [0, 1, 1][i]
            assert s["rgb"].shape == (L, 35, 35, 3) and s["rgb"].dtype == torch.uint8
            assert s["flow_dis"].shape == (L, 35, 35, 2) and s["pose"].shape == (L, 18, 18, 17)
            assert s["seg"].shape == (L, 18, 18, 1)
            t, top, left, flipped = decode_rgb(s["rgb"])
            assert 0 <= top <= 40 - 35 and 0 <= left <= 56 - 35
            flips["rgb"].add(flipped)
            if i == 1:   # the short video: spread window, frames repeat
                assert len(np.unique(t)) == 30
            else:
                np.testing.assert_array_equal(t, np.arange(t[0], t[0] + L))
            # same window in every view
            np.testing.assert_array_equal(s["flow_dis"][:, 0, 0, 0].numpy(), t)
            np.testing.assert_array_equal(s["pose"][:, 0, 0, 0].numpy(), t)
            # flow: never flipped (x increases left to right)
            fx = s["flow_dis"][0, 0, :, 1].numpy().astype(int)
            assert np.all(np.diff(fx) == 1)
            flips["flow_dis"].add(False)
            sx = s["seg"][0, 0, :, 0].numpy().astype(int)
            assert np.all(np.abs(np.diff(sx)) == 1)
            flips["seg"].add(bool(sx[0] > sx[-1]))
            flips["pose"].add(check_pose(s["pose"]))
    assert flips == {"rgb": {False, True}, "flow_dis": {False}, "pose": {False, True}, "seg": {False, True}}


def check_pose(clip: torch.Tensor) -> bool:
    """Check a coded pose clip: channel k holds 13·perm[k] + original x; return whether it was flipped."""
    a = clip.numpy().astype(int)
    nose_x = a[0, 0, :, 1]   # channel 1 = left eye = 13 + x unflipped, 26 + x flipped (right eye moved in)
    flipped = bool(nose_x[0] > nose_x[-1])
    perm = flip_permutation(17, COCO17_FLIP_PAIRS) if flipped else np.arange(17)
    x_orig = ((nose_x - 13 * perm[1]) % 256)
    for k in range(1, 17):
        np.testing.assert_array_equal(a[0, 0, :, k], (13 * perm[k] + x_orig) % 256)
    if flipped:
        assert perm[1] == 2 and perm[16] == 15
    return flipped


def test_same_seed_epoch_index_same_sample_other_epoch_other_crop(synth_store: Path) -> None:
    views = ["rgb", "flow_dis", "pose"]
    a = MultiViewClips(synth_store, views, seed=7)
    b = MultiViewClips(synth_store, views, seed=7)
    a.set_epoch(3)
    b.set_epoch(3)
    for i in (4, 0, 2):
        sa, sb = a[i], b[i]
        for v in views:
            assert torch.equal(sa[v], sb[v])
    crops = set()
    for epoch in range(6):
        a.set_epoch(epoch)
        crops.add(decode_rgb(a[0]["rgb"])[1:])
    assert len(crops) > 1
    c = MultiViewClips(synth_store, views, seed=8)
    c.set_epoch(3)
    assert any(not torch.equal(c[i]["rgb"], b[i]["rgb"]) for i in range(len(c)))


def test_eval_is_centred_and_deterministic(synth_store: Path) -> None:
    ds = MultiViewClips(synth_store, ["rgb", "pose"], train=False)
    first = ds[0]
    ds.set_epoch(5)
    assert torch.equal(ds[0]["rgb"], first["rgb"])
    t, top, left, flipped = decode_rgb(first["rgb"])
    assert (int(t[0]), top, left, flipped) == ((50 - L) // 2, (40 - 35) // 2, (56 - 35) // 2, False)


def test_aligned_views_match_store_reads(cli_store: Path) -> None:
    ds = MultiViewClips(cli_store, ["rgb", "flow_dis"], train=False)
    assert len(ds) == 6 and ds.crop_sides == {"rgb": 112, "flow_dis": 112}
    store = Store(cli_store)
    for i in (0, 3):
        s = ds[i]
        vid, n = ds.video_ids[i], ds.num_frames[i]
        idx = window_indices(n, N, K, None)
        for view in ("rgb", "flow_dis"):
            full = store.read(vid, view)[idx]
            h, w = full.shape[1:3]
            top, left = (h - 112) // 2, (w - 112) // 2
            np.testing.assert_array_equal(s[view].numpy(), full[:, top:top + 112, left:left + 112])
    store.close()


def test_no_hdf5_handle_before_fork_and_loader_workers_match(cli_store: Path) -> None:
    ds = MultiViewClips(cli_store, ["rgb", "flow_dis"], seed=3)
    assert ds.store._files == {}
    ds.set_epoch(2)

    def batches(workers: int) -> list[dict]:
        return list(DataLoader(ds, batch_size=2, num_workers=workers, shuffle=False))

    main, workers = batches(0), batches(2)
    assert len(main) == len(workers) == 3
    for a, b in zip(main, workers):
        assert a["rgb"].shape == (2, L, 112, 112, 3) and a["flow_dis"].shape == (2, L, 112, 112, 2)
        for key in ("index", "label", "rgb", "flow_dis"):
            assert torch.equal(a[key], b[key])


# -- selection and errors ------------------------------------------------------------------------------

def test_skip_short_videos_and_fraction(synth_store: Path) -> None:
    spread = MultiViewClips(synth_store, ["rgb"])
    assert len(spread) == 5 and spread.num_skipped == 0
    skip = MultiViewClips(synth_store, ["rgb"], short="skip")
    assert skip.num_skipped == 1 and "b/short1" not in skip.video_ids and len(skip) == 4
    part = MultiViewClips(synth_store, ["rgb"], fraction=0.6, seed=1)
    again = MultiViewClips(synth_store, ["rgb"], fraction=0.6, seed=1)
    assert len(part) == 3 and part.video_ids == again.video_ids
    assert set(part.video_ids) <= set(spread.video_ids)
    test = MultiViewClips(synth_store, ["rgb"], split="split1", subset="test", fraction=0.3)
    assert len(test) == 1


def test_build_errors(synth_store: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not a store"):
        MultiViewClips(tmp_path, ["rgb"])
    with pytest.raises(DataError, match=r"flow_tvl1.*it has: rgb, flow_dis, pose, seg"):
        MultiViewClips(synth_store, ["rgb", "flow_tvl1"])
    with pytest.raises(DataError, match=r"split 'split2'.*splits: split1"):
        MultiViewClips(synth_store, ["rgb"], split="split2")
    with pytest.raises(DataError, match=r"no 'val' videos"):
        MultiViewClips(synth_store, ["rgb"], split="split1", subset="val")
    with pytest.raises(DataError, match=r"no video to sample.*3 shorter"):
        MultiViewClips(synth_store, ["rgb"], split="split1", subset="train", short="skip",
                       num_blocks=21, block_frames=3)


def test_video_missing_from_a_view(tmp_path: Path) -> None:
    root = write_store(tmp_path, failed={"flow_dis": {"b/long3": "flow failed: too dark"}})
    with pytest.raises(DataError) as err:
        MultiViewClips(root, ["rgb", "flow_dis"], split="split1", subset="train")
    msg = str(err.value)
    assert "flow_dis" in msg and "1 of the 3" in msg and "b/long3" in msg and "too dark" in msg
    assert "\n" not in msg
    ok = MultiViewClips(root, ["rgb", "flow_dis"], split="split1", subset="test")   # the test half is complete
    assert len(ok) == 2


# -- device augmentation -------------------------------------------------------------------------------

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def constant_clips(colour: tuple[int, ...], batch: int = 2, side: int = 24, device: str = "cpu") -> torch.Tensor:
    """uint8 (B, N·K, side, side, C) clips of one colour."""
    x = torch.tensor(colour, dtype=torch.uint8, device=device)
    return x.view(1, 1, 1, 1, -1).expand(batch, L, side, side, len(colour)).contiguous()


def unnormalise(y: torch.Tensor) -> torch.Tensor:
    """ImageNet-normalised (B, N, 3, K, H, W) back to [0, 1]."""
    mean = torch.tensor(IMAGENET_MEAN, device=y.device).view(1, 1, 3, 1, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=y.device).view(1, 1, 3, 1, 1, 1)
    return y * std + mean


@pytest.mark.parametrize("device", DEVICES)
def test_eval_rgb_resize_and_normalise(device: str) -> None:
    aug = ViewAugment("rgb", 32, train=False)
    y = as_blocks(aug(constant_clips((128, 64, 32), device=device)), N)
    assert y.shape == (2, N, 3, K, 32, 32) and y.dtype == torch.float32 and y.device.type == device
    want = [(v / 255 - m) / s for v, m, s in zip((128, 64, 32), IMAGENET_MEAN, IMAGENET_STD)]
    for c in range(3):
        torch.testing.assert_close(y[:, :, c], torch.full_like(y[:, :, c], want[c]), atol=1e-5, rtol=0)
    aug.train()   # a parent's .train() must not make a validation instance random
    assert torch.equal(y, as_blocks(aug(constant_clips((128, 64, 32), device=device)), N))


def test_layout_blocks_and_frames() -> None:
    x = torch.arange(L, dtype=torch.uint8).view(1, L, 1, 1, 1).expand(1, L, 4, 4, 2).contiguous()
    frames = ViewAugment("seg", 4, train=True)(x)
    assert frames.shape == (1, L, 2, 4, 4)
    y = as_blocks(frames, N)
    assert y.shape == (1, N, 2, K, 4, 4)
    for n in range(N):
        for k in range(K):
            torch.testing.assert_close(y[0, n, :, k], torch.full((2, 4, 4), (n * K + k) / 255))


@pytest.mark.parametrize("device", DEVICES)
def test_flow_and_other_kinds_value_maps(device: str) -> None:
    flow = ViewAugment("flow", 16, train=True)
    y = as_blocks(flow(constant_clips((255, 0), side=12, device=device), torch.Generator(device=device)), N)
    torch.testing.assert_close(y[:, :, 0], torch.ones_like(y[:, :, 0]))
    torch.testing.assert_close(y[:, :, 1], -torch.ones_like(y[:, :, 1]))
    pose = as_blocks(ViewAugment("pose", 8, train=True)(constant_clips((51,) * 17, side=8, device=device)), N)
    assert pose.shape == (2, N, 17, K, 8, 8)
    torch.testing.assert_close(pose, torch.full_like(pose, 0.2))


@pytest.mark.parametrize("device", DEVICES)
def test_grey_frames_have_equal_channels(device: str) -> None:
    x = constant_clips((200, 100, 50), device=device)
    plain = unnormalise(as_blocks(ViewAugment("rgb", 16, True, grey_p=1.0, jitter=(0, 0, 0, 0))(
        x, torch.Generator(device=device).manual_seed(0)), N))
    assert torch.allclose(plain[:, :, 0], plain[:, :, 1], atol=1e-5)
    assert torch.allclose(plain[:, :, 1], plain[:, :, 2], atol=1e-5)
    values = {round(float(v) * 255) for v in plain[:, :, 0, :, 0, 0].flatten()}
    assert values == {200, 100, 50}    # one random channel per frame, all three occur
    jittered = unnormalise(as_blocks(ViewAugment("rgb", 16, True, grey_p=1.0)(x, torch.Generator(device=device)), N))
    assert torch.allclose(jittered[:, :, 0], jittered[:, :, 1], atol=1e-4)
    assert torch.allclose(jittered[:, :, 1], jittered[:, :, 2], atol=1e-4)


@pytest.mark.parametrize("device", DEVICES)
def test_jitter_per_frame_and_seeded(device: str) -> None:
    aug = ViewAugment("rgb", 16, True, grey_p=0.0)
    x = constant_clips((180, 120, 60), batch=1, device=device)
    y = as_blocks(aug(x, torch.Generator(device=device).manual_seed(5)), N)
    colours = y[0, :, :, :, 0, 0].permute(0, 2, 1).reshape(L, 3)     # one colour per frame
    assert len({tuple(round(float(v), 4) for v in c) for c in colours}) == L
    assert torch.equal(y, as_blocks(aug(x, torch.Generator(device=device).manual_seed(5)), N))
    assert not torch.equal(y, as_blocks(aug(x, torch.Generator(device=device).manual_seed(6)), N))
    # each frame stays spatially constant: one set of factors per frame
    assert torch.allclose(y, y[..., :1, :1].expand_as(y))


def test_hue_rotation_keeps_luma_and_full_turn_is_identity() -> None:
    from train.data.augment import hue_matrices, luma
    x = torch.rand(4, 3, 5, 5)
    m = hue_matrices(torch.tensor([0.0, 2 * math.pi, 1.0, -2.0]))
    out = torch.einsum("nij,njhw->nihw", m, x)
    torch.testing.assert_close(out[:2], x[:2], atol=1e-5, rtol=0)
    torch.testing.assert_close(luma(out), luma(x), atol=1e-5, rtol=0)
