"""One TCLR pre-training step, ours against the reference's, on the CPU in fp32: the 10 model calls of one batch
(the sparse clip with its time steps and the dense clips, two augmentations each), the four losses, backward and
an Adam step. The reference's side is rebuilt here from research/tclr_reference.md §4-5 (torchvision's
VideoResNet R3D-18 with layer4's first block replaced after initialisation, the MLP head, SimCLR's NT-Xent and
the loss loops of train_gen_all_step.py); torchvision does not import here. Both models get the same weights and
inputs, and the step losses are checked equal before any timing. Steps alternate ours / reference, so load
changes hit both; CPU time (process_time, all threads) and wall time are reported per step, with the ratio.

    .venv/bin/python bench/bench_tclr_step.py            # R3D-18, 16 x 112, batch 4 (about 2 min of CPU per step)
    .venv/bin/python bench/bench_tclr_step.py --quick    # width 1/8, 16 x 32: about a minute
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from train.losses.tclr import tclr_loss  # noqa: E402
from train.models.r3d import TCLRModel  # noqa: E402

# ------------------------------------------------------------------ the reference, rebuilt from its facts


class RefConv3DSimple(nn.Conv3d):
    """torchvision's Conv3DSimple: a 3x3x3 conv, padding 1, no bias."""

    def __init__(self, in_planes: int, out_planes: int, stride: int = 1) -> None:
        super().__init__(in_planes, out_planes, 3, stride=stride, padding=1, bias=False)


class RefBasicBlock(nn.Module):
    """torchvision's video BasicBlock: conv1 = (conv, BN, ReLU), conv2 = (conv, BN), downsample, ReLU."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(RefConv3DSimple(inplanes, planes, stride), nn.BatchNorm3d(planes), nn.ReLU(True))
        self.conv2 = nn.Sequential(RefConv3DSimple(planes, planes), nn.BatchNorm3d(planes))
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        return self.relu(self.conv2(self.conv1(x)) + residual)


class RefR3D(nn.Module):
    """r3d.py's VideoResNet R3D-18 without fc, avgpool (None, 1, 1); then model.py's layer4 change."""

    def __init__(self, in_channels: int = 3, width: float = 1.0) -> None:
        super().__init__()
        c = max(1, round(64 * width))
        self.stem = nn.Sequential(nn.Conv3d(in_channels, c, (3, 7, 7), (1, 2, 2), (1, 3, 3), bias=False),
                                  nn.BatchNorm3d(c), nn.ReLU(inplace=True))
        self.inplanes = c
        self.layer1 = self._make_layer(c, 1)
        self.layer2 = self._make_layer(2 * c, 2)
        self.layer3 = self._make_layer(4 * c, 2)
        self.layer4 = self._make_layer(8 * c, 2)
        self.avgpool = nn.AdaptiveAvgPool3d((None, 1, 1))
        for m in self.modules():  # _initialize_weights
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
        # model.py: layer4 keeps time (new convs keep PyTorch's default init, as there)
        self.layer4[0].conv1[0] = nn.Conv3d(4 * c, 8 * c, 3, stride=(1, 2, 2), padding=(2, 1, 1),
                                            dilation=(2, 1, 1), bias=False)
        self.layer4[0].downsample[0] = nn.Conv3d(4 * c, 8 * c, 1, stride=(1, 2, 2), bias=False)

    def _make_layer(self, planes: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes:
            downsample = nn.Sequential(nn.Conv3d(self.inplanes, planes, 1, stride=stride, bias=False),
                                       nn.BatchNorm3d(planes))
        layers = [RefBasicBlock(self.inplanes, planes, stride, downsample), RefBasicBlock(planes, planes)]
        self.inplanes = planes
        return nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        x = self.layer4(self.layer3(self.layer2(self.layer1(self.stem(x)))))
        return self.avgpool(x)  # (B, 512, T', 1, 1)


class RefMLP(nn.Module):
    """mlp.py: fc1 -> BN -> ReLU -> fc2 (no bias) -> BN -> normalize; 'd' pools time, 's' adds each step."""

    def __init__(self, d: int, out: int = 128) -> None:
        super().__init__()
        self.fc1, self.bn1 = nn.Linear(d, d), nn.BatchNorm1d(d)
        self.relu = nn.ReLU(inplace=True)
        self.fc2, self.bn2 = nn.Linear(d, out, bias=False), nn.BatchNorm1d(out)
        self.temp_avg = nn.AdaptiveAvgPool3d((1, None, None))

    def _head(self, x: Tensor) -> Tensor:
        return F.normalize(self.bn2(self.fc2(self.relu(self.bn1(self.fc1(x))))), p=2, dim=1)

    def forward(self, x: Tensor, clip_type: str) -> Tensor | tuple[Tensor, ...]:
        gsr = self._head(self.temp_avg(x).flatten(1))
        if clip_type == "d":
            return gsr
        return (gsr, *(self._head(x[:, :, t].flatten(1)) for t in range(x.shape[2])))


class RefNTXent:
    """SimCLR's NTXentLoss (nt_xent_original.py): correlated mask, positives on the +-M diagonals, CE(sum)/2M."""

    def __init__(self, batch_size: int, temperature: float) -> None:
        self.m, self.temperature = batch_size, temperature
        eye = np.eye(2 * batch_size) + np.eye(2 * batch_size, k=-batch_size) + np.eye(2 * batch_size, k=batch_size)
        self.mask = torch.from_numpy(1 - eye).bool()
        self.criterion = nn.CrossEntropyLoss(reduction="sum")

    def __call__(self, zis: Tensor, zjs: Tensor) -> Tensor:
        r = torch.cat([zjs, zis], dim=0)
        sim = r @ r.T
        positives = torch.cat([torch.diag(sim, self.m), torch.diag(sim, -self.m)]).view(2 * self.m, 1)
        negatives = sim[self.mask].view(2 * self.m, -1)
        logits = torch.cat((positives, negatives), dim=1) / self.temperature
        labels = torch.zeros(2 * self.m, dtype=torch.long)
        return self.criterion(logits, labels) / (2 * self.m)


