"""Tests for data_specs: UCF101, HMDB51, Kinetics-400 and folder loaders, spec files, and their errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from data_specs import DATASETS, VIDEO_EXTENSIONS, DatasetError, VideoList, VideoRecord, load_video_list


def touch(root: Path, *rels: str) -> None:
    """Create empty files (stand-ins for videos) under root."""
    for rel in rels:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")


def write(path: Path, text: str, crlf: bool = False) -> Path:
    """Write a text file, optionally with CRLF line endings."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes((text.replace("\n", "\r\n") if crlf else text).encode())
    return path


# ----------------------------------------------------------------------------------------------- UCF101

UCF_CLASSES = "1 ApplyEyeMakeup\n2 Archery\n\n3 HandstandPushups  \n"


def ucf_annotations(root: Path, crlf: bool = True) -> Path:
    """A small ucfTrainTestlist folder with splits 1 and 2 (split 3 absent)."""
    ann = root / "ucfTrainTestlist"
    write(ann / "classInd.txt", UCF_CLASSES, crlf)
    write(ann / "trainlist01.txt",
          "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\n"
          "Archery/v_Archery_g08_c01.avi 2   \n"
          "\n"
          "HandstandPushups/v_HandStandPushups_g08_c01.avi 3\n", crlf)
    write(ann / "testlist01.txt",
          "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi\n"
          "Archery/v_Archery_g01_c01.avi\n"
          "Archery/v_Archery_g02_c01.avi\n", crlf)  # g02 is not on disk
    write(ann / "trainlist02.txt",
          "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi 1\n"
          "Archery/v_Archery_g01_c01.avi 2\n", crlf)
    write(ann / "testlist02.txt",
          "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi\n"
          "Archery/v_Archery_g02_c01.avi\n", crlf)
    return ann


UCF_FILES = [
    "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi",
    "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi",
    "Archery/v_Archery_g08_c01.avi",
    "Archery/v_Archery_g01_c01.avi",
    "HandstandPushups/v_HandStandPushups_g08_c01.avi",
    "Archery/v_Archery_g99_c01.avi",  # on disk but in no list: ignored
]


