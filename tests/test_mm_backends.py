"""OpenMMLab pose / segmentation backends (preprocess.mm_backends) on small random-initialised models.

Skipped as a whole when the OpenMMLab stack is absent (install: bash scripts/install_openmmlab.sh .venv).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from preprocess.mmcv_shim import install_shim

install_shim()
pytest.importorskip("mmpose")
pytest.importorskip("mmseg")

import torch  # noqa: E402
from mmengine.config import Config  # noqa: E402

from preprocess.errors import UserError  # noqa: E402
from preprocess.mm_backends import MMPose, MMSeg, heatmap_to_frame  # noqa: E402

POSE_CFG = "body_2d_keypoint/topdown_heatmap/coco/td-hm_res50_8xb64-210e_coco-256x192.py"
SEG_CFG = "segformer/segformer_mit-b0_8xb2-160k_ade20k-512x512.py"


def _shipped(package: str, rel: str) -> str:
    mod = __import__(package)
    return str(Path(mod.__file__).parent / ".mim" / "configs" / rel)


@pytest.fixture(scope="module")
def cfg_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Small variants of shipped configs: ResNet-18 top-down heatmap; SegFormer-B0 with 2 classes, small input."""
    d = tmp_path_factory.mktemp("mmcfg")
    pose = Config.fromfile(_shipped("mmpose", POSE_CFG))
    pose.model.backbone.depth = 18
    pose.model.head.in_channels = 512
    pose.dump(str(d / "pose_r18.py"))
    seg = Config.fromfile(_shipped("mmseg", SEG_CFG))
    seg.model.decode_head.num_classes = 2
    for step in seg.test_dataloader.dataset.pipeline:
        if step["type"] == "Resize":
            step["scale"] = (256, 128)
    seg.dump(str(d / "seg_b0_2cls.py"))
    return d


@pytest.fixture(scope="module")
def pose(cfg_dir: Path) -> MMPose:
    torch.manual_seed(0)
    return MMPose(str(cfg_dir / "pose_r18.py"), None, device="cpu", batch_size=4)


@pytest.fixture(scope="module")
def seg(cfg_dir: Path) -> MMSeg:
    torch.manual_seed(0)
    return MMSeg(str(cfg_dir / "seg_b0_2cls.py"), None, person_class=1, device="cpu", batch_size=2)


def _frames(n: int, h: int, w: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(n)]


def test_shim_is_idempotent() -> None:
    install_shim()
    ops = sys.modules["mmcv.ops"]
    install_shim()
    assert sys.modules["mmcv.ops"] is ops
    if getattr(ops, "__preprocess_stub__", False):
        with pytest.raises(NotImplementedError, match="placeholder"):
            ops.deform_conv2d(None, None)
        from preprocess.box_nms import batched_nms
        assert ops.batched_nms is batched_nms


def test_pose_shapes_for_frame_sizes(pose: MMPose) -> None:
    assert pose.params["backend"] == "mmpose" and pose.params["checkpoint_sha256_16"] == "random-init"
    for (fh, fw), size in [((120, 160), (64, 85)), ((90, 200), (64, 142))]:
        out = pose(_frames(3, fh, fw), size)
        assert out.shape == (3, *size, 17) and out.dtype == np.uint8


def test_pose_box_source_and_sum(cfg_dir: Path) -> None:
    boxes = np.array([[10, 10, 60, 100], [70, 20, 150, 110]], np.float32)
    m = MMPose(str(cfg_dir / "pose_r18.py"), None, device="cpu", combine="sum", box_source=lambda f: boxes)
    assert m.params["person_boxes"] == "box source" and m.params["combine"] == "sum"
    out = m(_frames(2, 120, 160), (64, 85))
    assert out.shape == (2, 64, 85, 17) and out.dtype == np.uint8
    empty = MMPose(str(cfg_dir / "pose_r18.py"), None, device="cpu", box_source=lambda f: np.zeros((0, 4)))
    assert not empty(_frames(1, 120, 160), (64, 85)).any()


def test_heatmap_peak_maps_to_frame(pose: MMPose) -> None:
    # box (x1, y1, x2, y2) = (50, 40, 150, 200), padding 1.25 -> centre (100, 120), scale fixed to the 192x256
    # aspect ratio: (150, 200). Heatmap 48x64 is input / 4. A peak at heatmap (12, 16) is input (48, 64),
    # i.e. frame (48/192*150 + 100 - 75, 64/256*200 + 120 - 100) = (62.5, 70) (mmpose's own inverse).
    frame_size, size = (200, 300), (64, 96)
    hm = np.zeros((17, 64, 48), np.float32)
    yy, xx = np.mgrid[0:64, 0:48]
    hm[5] = np.exp(-((xx - 12) ** 2 + (yy - 16) ** 2) / (2 * 1.5 ** 2))
    warp = pose.crop_warp(np.array([50, 40, 150, 200], np.float32))
    out = heatmap_to_frame(hm, warp, pose.heatmap_scale, frame_size, size)
    assert out.shape == (64, 96, 17)
    assert out[..., [k for k in range(17) if k != 5]].max() == 0
    sx = size[1] / frame_size[1]
    exp_x, exp_y = (62.5 + 0.5) * sx - 0.5, (70 + 0.5) * sx - 0.5
    py, px = np.unravel_index(np.argmax(out[..., 5]), out.shape[:2])
    assert abs(px - exp_x) <= 1 and abs(py - exp_y) <= 1
    assert out[..., 5].max() > 0.5