def ref_global_local(sparse_steps: list[Tensor], dense: list[Tensor], temperature: float) -> Tensor:
    """global_local_temporal_contrastive.py: bmm, cat with the transpose, CE(sum) / 2B."""
    lsr, gdr = torch.stack(sparse_steps, dim=1), torch.stack(dense, dim=1)
    sim = torch.bmm(lsr, gdr.transpose(1, 2))
    sim = torch.cat([sim, sim.transpose(1, 2)], dim=0)
    b2, t = sim.shape[:2]
    labels = torch.arange(t).repeat(b2)
    return F.cross_entropy(sim.reshape(b2 * t, t) / temperature, labels, reduction="sum") / b2


def ref_loss(out_sparse: list[tuple[Tensor, ...]], out_dense: list[list[Tensor]], temperature: float = 0.1) -> Tensor:
    """train_epoch's loss (L69-117): ic2 + ic1 (all ordered dense pairs / 4) + LL (summed over videos) + GL."""
    b = out_sparse[0][0].shape[0]
    t = len(out_dense[0])
    criterion, criterion_local = RefNTXent(b, temperature), RefNTXent(t, temperature)
    ic2 = criterion(out_sparse[0][0], out_sparse[1][0])
    dense_all = [out_dense[u][k] for u in range(2) for k in range(t)]
    ic1 = sum(criterion(dense_all[p], dense_all[q]) for p in range(2 * t) for q in range(2 * t) if p != q) / t  # 1/4 there, T = 4
    d0, d1 = torch.stack(out_dense[0], dim=1), torch.stack(out_dense[1], dim=1)
    ll = sum(criterion_local(d0[i], d1[i]) for i in range(b))
    gl = sum(ref_global_local(list(out_sparse[s][1:]), out_dense[d], temperature) for s in range(2) for d in range(2))
    return ic2 + ic1 + ll + gl


class RefModel(nn.Module):
    """model.py: nn.Sequential(backbone, mlp), called with (clip, clip_type)."""

    def __init__(self, in_channels: int, width: float) -> None:
        super().__init__()
        self.backbone = RefR3D(in_channels, width)
        self.mlp = RefMLP(self.backbone.inplanes)

    def forward(self, x: Tensor, clip_type: str) -> Tensor | tuple[Tensor, ...]:
        return self.mlp(self.backbone(x), clip_type)


# ------------------------------------------------------------------ the two steps


def ref_step(model: RefModel, opt: torch.optim.Optimizer, sparse: list[Tensor], dense: list[list[Tensor]]) -> float:
    out_sparse = [model(sparse[a], "s") for a in range(2)]
    out_dense = [[model(dense[a][k], "d") for k in range(len(dense[a]))] for a in range(2)]
    loss = ref_loss(out_sparse, out_dense)  # type: ignore[arg-type]
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss.item()


