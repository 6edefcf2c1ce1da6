"""The engine knows no method: a second, tiny method written here (a clip-level contrastive loss between two
augmentations of each clip, over CoCon's encoder) trains through `train.engine`, checkpoints, resumes exactly,
and is fine-tuned by `train.finetune` from its checkpoint, with no change to the engine, fine-tuning or
evaluation code: only an entry in the method registry."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import train.methods
from tests.conftest import ROOT, TINY_MOTION
from train.config import SHARED_CHOICES, ClipData, RunSchema, load_config
from train.data import MultiViewClips, ViewAugment, as_blocks
from train.engine.distributed import DistInfo
from train.engine.errors import CheckpointMismatch
from train.engine.job import Job, LossTerms
from train.engine.pretrain import pretrain
from train.engine.schedules import Milestones
from train.finetune import main as finetune_main
from train.methods import EncoderRequest, Stage
from train.models import CPCModel

VIEW, SIZE, BLOCKS, FRAMES = "rgb", 32, 4, 3   # as conftest.TINY_MOTION


@dataclass
class PairData(ClipData):
    repeats: int = 1


@dataclass
class PairOptim:
    lr: float = 1e-3
    weight_decay: float = 0.0
    amp: bool = False
    grad_clip: float = 0.0


@dataclass
class PairConfig(RunSchema):
    name: str = "pair"
    log_every: int = 1
    epochs: int = 1
    temperature: float = 0.1
    data: PairData = field(default_factory=PairData)
    optim: PairOptim = field(default_factory=PairOptim)
    CHOICES: ClassVar[dict[str, tuple[Any, ...]]] = {k: v for k, v in SHARED_CHOICES.items() if k.startswith("data.")}
    POSITIVE: ClassVar[frozenset[str]] = frozenset({"epochs", "temperature"})

    def check(self) -> None:
        pass


class PairNet(nn.Module):
    """CoCon's encoder (f and g of a CPC model) giving one feature per clip."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = CPCModel(3, width=0.125, num_blocks=BLOCKS, pred_steps=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder.clip_feature(x)


class PairJob(Job):
    def __init__(self, cfg: PairConfig, dist: DistInfo) -> None:
        self.cfg, self.device, self.name, self.title, self.epochs = cfg, dist.device, "pair", "stage pair", cfg.epochs
        self.dir = cfg.run_dir / "pair"
        self.train_set = MultiViewClips(cfg.data.root, [VIEW], num_blocks=BLOCKS, block_frames=FRAMES, train=True,
                                        seed=cfg.seed)
        self.augment = ViewAugment("rgb", SIZE, train=True)

    def build_model(self) -> nn.Module:
        return PairNet()

    def inputs(self, batch: dict[str, Any], split: str, generator: torch.Generator) -> torch.Tensor:
        x = batch[VIEW].to(self.device)
        return torch.cat([as_blocks(self.augment(x, generator), BLOCKS) for _ in range(2)])

    def losses(self, outputs: torch.Tensor, batch: dict[str, Any], offset: int) -> LossTerms:
        a, b = F.normalize(outputs.float(), dim=1).chunk(2)
        logits = a @ b.T / self.cfg.temperature
        loss = F.cross_entropy(logits, torch.arange(len(a), device=logits.device))
        return LossTerms(total=loss, terms={"nce": float(loss.detach())},
                         stats={"top1": float((logits.argmax(1) == torch.arange(len(a), device=logits.device)).float().mean())})

    def schedule(self, optimizer: torch.optim.Optimizer) -> Milestones:
        return Milestones(optimizer, milestones=[100])

    def checkpoint_extra(self, model: nn.Module) -> dict[str, Any]:
        return {"method": "pair", "views": [VIEW], "config": self.cfg.to_dict()}


class PairMethod:
    name, schema = "pair", PairConfig

    def check_data(self, cfg: PairConfig) -> None:
        pass

    def stages(self, cfg: PairConfig) -> list[Stage]:
        return [Stage("pair", cfg.epochs)]

    def job(self, cfg: PairConfig, stage: Stage, dist: DistInfo) -> Job:
        return PairJob(cfg, dist)

    def encoder(self, request: EncoderRequest, checkpoint: dict[str, Any] | None, path: Any) -> CPCModel:
        model = CPCModel(request.channels, width=request.width, num_blocks=max(request.num_blocks, 2), pred_steps=1,
                         dropout=request.dropout)
        if checkpoint is not None:
            if request.view not in checkpoint["views"]:
                raise CheckpointMismatch(f"checkpoint {path} holds {checkpoint['views']}, not {request.view}")
            model.load_state_dict({k.removeprefix("encoder."): v for k, v in checkpoint["model"].items()})
        return model