def test_ucf101_class_folders_crlf_and_splits(tmp_path: Path) -> None:
    videos = tmp_path / "UCF-101"
    touch(videos, *UCF_FILES)
    ann = ucf_annotations(tmp_path)
    vl = load_video_list(videos, "ucf101", ann)

    assert vl.dataset == "ucf101"
    assert vl.videos_root == str(videos)
    assert vl.classes == ["ApplyEyeMakeup", "Archery", "HandstandPushups"]
    assert [r.id for r in vl.records] == [
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01",
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01",
        "Archery/v_Archery_g01_c01",
        "Archery/v_Archery_g08_c01",
        "HandstandPushups/v_HandStandPushups_g08_c01",
    ]
    by_id = {r.id: r for r in vl.records}
    eye = by_id["ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01"]
    assert eye.label == 0 and eye.label_name == "ApplyEyeMakeup"
    assert eye.splits == {"1": "train", "2": "test"}  # one record, two splits
    assert eye.path == str(videos / "ApplyEyeMakeup" / "v_ApplyEyeMakeup_g08_c01.avi")
    assert by_id["Archery/v_Archery_g01_c01"].splits == {"1": "test", "2": "train"}
    assert by_id["Archery/v_Archery_g08_c01"].splits == {"1": "train"}  # not used by split 2
    assert by_id["HandstandPushups/v_HandStandPushups_g08_c01"].label == 2

    assert vl.split_names == ["1", "2"]
    assert [r.id for r in vl.split("2", "train")] == [
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01", "Archery/v_Archery_g01_c01"]
    assert vl.split("1", "val") == []
    assert vl.missing == ["Archery/v_Archery_g02_c01.avi"]
    assert vl.missing_summary() == (
        f"1 video listed in {ann} is missing under {videos}: Archery/v_Archery_g02_c01.avi")


def test_ucf101_flat_layout_keeps_class_ids(tmp_path: Path) -> None:
    videos = tmp_path / "flat"
    touch(videos, *(rel.split("/")[1] for rel in UCF_FILES))
    vl = load_video_list(videos, "UCF101", ucf_annotations(tmp_path, crlf=False))
    rec = next(r for r in vl.records if r.id == "Archery/v_Archery_g08_c01")
    assert rec.path == str(videos / "v_Archery_g08_c01.avi")
    assert rec.label == 1 and rec.splits == {"1": "train"}
    assert len(vl.records) == 5


def test_ucf101_class_not_in_classind(tmp_path: Path) -> None:
    touch(tmp_path / "v", *UCF_FILES)
    ann = ucf_annotations(tmp_path)
    write(ann / "testlist02.txt", "Archery/v_Archery_g08_c01.avi\nBowling/v_Bowling_g01_c01.avi\n")
    with pytest.raises(DatasetError, match=r"testlist02\.txt line 2: class 'Bowling'") as err:
        load_video_list(tmp_path / "v", "ucf101", ann)
    assert str(ann / "testlist02.txt") in str(err.value)


def test_ucf101_bad_class_id_and_missing_classind(tmp_path: Path) -> None:
    touch(tmp_path / "v", *UCF_FILES)
    ann = ucf_annotations(tmp_path)
    write(ann / "trainlist02.txt", "Archery/v_Archery_g01_c01.avi 7\n")
    with pytest.raises(DatasetError, match=r"trainlist02\.txt line 1: class id 7"):
        load_video_list(tmp_path / "v", "ucf101", ann)
    write(ann / "trainlist02.txt", "Archery/v_Archery_g01_c01.avi 1\n")  # folder says class 2
    with pytest.raises(DatasetError, match=r"trainlist02\.txt line 1: .*folder 'Archery'"):
        load_video_list(tmp_path / "v", "ucf101", ann)
    (ann / "classInd.txt").unlink()
    with pytest.raises(DatasetError, match="lacks classInd.txt") as err:
        load_video_list(tmp_path / "v", "ucf101", ann)
    assert str(err.value) == f"UCF101 annotations folder {ann} lacks classInd.txt"


def test_ucf101_needs_annotations_and_complete_pairs(tmp_path: Path) -> None:
    touch(tmp_path / "v", *UCF_FILES)
    with pytest.raises(DatasetError, match="UCF101 needs annotations"):
        load_video_list(tmp_path / "v", "ucf101")
    ann = ucf_annotations(tmp_path)
    (ann / "testlist02.txt").unlink()
    with pytest.raises(DatasetError, match="has trainlist02.txt but lacks testlist02.txt"):
        load_video_list(tmp_path / "v", "ucf101", ann)


def test_ucf101_train_and_test_in_same_split_is_an_error(tmp_path: Path) -> None:
    touch(tmp_path / "v", *UCF_FILES)
    ann = ucf_annotations(tmp_path)
    write(ann / "testlist01.txt", "Archery/v_Archery_g08_c01.avi\n")
    with pytest.raises(DatasetError, match=r"testlist01\.txt line 1: .* is test in split 1 but train"):
        load_video_list(tmp_path / "v", "ucf101", ann)


# ----------------------------------------------------------------------------------------------- HMDB51

def hmdb_annotations(root: Path) -> Path:
    """Split files for two classes; flags 0/1/2 vary per split."""
    ann = root / "testTrainMulti_7030_splits"
    write(ann / "brush_hair_test_split1.txt", "A_brush_hair_0.avi 1 \nB_brush_hair_0.avi 2 \nC_brush_hair_0.avi 0 \n")
    write(ann / "brush_hair_test_split2.txt", "A_brush_hair_0.avi 2 \nB_brush_hair_0.avi 0 \nC_brush_hair_0.avi 0 \n",
          crlf=True)
    write(ann / "cartwheel_test_split1.txt", "D_cartwheel_0.avi 1\nE_cartwheel_0.avi 2\n")
    write(ann / "cartwheel_test_split2.txt", "D_cartwheel_0.avi 0\nE_cartwheel_0.avi 1\n")
    write(ann / "README.txt", "not a split file\n")
    return ann


def test_hmdb51_flags_and_layouts(tmp_path: Path) -> None:
    ann = hmdb_annotations(tmp_path)
    videos = tmp_path / "hmdb51"
    touch(videos, "brush_hair/A_brush_hair_0.avi", "brush_hair/B_brush_hair_0.avi",
          "brush_hair/C_brush_hair_0.avi", "D_cartwheel_0.avi")  # cartwheel flat; E missing
    vl = load_video_list(videos, "hmdb51", ann)
    assert vl.classes == ["brush_hair", "cartwheel"]
    by_id = {r.id: r for r in vl.records}
    assert sorted(by_id) == ["brush_hair/A_brush_hair_0", "brush_hair/B_brush_hair_0", "cartwheel/D_cartwheel_0"]
    assert by_id["brush_hair/A_brush_hair_0"].splits == {"1": "train", "2": "test"}
    assert by_id["brush_hair/B_brush_hair_0"].splits == {"1": "test"}  # flag 0 in split 2: absent
    assert by_id["cartwheel/D_cartwheel_0"].label == 1
    assert by_id["cartwheel/D_cartwheel_0"].path == str(videos / "D_cartwheel_0.avi")
    assert vl.missing == ["cartwheel/E_cartwheel_0.avi"]  # C is flag 0 everywhere: neither record nor missing
    assert "1 video listed in" in vl.missing_summary() and str(ann) in vl.missing_summary()


def test_hmdb51_malformed_line(tmp_path: Path) -> None:
    ann = hmdb_annotations(tmp_path)
    bad = write(ann / "cartwheel_test_split2.txt", "D_cartwheel_0.avi 0\nE_cartwheel_0.avi 3\n")
    touch(tmp_path / "v", "D_cartwheel_0.avi")
    with pytest.raises(DatasetError, match="line 2: expected") as err:
        load_video_list(tmp_path / "v", "hmdb51", ann)
    assert str(bad) in str(err.value)


def test_hmdb51_folder_without_split_files(tmp_path: Path) -> None:
    touch(tmp_path / "v", "x.avi")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match=f"{tmp_path / 'empty'} has no <class>_test_split<N>.txt"):
        load_video_list(tmp_path / "v", "hmdb51", tmp_path / "empty")


