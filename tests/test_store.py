"""The store contract: layout, chunking, attributes, the reader, and what `verify` catches."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from preprocess.store import Store
from preprocess.store.layout import video_key
from preprocess.store.reader import StoreDamaged
from tests.conftest import FAST_TVL1, run_cli


@pytest.fixture(scope="module")
def store_root(sample_videos, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("store") / "store"
    assert run_cli("run", "--videos", sample_videos, "--out", root, "--views", "rgb,flow_tvl1,flow_dis",
                   "--tvl1", FAST_TVL1, "--no-progress", "--jobs", "2", "--videos-per-shard", "2") == 0
    return root


def _copy(root: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "copy"
    shutil.copytree(root, dst)
    return dst


def test_layout_and_attributes(store_root):
    manifest = json.loads((store_root / "manifest.json").read_text())
    assert manifest["stride"] == 3 and manifest["videos_per_shard"] == 2 and manifest["classes"] == ["pan", "rotate", "zoom"]
    assert [r["id"] for r in manifest["records"]] == ["pan/pan_01", "pan/pan_02", "rotate/rotate_01",
                                                       "rotate/rotate_02", "zoom/zoom_01", "zoom/zoom_02"]
    for view in ("rgb", "flow_tvl1", "flow_dis"):
        assert sorted(p.name for p in (store_root / view).glob("shard-*.h5")) == [
            "shard-00000.h5", "shard-00001.h5", "shard-00002.h5"]
    meta = json.loads((store_root / "flow_tvl1" / "view.json").read_text())
    assert meta["params"]["bound"] == 20.0 and meta["params"]["algorithm"]["nscales"] == 3
    assert meta["params"]["algorithm"]["tau"] == 0.25                   # OpenCV default kept
    assert meta["stride"] == 3 and meta["size"] == 128 and meta["block_frames"] == 5
    assert meta["versions"]["opencv-contrib-python-headless"] == "4.11.0.86"
    with h5py.File(store_root / "rgb" / "shard-00001.h5", "r") as f:
        assert f.attrs["complete"] and json.loads(f.attrs["view_params"])["view"] == "rgb"
        g = f["videos"][video_key("rotate/rotate_01")]
        assert g["frames"].shape == (13, 128, 171, 3) and g["frames"].chunks == (5, 128, 171, 3)
        assert g["frames"].compression is not None
        assert g.attrs["fps"] == 25.0 and tuple(g.attrs["original_size"]) == (120, 160)
        assert g.attrs["source_path"].endswith("rotate/rotate_01.mp4") and g.attrs["label"] == 1
        assert g["frame_indices"][()].tolist() == list(range(0, 39, 3))


def test_reader_slices_and_pixels(store_root):
    store = Store(store_root)
    full = store.read("zoom/zoom_02", "rgb")
    np.testing.assert_array_equal(store.read("zoom/zoom_02", "rgb", 4, 9), full[4:9])
    q = store.read("pan/pan_01", "flow_dis", 2, 4)
    px = store.read("pan/pan_01", "flow_dis", 2, 4, pixels=True)
    assert q.dtype == np.uint8 and px.dtype == np.float32 and px.shape == (2, 128, 171, 2)
    np.testing.assert_allclose(px, q * (40 / 255) - 20, atol=1e-5)
    # pan_01 moves content by (+1.5, +0.3) px per source frame at 160x120; stored at 171x128 (x1.0667)
    centre = px[:, 30:-30, 30:-30]
    assert abs(float(np.median(centre[..., 0])) - 1.6) < 0.2 and abs(float(np.median(centre[..., 1])) - 0.32) < 0.2
    with pytest.raises(IndexError):
        store.read("pan/pan_01", "rgb", 10, 20)
    with pytest.raises(ValueError):
        store.read("pan/pan_01", "rgb", pixels=True)


def test_reader_reads_a_box_of_every_frame_into_a_given_array(store_root):
    """What the training data path reads: only a crop of each frame, straight into a batch row."""
    store = Store(store_root)
    full = store.read("zoom/zoom_02", "rgb", 2, 9)                     # (7, 128, 171, 3)
    box = store.read("zoom/zoom_02", "rgb", 2, 9, box=(5, 140, 20, 31))  # rows 5..24, columns 140..170 (the last)
    np.testing.assert_array_equal(box, full[:, 5:25, 140:171])
    row = np.full((7, 20, 31, 3), 7, np.uint8)
    assert store.read("zoom/zoom_02", "rgb", 2, 9, box=(5, 140, 20, 31), out=row) is row
    np.testing.assert_array_equal(row, full[:, 5:25, 140:171])
    with pytest.raises(IndexError, match="box"):
        store.read("zoom/zoom_02", "rgb", 2, 9, box=(5, 141, 20, 31))   # one column past the right edge
    with pytest.raises(ValueError, match="out must be"):
        store.read("zoom/zoom_02", "rgb", 2, 9, out=np.empty((7, 128, 171, 3), np.float32))


def test_reader_is_safe_in_dataloader_workers(store_root):
    torch = pytest.importorskip("torch")

    class Clips(torch.utils.data.Dataset):
        def __init__(self, store):
            self.store, self.ids = store, store.video_ids("rgb")

        def __len__(self):
            return len(self.ids)

        def __getitem__(self, i):
            return torch.from_numpy(self.store.read(self.ids[i], "flow_tvl1", 0, 5)).sum()

    store = Store(store_root)
    expected = [int(store.read(v, "flow_tvl1", 0, 5).astype(np.int64).sum()) for v in store.video_ids("rgb")]
    loader = torch.utils.data.DataLoader(Clips(store), batch_size=None, num_workers=2,
                                         multiprocessing_context="fork")
    assert [int(x) for x in loader] == expected            # parent's open handles are not reused after fork
    clone = pickle.loads(pickle.dumps(store))
    assert clone._files == {} and clone.num_frames("pan/pan_01", "rgb") == 13


def test_reader_errors_name_what_is_wrong(store_root):
    from preprocess.errors import UserError
    store = Store(store_root)
    with pytest.raises(UserError, match="view 'pose' is not in"):
        store.read("pan/pan_01", "pose")
    with pytest.raises(UserError, match="video 'nope' is not in"):
        store.read("nope", "rgb")


def test_verify_passes_and_info_summarises(store_root, capsys):
    assert run_cli("verify", store_root, "--deep") == 0
    assert run_cli("info", store_root, "--json") == 0
    info = json.loads(capsys.readouterr().out)
    rgb = info["views"]["rgb"]
    assert info["videos"] == 6 and rgb["videos"] == 6 and rgb["frames"] == 6 * 13 and rgb["failed"] == 0
    assert rgb["bytes_per_frame"] == pytest.approx(rgb["bytes"] / 78, rel=1e-3)
    assert rgb["frame_shapes"] == [[128, 171, 3]]


def _verify_lines(root: Path, capsys) -> tuple[int, list[str]]:
    capsys.readouterr()
    rc = run_cli("verify", root)
    return rc, capsys.readouterr().out.strip().splitlines()


def test_verify_reports_a_missing_shard(store_root, tmp_path, capsys):
    root = _copy(store_root, tmp_path)
    (root / "flow_dis" / "shard-00002.h5").unlink()
    rc, lines = _verify_lines(root, capsys)
    assert rc == 1 and lines == ["flow_dis: 1 of 3 shards missing (first: shard-00002.h5); "
                                 "the job has not finished: re-run it"]


def test_verify_reports_an_unreadable_shard(store_root, tmp_path, capsys):
    root = _copy(store_root, tmp_path)
    path = root / "rgb" / "shard-00001.h5"
    path.write_bytes(path.read_bytes()[:4096])
    rc, lines = _verify_lines(root, capsys)
    assert rc == 1 and len(lines) == 1 and lines[0].startswith(f"rgb: unreadable shard {path}")


def test_verify_reports_a_video_in_one_view_only(store_root, tmp_path, capsys):
    root = _copy(store_root, tmp_path)
    with h5py.File(root / "flow_tvl1" / "shard-00000.h5", "a") as f:
        del f["videos"][video_key("pan/pan_02")]
    rc, lines = _verify_lines(root, capsys)
    assert rc == 1
    assert "flow_tvl1: video 'pan/pan_02' is missing from shard-00000.h5 and not recorded as failed" in lines
    assert "video 'pan/pan_02': in rgb but not in flow_tvl1 (absent)" in lines


def test_verify_reports_different_frame_indices(store_root, tmp_path, capsys):
    root = _copy(store_root, tmp_path)
    with h5py.File(root / "flow_dis" / "shard-00001.h5", "a") as f:
        f["videos"][video_key("rotate/rotate_02")]["frame_indices"][5] += 1
    rc, lines = _verify_lines(root, capsys)
    assert rc == 1 and lines == [                 # index 15 became 16, the frame its flow goes to
        "flow_dis: video 'rotate/rotate_02' has flow targets that do not follow its frame indices",
        "video 'rotate/rotate_02': frame indices differ between rgb (13 frames) and flow_dis (13 frames)"]


def test_verify_reports_duplicates(store_root, tmp_path, capsys):
    root = _copy(store_root, tmp_path)
    with h5py.File(root / "rgb" / "shard-00000.h5", "r") as src, \
            h5py.File(root / "rgb" / "shard-00002.h5", "a") as dst:
        src.copy(src["videos"][video_key("pan/pan_01")], dst["videos"], name=video_key("pan/pan_01"))
    rc, lines = _verify_lines(root, capsys)
    assert rc == 1 and lines == ["rgb: video 'pan/pan_01' stored twice (shards 0 and 2)"]


ZSTD_FILTER = "32015"  # HDF5 registered filter id of Zstandard (h5py lists plugin filters by id)


def test_a_run_with_other_settings_is_refused(store_root, sample_videos, tmp_path, capsys):
    root = _copy(store_root, tmp_path)
    capsys.readouterr()
    assert run_cli("run", "--videos", sample_videos, "--out", root, "--views", "flow_tvl1", "--no-progress") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "flow_tvl1 was made with other settings (params.algorithm.inner_iterations: 10 in " \
        "the store, 30 in this run; params.algorithm.nscales: 3 in the store, 5 in this run;" in err[0]
    assert "'tau'" not in err[0] and "0.25" not in err[0]   # only the keys that differ are named
    assert run_cli("run", "--videos", sample_videos, "--out", root, "--stride", "2", "--no-progress") == 2
    assert "was made with --stride 3, this run asks 2" in capsys.readouterr().err


def test_an_existing_view_keeps_the_compression_it_was_made_with(sample_videos, tmp_path, capsys):
    """A store begun with another rgb compression (e.g. before the default changed) goes on with it; naming a
    different one explicitly is refused like any other setting that would change the bytes."""
    root = tmp_path / "s"
    args = ["run", "--videos", sample_videos, "--out", root, "--views", "rgb", "--no-progress", "--num-shards", "2"]
    assert run_cli(*args, "--shard", "0", "--compression", "rgb=zstd-1") == 0
    assert run_cli(*args, "--shard", "1") == 0                       # the default (lz4) is not imposed
    assert json.loads((root / "rgb" / "view.json").read_text())["compression"] == "zstd-1"
    for shard in sorted((root / "rgb").glob("shard-*.h5")):
        with h5py.File(shard) as f:
            first = next(iter(f["videos"].values()))["frames"]
            assert ZSTD_FILTER in first._filters, shard.name
    capsys.readouterr()
    assert run_cli(*args, "--compression", "rgb=lz4") == 2
    assert "(compression: 'zstd-1' in the store, 'lz4' in this run)" in capsys.readouterr().err
    assert run_cli("verify", root) == 0


def test_adding_a_view_later_leaves_the_others_untouched(store_root, sample_videos, tmp_path):
    root = _copy(store_root, tmp_path)
    before = {p: p.stat().st_mtime_ns for p in root.glob("*/shard-*.h5")}
    assert run_cli("run", "--videos", sample_videos, "--out", root, "--views", "rgb,flow_farneback",
                   "--no-progress") == 0
    assert {p: p.stat().st_mtime_ns for p in before} == before
    assert len(list((root / "flow_farneback").glob("shard-*.h5"))) == 3
    assert run_cli("verify", root) == 0


def test_reader_reads_only_the_chunks_it_needs(store_root, tmp_path):
    """Garble the last chunk of a video on disk: frames before it still read, frames in it do not."""
    root = _copy(store_root, tmp_path)
    path = root / "rgb" / "shard-00002.h5"
    with h5py.File(path, "r") as f:
        ds = f["videos"][video_key("zoom/zoom_01")]["frames"]
        assert ds.id.get_num_chunks() == 3                  # 13 frames in blocks of 5
        last = ds.id.get_chunk_info(2)
        clean = ds[:10]
    with open(path, "r+b") as fh:
        fh.seek(last.byte_offset)
        fh.write(b"\xff" * last.size)
    store = Store(root)
    np.testing.assert_array_equal(store.read("zoom/zoom_01", "rgb", 0, 10), clean)
    with pytest.raises(StoreDamaged, match=r"frames \[9, 13\) of 'zoom/zoom_01' in .*shard-00002.h5 are damaged"):
        store.read("zoom/zoom_01", "rgb", 9, 13)