METHOD = PairMethod()


@pytest.fixture
def pair_registered(monkeypatch):
    monkeypatch.setitem(train.methods.METHODS, "pair", __name__)


def _pretrain(store: Path, out: Path, epochs: int, resume: bool = False) -> Path:
    cfg = load_config(None, [f"data.root={store}", f"out={out}", f"epochs={epochs}", "data.batch_size=6",
                             "data.workers=0", "progress=false"], PairConfig)
    torch.manual_seed(0)
    assert pretrain(METHOD, cfg, resume) == 0
    return out / "pair" / "pair" / "checkpoint.pth"


def test_a_second_method_trains_resumes_and_fine_tunes_through_the_engine(motion_store, tmp_path, pair_registered):
    # 12 videos, batches of 6: two engine steps per epoch
    straight = torch.load(_pretrain(motion_store, tmp_path / "straight", epochs=2), weights_only=False)
    assert straight["method"] == "pair" and straight["epoch"] == 2 and straight["step"] == 4
    lines = [json.loads(x) for x in (tmp_path / "straight" / "pair" / "pair" / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [2, 4]
    assert {"nce", "total", "top1", "clips_per_s"} <= set(lines[0]["train"])
    assert lines[0]["train"]["nce"] == pytest.approx(lines[0]["train"]["total"])
    assert 0 < lines[0]["train"]["total"] < 10

    # one epoch, then a resumed second epoch: the same weights as two epochs in one go
    _pretrain(motion_store, tmp_path / "resumed", epochs=1)
    torch.manual_seed(123)   # the resumed run takes its RNG states from the checkpoint, not from here
    resumed = torch.load(_pretrain(motion_store, tmp_path / "resumed", epochs=2, resume=True), weights_only=False)
    assert resumed["step"] == 4
    for k, v in straight["model"].items():
        assert torch.equal(resumed["model"][k], v), k

    # train.finetune, unchanged, asks the registry for the method that wrote the checkpoint; a linear probe
    # keeps the encoder frozen, so the fine-tuned backbone is exactly the pair method's encoder
    ckpt = tmp_path / "straight" / "pair" / "pair" / "checkpoint.pth"
    rc = finetune_main(["--config", str(ROOT / "configs" / "finetune_r18w0.125-64_sample-rgb-flow.yaml"),
                        f"data.root={motion_store}", f"out={tmp_path}", "name=ft", f"model.init={ckpt}", *TINY_MOTION,
                        "data.views=[rgb]", "model.linear_probe=true", "data.repeats=1", "data.batch_size=3", "epochs=1",
                        "model.precise_bn_batches=2"])
    assert rc == 0
    unit = tmp_path / "ft" / "holdout" / "labels100" / "rgb"
    tuned = torch.load(unit / "checkpoint.pth", weights_only=False)
    backbone = {k.removeprefix("backbone."): v for k, v in tuned["model"].items() if k.startswith("backbone.")}
    encoder = {k.removeprefix("encoder."): v for k, v in straight["model"].items()}
    assert backbone.keys() == encoder.keys()
    for k, v in encoder.items():
        assert torch.equal(backbone[k], v), k
    report = json.loads((tmp_path / "ft" / "metrics.json").read_text())
    assert 0 <= report["results"]["labels100"]["mean"]["rgb"]["top1"] <= 1


def test_an_unknown_method_in_a_checkpoint_is_one_line(motion_store, tmp_path, capsys):
    path = tmp_path / "foreign.pth"
    torch.save({"model": {}, "method": "nosuch", "views": ["rgb"]}, path)
    rc = finetune_main(["--config", str(ROOT / "configs" / "finetune_r18w0.125-64_sample-rgb-flow.yaml"),
                        f"data.root={motion_store}", f"out={tmp_path}", f"model.init={path}", "data.views=[rgb]"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and err == ["error: unknown method 'nosuch'; known: cocon, tclr"]