def test_pose_checkpoint_reproduces_model(pose: MMPose, cfg_dir: Path, tmp_path: Path) -> None:
    ckpt = tmp_path / "pose.pth"
    # numpy in meta, as mmengine runners write: needs the weights_only=False load
    torch.save({"state_dict": pose.model.state_dict(), "meta": {"epoch": np.array([3])}}, ckpt)
    loaded = MMPose(str(cfg_dir / "pose_r18.py"), str(ckpt), device="cpu")
    assert loaded.params["checkpoint_sha256_16"] != "random-init"
    frames = _frames(2, 120, 160, seed=1)
    np.testing.assert_array_equal(loaded(frames, (64, 85)), pose(frames, (64, 85)))


def test_seg_shapes_for_frame_sizes(seg: MMSeg) -> None:
    assert seg.params["backend"] == "mmseg" and seg.params["person_class"] == 1
    for (fh, fw), size in [((120, 160), (64, 85)), ((90, 200), (64, 142))]:
        out = seg(_frames(3, fh, fw), size)
        assert out.shape == (3, *size, 1) and out.dtype == np.uint8


def test_seg_checkpoint_reproduces_model_and_names_person(seg: MMSeg, cfg_dir: Path, tmp_path: Path) -> None:
    ckpt = tmp_path / "seg.pth"
    torch.save({"state_dict": seg.model.state_dict(),
                "meta": {"dataset_meta": {"classes": ("background", "Person")}}}, ckpt)
    loaded = MMSeg(str(cfg_dir / "seg_b0_2cls.py"), str(ckpt), device="cpu")
    assert loaded.person_class == 1 and loaded.params["person_class_from"] == "dataset_meta classes"
    frames = _frames(2, 100, 140, seed=2)
    np.testing.assert_array_equal(loaded(frames, (64, 90)), seg(frames, (64, 90)))


def _one_line_user_error(excinfo: pytest.ExceptionInfo, *words: str) -> None:
    msg = str(excinfo.value)
    assert "\n" not in msg
    for w in words:
        assert w in msg


def test_user_errors(seg: MMSeg, cfg_dir: Path, tmp_path: Path) -> None:
    ckpt = tmp_path / "seg.pth"
    torch.save({"state_dict": seg.model.state_dict()}, ckpt)
    with pytest.raises(UserError) as e:
        MMPose(str(cfg_dir / "pose_r18.py"), str(ckpt), device="cpu")
    _one_line_user_error(e, "does not match", "key")

    bad = tmp_path / "bad.py"
    bad.write_text("model = dict(type='TopdownPoseEstimator'\n")
    with pytest.raises(UserError) as e:
        MMPose(str(bad), None, device="cpu")
    _one_line_user_error(e, "cannot read config")

    with pytest.raises(UserError) as e:
        MMPose(str(cfg_dir / "pose_r18.py"), str(tmp_path / "missing.pth"), device="cpu")
    _one_line_user_error(e, "not found")

    with pytest.raises(UserError) as e:
        MMSeg(str(tmp_path / "nope.py"), None, device="cpu")
    _one_line_user_error(e, "not found")

    with pytest.raises(UserError) as e:
        MMSeg(str(cfg_dir / "seg_b0_2cls.py"), None, device="cpu")
    _one_line_user_error(e, "--seg-person-class")