# ------------------------------------------------------------------------------------------- Kinetics-400

def kinetics_annotations(root: Path) -> Path:
    """train.csv with is_cc, validate.csv with 'validate' and float times, test.csv without labels."""
    ann = root / "kinetics400"
    write(ann / "train.csv",
          "label,youtube_id,time_start,time_end,split,is_cc\n"
          "abseiling,aaa,14,24,train,0\n"
          '"passing American football (in game)",bbb,0,10,train,0\n'
          "abseiling,gone,5,15,train,0\n", crlf=True)
    write(ann / "validate.csv",
          "label,youtube_id,time_start,time_end,split\n"
          "abseiling,ccc,14.0,24.0,validate\n")
    write(ann / "test.csv",
          "youtube_id,time_start,time_end,split\n"
          "ddd,1,11,test\n"
          "eee,2,12,test\n")
    return ann


def test_kinetics400_ids_labels_splits_and_missing(tmp_path: Path) -> None:
    ann = kinetics_annotations(tmp_path)
    videos = tmp_path / "k400"
    touch(videos,
          "train/abseiling/aaa_000014_000024.mp4",
          "train/passing American football (in game)/bbb_000000_000010.MP4",
          "val/abseiling/ccc_000014_000024.mkv",
          "test/ddd.mp4")  # fallback name {youtube_id}.<ext>; eee is missing
    vl = load_video_list(videos, "kinetics400", ann)
    assert vl.classes == ["abseiling", "passing American football (in game)"]
    by_id = {r.id: r for r in vl.records}
    assert sorted(by_id) == [
        "abseiling/aaa_000014_000024",
        "abseiling/ccc_000014_000024",
        "passing_American_football_(in_game)/bbb_000000_000010",
        "unlabelled/ddd_000001_000011",
    ]
    football = by_id["passing_American_football_(in_game)/bbb_000000_000010"]
    assert (football.label, football.label_name, football.splits) == (
        1, "passing American football (in game)", {"1": "train"})
    assert by_id["abseiling/ccc_000014_000024"].splits == {"1": "val"}
    test_clip = by_id["unlabelled/ddd_000001_000011"]
    assert (test_clip.label, test_clip.label_name, test_clip.splits) == (-1, "", {"1": "test"})
    assert test_clip.path == str(videos / "test" / "ddd.mp4")
    assert vl.missing == ["eee_000002_000012", "gone_000005_000015"]
    assert vl.missing_summary() == (
        f"2 videos listed in {ann} are missing under {videos}: eee_000002_000012, gone_000005_000015")
    assert [r.id for r in vl.split("1", "val")] == ["abseiling/ccc_000014_000024"]


def test_kinetics400_single_csv_and_errors(tmp_path: Path) -> None:
    videos = tmp_path / "clips"
    touch(videos, "aaa_000001_000011.webm")
    csv_file = write(tmp_path / "k.csv", "label,youtube_id,time_start,time_end,split\nriding,aaa,1,11,validate\n")
    vl = load_video_list(videos, "kinetics400", csv_file)
    assert vl.classes == ["riding"]  # no train rows: classes from all rows
    assert vl.records[0].id == "riding/aaa_000001_000011" and vl.records[0].splits == {"1": "val"}

    write(csv_file, "label,youtube_id,time_start,time_end,split\nriding,aaa,x,11,train\n")
    with pytest.raises(DatasetError, match=r"k\.csv line 2: bad time_start"):
        load_video_list(videos, "kinetics400", csv_file)
    write(csv_file, "riding,aaa,1,11,train\n")
    with pytest.raises(DatasetError, match=r"k\.csv: expected a header"):
        load_video_list(videos, "kinetics400", csv_file)


# ------------------------------------------------------------------------------------------------ folder