def our_step(model: TCLRModel, opt: torch.optim.Optimizer, sparse: list[Tensor], dense: list[list[Tensor]]) -> float:
    out_sparse = [model(sparse[a], steps=True) for a in range(2)]
    sparse_global = torch.stack([o.clip for o in out_sparse], dim=1)
    sparse_local = torch.stack([o.steps for o in out_sparse], dim=1)  # type: ignore[misc]
    dense_emb = torch.stack([torch.stack([model(x).clip for x in dense[a]], dim=1) for a in range(2)], dim=1)
    loss, _ = tclr_loss(sparse_global, sparse_local, dense_emb)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss.item()


def copy_weights(src: nn.Module, dst: nn.Module) -> None:
    """Copy every parameter and buffer in order (both models list them in the same order and shapes)."""
    a, b = list(src.state_dict().values()), dst.state_dict()
    if len(a) != len(b) or any(x.shape != y.shape for x, y in zip(a, b.values())):
        raise SystemExit("error: the two models' state dicts do not line up")
    dst.load_state_dict(dict(zip(b.keys(), a)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="width 1/8, 32 px, 3 repeats")
    ap.add_argument("--width", type=float, default=1.0)
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--size", type=int, default=112)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=2, help="timed steps per side, after one warm-up each")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "tclr_step.json")
    args = ap.parse_args(argv)
    if args.quick:
        args.width, args.size, args.repeats = 0.125, 32, 3
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    t = args.frames // 4  # time cells of the sparse clip's map = dense clips
    ours, ref = TCLRModel(3, args.width), RefModel(3, args.width)
    copy_weights(ours, ref)
    opts = {"ours": torch.optim.Adam(ours.parameters(), lr=1e-3, weight_decay=1e-9),
            "reference": torch.optim.Adam(ref.parameters(), lr=1e-3, weight_decay=1e-9)}

    def batch() -> tuple[list[Tensor], list[list[Tensor]]]:
        shape = (args.batch, 3, args.frames, args.size, args.size)
        return [torch.rand(shape) for _ in range(2)], [[torch.rand(shape) for _ in range(t)] for _ in range(2)]

    sparse, dense = batch()  # the warm-up step: both sides from equal weights on one batch must agree
    first = {"ours": our_step(ours, opts["ours"], sparse, dense), "reference": ref_step(ref, opts["reference"], sparse, dense)}
    if abs(first["ours"] - first["reference"]) > 1e-3 * abs(first["reference"]):
        raise SystemExit(f"error: the two steps disagree on one batch: {first}")
    print(f"warm-up step losses agree: {first}", flush=True)
    times: dict[str, dict[str, list[float]]] = {k: {"cpu_s": [], "wall_s": []} for k in opts}
    for _ in range(args.repeats):
        sparse, dense = batch()
        for name in ("ours", "reference"):
            wall, cpu = time.perf_counter(), time.process_time()
            if name == "ours":
                our_step(ours, opts[name], sparse, dense)
            else:
                ref_step(ref, opts[name], sparse, dense)
            times[name]["cpu_s"].append(time.process_time() - cpu)
            times[name]["wall_s"].append(time.perf_counter() - wall)
            print(f"{name}: CPU {times[name]['cpu_s'][-1]:.2f} s, wall {times[name]['wall_s'][-1]:.2f} s", flush=True)
    med = {k: {m: statistics.median(v) for m, v in d.items()} for k, d in times.items()}
    result = {"config": {k: getattr(args, k) for k in ("width", "frames", "size", "batch", "repeats", "threads")},
              "first_step_loss": first, "steps": times, "median": med,
              "ratio_cpu": med["ours"]["cpu_s"] / med["reference"]["cpu_s"],
              "ratio_wall": med["ours"]["wall_s"] / med["reference"]["wall_s"],
              "torch": torch.__version__, "machine": platform.processor() or platform.machine()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"first-step loss: ours {first['ours']:.6f}, reference {first['reference']:.6f}")
    for k in ("ours", "reference"):
        print(f"{k:>9}: median CPU {med[k]['cpu_s']:.2f} s/step, wall {med[k]['wall_s']:.2f} s/step "
              f"(CPU per step: {', '.join(f'{x:.2f}' for x in times[k]['cpu_s'])})")
    print(f"ratio ours/reference: CPU {result['ratio_cpu']:.3f}x, wall {result['ratio_wall']:.3f}x -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