def test_cli_run_with_mm_backends_and_checkpoints(pose: MMPose, seg: MMSeg, cfg_dir: Path, tmp_path: Path,
                                                  capsys) -> None:
    """`preprocess run --views rgb,pose,seg` with mmpose/mmseg checkpoints: aligned, digests recorded,
    and the stored maps equal the in-memory models' maps at the stored size."""
    import json

    from preprocess.store import Store
    from preprocess.synthetic import encode_video, textured_image
    from tests.conftest import run_cli

    pose_ckpt, seg_ckpt = tmp_path / "pose.pth", tmp_path / "seg.pth"
    torch.save({"state_dict": pose.model.state_dict()}, pose_ckpt)
    torch.save({"state_dict": seg.model.state_dict(),
                "meta": {"dataset_meta": {"classes": ("background", "person")}}}, seg_ckpt)
    frames = [textured_image(96, 128, seed=i) for i in range(7)]
    encode_video(tmp_path / "v" / "clip.mkv", frames, codec="ffv1", pix_fmt="bgr0")
    args = ["run", "--videos", tmp_path / "v", "--out", tmp_path / "s", "--views", "rgb,pose,seg", "--no-progress",
            "--pose-backend", "mmpose", "--pose-config", cfg_dir / "pose_r18.py", "--det-config", "",
            "--seg-backend", "mmseg", "--seg-config", cfg_dir / "seg_b0_2cls.py", "--model-device", "cpu"]
    assert run_cli(*args[:-4], "--model-device", "cpu") == 2                   # no checkpoints given
    assert "--pose-backend mmpose needs --pose-checkpoint" in capsys.readouterr().err
    rc = run_cli(*args, "--pose-checkpoint", pose_ckpt, "--seg-checkpoint", seg_ckpt)
    assert rc == 0, capsys.readouterr().err
    assert run_cli("verify", tmp_path / "s") == 0
    store = Store(tmp_path / "s")
    assert store.frame_indices("clip", "pose").tolist() == store.frame_indices("clip", "rgb").tolist() == [0, 3]
    meta = json.loads((tmp_path / "s" / "pose" / "view.json").read_text())
    assert meta["params"]["backend"] == "mmpose" and len(meta["params"]["checkpoint_sha256_16"]) == 16
    np.testing.assert_array_equal(store.read("clip", "seg"), seg([frames[0], frames[3]], (64, 85)))


def test_plain_torch_nms_matches_mmcv_semantics() -> None:
    from preprocess.box_nms import batched_nms, nms
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 9], [21, 21, 31, 31]],
                         dtype=torch.float32)
    scores = torch.tensor([0.9, 0.8, 0.7, 0.95, 0.3])
    # IoU(0,1) = 81/119 = 0.68, IoU(0,3) = 90/100 = 0.9, IoU(1,3) = 72/118 = 0.61, IoU(2,4) = 81/119 = 0.68
    dets, keep = nms(boxes, scores, iou_threshold=0.5)
    assert keep.tolist() == [3, 2] and dets[:, 4].tolist() == pytest.approx([0.95, 0.7])
    _, keep = nms(boxes, scores, iou_threshold=0.65)          # 0.61 <= 0.65: box 1 survives box 3
    assert keep.tolist() == [3, 1, 2]
    _, keep = nms(boxes, scores, iou_threshold=0.5, score_threshold=0.75)
    assert keep.tolist() == [3]
    # classes: 0, 1, 0, 1, 0 -> box 1 is alone in class 1 with box 3; box 0 (class 0) is kept
    dets, keep = batched_nms(boxes, scores, torch.tensor([0, 1, 0, 1, 0]), {"type": "nms", "iou_threshold": 0.5})
    assert keep.tolist() == [3, 0, 2] and dets.shape == (3, 5)
    _, keep = batched_nms(boxes, scores, torch.tensor([0, 1, 0, 1, 0]),
                          {"type": "nms", "iou_threshold": 0.5, "class_agnostic": True})
    assert keep.tolist() == [3, 2]
    with pytest.raises(NotImplementedError, match="soft_nms"):
        batched_nms(boxes, scores, torch.zeros(5, dtype=torch.long), {"type": "soft_nms", "iou_threshold": 0.5})


def _force_rtmdet(det, person: int) -> None:
    """Every anchor point a confident person whose box reaches 2 strides each way."""
    head = det.bbox_head
    for cls, reg in zip(head.rtm_cls, head.rtm_reg):
        torch.nn.init.zeros_(cls.weight)
        torch.nn.init.constant_(cls.bias, -10.0)
        cls.bias.data[person] = 10.0
        torch.nn.init.zeros_(reg.weight)
        torch.nn.init.constant_(reg.bias, 2.0)


def _force_faster_rcnn(det, person: int) -> None:
    """Every anchor a confident proposal; every RoI a confident person kept at its proposal's box."""
    rpn = det.rpn_head
    torch.nn.init.zeros_(rpn.rpn_cls.weight)
    torch.nn.init.constant_(rpn.rpn_cls.bias, 10.0)
    torch.nn.init.zeros_(rpn.rpn_reg.weight)
    torch.nn.init.zeros_(rpn.rpn_reg.bias)
    head = det.roi_head.bbox_head
    torch.nn.init.zeros_(head.fc_cls.weight)
    torch.nn.init.constant_(head.fc_cls.bias, -10.0)
    head.fc_cls.bias.data[person] = 10.0
    torch.nn.init.zeros_(head.fc_reg.weight)
    torch.nn.init.zeros_(head.fc_reg.bias)


DETECTORS = {"rtmdet": ("rtmdet/rtmdet_tiny_8xb32-300e_coco.py", _force_rtmdet),
             "faster_rcnn": ("faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py", _force_faster_rcnn)}