def test_folder_flat_and_class_layouts(tmp_path: Path) -> None:
    flat = tmp_path / "flat"
    touch(flat, "b.MP4", "a.avi", ".hidden.mp4", "notes.txt", ".cache/c.mp4")
    vl = load_video_list(flat)  # dataset None + folder -> "folder"
    assert vl.dataset == "folder" and vl.classes == [] and vl.missing == [] and vl.missing_summary() == ""
    assert [(r.id, r.label, r.label_name, r.splits) for r in vl.records] == [
        ("a", -1, "", {}), ("b", -1, "", {})]
    assert vl.records[1].path == str(flat / "b.MP4")

    classes = tmp_path / "classes"
    touch(classes, "walk/x.mp4", "run/y.webm", "run/sub/z.gif", "empty_class/readme.txt")
    outside = tmp_path / "outside"
    touch(outside, "s.mov")
    os.symlink(outside, classes / "swim")  # symlinked class folder is followed
    vl = load_video_list(classes, "folder")
    assert vl.classes == ["run", "swim", "walk"]
    assert [(r.id, r.label) for r in vl.records] == [
        ("run/sub/z", 0), ("run/y", 0), ("swim/s", 1), ("walk/x", 2)]
    assert vl.records[2].path == str(classes / "swim" / "s.mov")


def test_folder_errors(tmp_path: Path) -> None:
    mixed = tmp_path / "mixed"
    touch(mixed, "top.mp4", "cls/inner.mp4")
    with pytest.raises(DatasetError, match="mixes videos at the top level") as err:
        load_video_list(mixed)
    assert str(mixed) in str(err.value)

    empty = tmp_path / "empty"
    touch(empty, "a.txt")
    with pytest.raises(DatasetError) as err:
        load_video_list(empty)
    assert str(err.value) == f"no videos found under {empty} (looked for {' '.join(VIDEO_EXTENSIONS)})"

    dup = tmp_path / "dup"
    touch(dup, "clip.avi", "clip.mp4")
    with pytest.raises(DatasetError, match="two videos get the id 'clip'") as err:
        load_video_list(dup)
    assert str(dup / "clip.avi") in str(err.value) and str(dup / "clip.mp4") in str(err.value)

    with pytest.raises(DatasetError, match="folder dataset takes no annotations"):
        load_video_list(dup, "folder", tmp_path)
    with pytest.raises(DatasetError, match="does not exist"):
        load_video_list(tmp_path / "nope")


# ------------------------------------------------------------------------------------ registry and specs

def test_unknown_dataset() -> None:
    with pytest.raises(DatasetError) as err:
        load_video_list(".", "ucf")
    assert str(err.value) == "unknown dataset 'ucf'; choose from folder, hmdb51, kinetics400, ucf101"
    assert sorted(DATASETS) == ["folder", "hmdb51", "kinetics400", "ucf101"]


def test_yaml_and_json_spec_with_relative_paths(tmp_path: Path) -> None:
    touch(tmp_path / "data" / "UCF-101", *UCF_FILES)
    ucf_annotations(tmp_path / "data")
    spec = write(tmp_path / "data" / "ucf.yaml",
                 "dataset: ucf101\nvideos: UCF-101\nannotations: ucfTrainTestlist\n")
    vl = load_video_list(spec)
    assert vl.videos_root == str(tmp_path / "data" / "UCF-101")
    assert vl.annotations == str(tmp_path / "data" / "ucfTrainTestlist")
    assert len(vl.records) == 5

    spec_json = write(tmp_path / "folder.json", json.dumps({"videos": "data/UCF-101"}))
    assert load_video_list(spec_json).dataset == "folder"

    bad = write(tmp_path / "bad.yml", "dataset: ucf101\nvideos: v\nannotation: a\n")
    with pytest.raises(DatasetError, match="unknown key") as err:
        load_video_list(bad)
    assert str(bad) in str(err.value)


def test_records_json_round_trip_and_frozen(tmp_path: Path) -> None:
    rec = VideoRecord("a/b", "/x/a/b.avi", 3, "a", {"2": "test", "1": "train"})
    assert VideoRecord.from_json(json.loads(json.dumps(rec.to_json()))) == rec
    assert rec != VideoRecord("a/b", "/x/a/b.avi", 3, "a", {"1": "train"})
    hash(rec)  # hashing ignores the dict field
    with pytest.raises(AttributeError):
        rec.label = 4  # type: ignore[misc]
    vl = VideoList("folder", "/x", ["a"], [rec], ["m1", "m2", "m3", "m4", "m5", "m6", "m7"], "/ann")
    assert VideoList.from_json(vl.to_json()) == vl
    assert vl.missing_summary().endswith(": m1, m2, m3, m4, m5 and 2 more")
    with pytest.raises(DatasetError, match="has no split '4'"):
        vl.split("4", "train")
