"""A dataset spec through the whole pipeline: UCF101-style split files -> labels and splits in the store."""

from __future__ import annotations

import json

from preprocess.store import Store
from preprocess.synthetic import encode_video, textured_image
from tests.conftest import run_cli


def test_ucf101_spec_file_run(tmp_path, capsys):
    videos, ann = tmp_path / "UCF101", tmp_path / "ucfTrainTestlist"
    ann.mkdir()
    names = {"ApplyEyeMakeup": ["v_ApplyEyeMakeup_g01_c01", "v_ApplyEyeMakeup_g08_c01"],
             "Biking": ["v_Biking_g01_c01", "v_Biking_g08_c01"]}
    for ci, (cls, vids) in enumerate(names.items()):
        for vi, v in enumerate(vids):
            encode_video(videos / cls / f"{v}.avi", [textured_image(48, 64, seed=10 * ci + vi + k) for k in range(8)],
                         codec="mpeg4")
    (ann / "classInd.txt").write_text("1 ApplyEyeMakeup\r\n2 Biking\r\n")
    (ann / "trainlist01.txt").write_text("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\nBiking/v_Biking_g08_c01.avi 2\n"
                                         "Biking/v_Biking_g09_c01.avi 2\n")
    (ann / "testlist01.txt").write_text("ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi\nBiking/v_Biking_g01_c01.avi\n")
    spec = tmp_path / "ucf101.yaml"
    spec.write_text("dataset: ucf101\nvideos: UCF101\nannotations: ucfTrainTestlist\n")
    rc = run_cli("run", "--videos", spec, "--out", tmp_path / "store", "--views", "rgb", "--no-progress")
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "1 video listed in" in err and "Biking/v_Biking_g09_c01.avi" in err       # missing file reported
    manifest = json.loads((tmp_path / "store" / "manifest.json").read_text())
    assert manifest["dataset"] == "ucf101" and manifest["classes"] == ["ApplyEyeMakeup", "Biking"]
    assert manifest["missing"] == ["Biking/v_Biking_g09_c01.avi"]
    records = {r["id"]: r for r in manifest["records"]}
    assert records["Biking/v_Biking_g08_c01"]["label"] == 1
    assert records["Biking/v_Biking_g08_c01"]["splits"] == {"1": "train"}
    assert records["ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01"]["splits"] == {"1": "test"}
    store = Store(tmp_path / "store")
    assert store.video_ids("rgb") == sorted(records)
    assert store.video_attrs("Biking/v_Biking_g01_c01", "rgb")["label"] == 1
    assert run_cli("info", tmp_path / "store") == 0
    assert "1 listed but missing from disk" in capsys.readouterr().out