def _small_detector_config(kind: str, path: Path) -> Path:
    """A shipped mmdet config made small (input 160 px; Faster R-CNN on ResNet-18 with fewer proposals)."""
    rel, _ = DETECTORS[kind]
    det = Config.fromfile(_shipped("mmdet", rel))
    for step in det.test_dataloader.dataset.pipeline:
        if step["type"] == "Resize":
            step["scale"] = (160, 160)
        if step["type"] == "Pad":
            step["size"] = (160, 160)
    if kind == "faster_rcnn":  # ResNet-18, fewer proposals (the plain-torch NMS is a Python loop)
        det.model.backbone.depth = 18
        det.model.neck.in_channels = [64, 128, 256, 512]
        det.model.test_cfg.rpn.nms_pre = 200
        det.model.test_cfg.rpn.max_per_img = 100
        det.model.test_cfg.rcnn.max_per_img = 6
    else:
        det.model.test_cfg.max_per_img = 6   # a few people: every box is a pose crop
    det.dump(str(path))
    return path


@pytest.mark.parametrize("kind", list(DETECTORS))
def test_detector_boxes_feed_the_pose_model(kind: str, cfg_dir: Path, tmp_path: Path) -> None:
    """mmdet detectors (single-stage RTMDet, two-stage Faster R-CNN; random init, small input) on mmcv-lite:
    the plain-torch NMS and RoIAlign run, person boxes with score >= 0.5 reach the top-down pose model exactly
    as the same boxes given directly, and a saved detector checkpoint gives the same boxes."""
    pytest.importorskip("mmdet")
    _, force = DETECTORS[kind]
    _small_detector_config(kind, tmp_path / "det.py")
    torch.manual_seed(0)
    m = MMPose(str(cfg_dir / "pose_r18.py"), None, device="cpu", det_config=str(tmp_path / "det.py"))
    assert m.params["person_boxes"]["score_threshold"] == 0.5
    frame = _frames(1, 120, 160, seed=3)[0]
    force(m.detector, m.det_person)
    boxes, scores = m.boxes(frame)
    assert len(boxes) >= 1 and (scores >= 0.5).all() and boxes.shape[1] == 4
    assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()
    torch.nn.init.zeros_(m.model.head.final_layer.weight)   # heatmaps of 1 over each crop: the crops show
    torch.nn.init.ones_(m.model.head.final_layer.bias)
    out = m([frame], (64, 85))
    assert out.shape == (1, 64, 85, 17) and out.max() == 255
    same = MMPose(str(cfg_dir / "pose_r18.py"), None, device="cpu", box_source=lambda f: boxes)
    same.model.load_state_dict(m.model.state_dict())
    np.testing.assert_array_equal(same([frame], (64, 85)), out)  # detector boxes = the same boxes given directly
    ckpt = tmp_path / "det.pth"
    torch.save({"state_dict": m.detector.state_dict(), "meta": {"dataset_meta": {"classes": ("person", "car")}}}, ckpt)
    again = MMPose(str(cfg_dir / "pose_r18.py"), None, device="cpu", det_config=str(tmp_path / "det.py"),
                   det_checkpoint=str(ckpt))
    assert again.det_person == 0 and len(again.params["person_boxes"]["checkpoint_sha256_16"]) == 16
    np.testing.assert_allclose(again.boxes(frame)[0], boxes, rtol=1e-5, atol=1e-3)


def test_pose_with_a_detector_and_seg_in_one_run_each_keep_their_scope(cfg_dir: Path, tmp_path: Path) -> None:
    """Building mmseg after mmpose + mmdet (as `--views pose,seg` does) set mmseg's default scope, and mmdet's
    inference then built its pipeline from mmseg's LoadAnnotations: every video failed with a TypeError."""
    pytest.importorskip("mmdet")
    from mmengine.registry import DefaultScope
    det = _small_detector_config("rtmdet", tmp_path / "det.py")
    torch.manual_seed(0)
    pose = MMPose(str(cfg_dir / "pose_r18.py"), None, device="cpu", det_config=str(det))
    seg = MMSeg(str(cfg_dir / "seg_b0_2cls.py"), None, person_class=1, device="cpu")
    frame = _frames(1, 120, 160, seed=3)[0]
    _force_rtmdet(pose.detector, pose.det_person)
    boxes, _ = pose.boxes(frame)                                   # was: TypeError ... 'with_bbox'
    assert len(boxes) >= 1
    assert pose([frame], (64, 85)).shape == (1, 64, 85, 17) and seg([frame], (64, 85)).shape == (1, 64, 85, 1)
    current = DefaultScope.get_current_instance()
    assert current is None or current.scope_name not in ("mmseg", "mmdet", "mmpose")   # nothing left behind
