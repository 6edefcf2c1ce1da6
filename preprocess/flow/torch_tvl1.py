"""Dual TV-L1 optical flow in PyTorch, batched over frame pairs, on any device: OpenCV's algorithm
(`cv2.optflow.DualTVL1OpticalFlow`; Zach, Pock, Bischof 2007, as in Sánchez Pérez et al., IPOL 2013)
with its parameters, defaults and numerical details, in float32.

Matched details, per scale: the pyramid is OpenCV's bilinear resize by `scale_step` (half-pixel centres,
edge-clamped, interpolated as IPP does in OpenCV's wheels) stopped before a side drops under 16 pixels; the flow goes up a scale by a bilinear resize to
the finer size and is divided by `scale_step`; each warp remaps I1 and its centred gradient with OpenCV's
bicubic remap (coordinates rounded to 1/32 pixel, a = -0.75, zero outside the image); then up to
`outer_iterations` x `inner_iterations` of thresholding (v), primal (u) and dual (p) steps, a median
filter on u before each outer iteration, and the epsilon test (sum of squared u updates over the image
against epsilon^2 * pixels) ending a warp. Each pair stops on its own test: a pair that has converged is
frozen while the rest of the batch iterates, so a pair's flow does not depend on its batch. At a single
scale the result is OpenCV's to the bit; over the pyramid, IPP's last-bit rounding in ~0.1% of resized
pixels grows through the iterations (docs/flow_tvl1_torch.md, "Accuracy").
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import UserError
from .base import FlowBackend, FlowSettings, check_pairs
from .params import resolve_params
from .tvl1_params import TVL1_PARAMS, rounded

FAMILY, IMPLEMENTATION = "tvl1", "torch"
DESCRIPTION = "Dual TV-L1 in PyTorch (--flow-impl torch), batched, on --flow-device"
PARAMS = TVL1_PARAMS

MIN_SIDE = 16          # OpenCV stops the pyramid before a side gets shorter than this
TAB = 32               # OpenCV's remap resolution: coordinates are rounded to 1/32 pixel
FLT_EPSILON = float(np.finfo(np.float32).eps)
SYNC_EVERY = 10        # on a GPU, inner iterations between convergence checks (each one waits for the device)


def resolve_device(device: str) -> torch.device:
    """'auto' -> the GPU when there is one, else the CPU; anything else as torch reads it."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def check_device(device: str) -> None:
    """A one-line error, before any work, for a device that is malformed or not on this machine."""
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", device):
        raise UserError(f"--flow-device must be auto, cpu, cuda or cuda:N, got {device!r}")
    if device.startswith("cuda"):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = int(device.split(":")[1]) if ":" in device else 0
        if index >= count:
            raise UserError(f"--flow-device {device}: this machine has {count} CUDA device(s) visible to torch "
                            f"{torch.__version__}")


def _round_half_even(x: float) -> int:
    return int(np.rint(x))


# ---------------------------------------------------------------------------------------------- resizing
def _linear_taps(src: int, dst: int, scale: float, device: torch.device) -> tuple[torch.Tensor, ...]:
    """Source indices (i0, i1) and the weight of i1 of a bilinear resize along one axis, where `scale` is
    source pixels per destination pixel (positions in double); outside the source the edge pixel repeats."""
    pos = (np.arange(dst, dtype=np.float64) + 0.5) * scale - 0.5
    i0 = np.floor(pos).astype(np.int64)
    frac = pos - i0
    frac[i0 < 0] = 0.0
    i0[i0 < 0] = 0
    last = i0 >= src - 1
    frac[last] = 0.0
    i0[last] = src - 1
    i1 = np.minimum(i0 + 1, src - 1)
    as_t = lambda a: torch.from_numpy(a).to(device)  # noqa: E731
    return as_t(i0), as_t(i1), as_t(frac.astype(np.float32)).double()


def _lerp(a: torch.Tensor, b: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """a + (b - a) * w with one rounding of the multiply-add (a fused multiply-add, exact through double)."""
    return (a.double() + (b - a).double() * w).float()


def resize_linear(x: torch.Tensor, size: tuple[int, int], scale: tuple[float, float] | None = None) -> torch.Tensor:
    """OpenCV's INTER_LINEAR resize of (N, H, W) float32 to `size` (h, w); `scale` (y, x) source pixels per
    destination pixel (default: the size ratio, as OpenCV uses when given a size). OpenCV's wheels resize
    float images with IPP, which interpolates as a + (b - a) * w with a fused multiply-add, along x then y:
    so does this (bit-identical but for ~0.1% of pixels, at the last columns, that IPP's SIMD tail rounds
    otherwise)."""
    n, h, w = x.shape
    oh, ow = size
    sy, sx = scale if scale is not None else (1.0 / (oh / h), 1.0 / (ow / w))
    x0, x1, wx = _linear_taps(w, ow, sx, x.device)
    y0, y1, wy = _linear_taps(h, oh, sy, x.device)
    rows = _lerp(x[:, :, x0], x[:, :, x1], wx)
    return _lerp(rows[:, y0], rows[:, y1], wy[:, None])


def pyramid_sizes(h: int, w: int, nscales: int, scale_step: float) -> list[tuple[int, int]]:
    """Sizes of the pyramid's scales, finest first, as OpenCV builds them (stops before a side < 16)."""
    sizes = [(h, w)]
    for _ in range(1, nscales):
        ph, pw = sizes[-1]
        nh, nw = _round_half_even(ph * scale_step), _round_half_even(pw * scale_step)
        if nh < MIN_SIDE or nw < MIN_SIDE:
            break
        sizes.append((nh, nw))
    return sizes


# ---------------------------------------------------------------------------------------------- derivatives
def centred_gradient(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Half the central difference; at the borders, half the one-sided difference (edge repeated)."""
    p = F.pad(x[:, None], (1, 1, 1, 1), mode="replicate")[:, 0]
    return 0.5 * (p[:, 1:-1, 2:] - p[:, 1:-1, :-2]), 0.5 * (p[:, 2:, 1:-1] - p[:, :-2, 1:-1])


def forward_gradient(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward differences, zero on the last column (x) and last row (y)."""
    return F.pad(x[:, :, 1:] - x[:, :, :-1], (0, 1)), F.pad(x[:, 1:, :] - x[:, :-1, :], (0, 0, 0, 1))


def divergence(v1: torch.Tensor, v2: torch.Tensor) -> torch.Tensor:
    """Backward differences of (v1, v2), with zero before the first column and row; summed in OpenCV's order
    ((v1 - v1 left) + (v2 - v2 above); on the first column (v1 + v2) - v2 above)."""
    div = (v1 - F.pad(v1[:, :, :-1], (1, 0))) + (v2 - F.pad(v2[:, :-1, :], (0, 0, 1, 0)))
    div[:, 1:, 0] = (v1[:, 1:, 0] + v2[:, 1:, 0]) - v2[:, :-1, 0]
    return div


def median5(x: torch.Tensor, k: int) -> torch.Tensor:
    """OpenCV's medianBlur of float images (k = 3 or 5): median of the k x k window, edges repeated."""
    r = k // 2
    p = F.pad(x[:, None], (r, r, r, r), mode="replicate")[:, 0]
    windows = p.unfold(1, k, 1).unfold(2, k, 1)                  # (N, H, W, k, k)
    return windows.reshape(*x.shape, k * k).median(dim=-1).values


# ---------------------------------------------------------------------------------------------- warping
def _cubic_weights(frac: torch.Tensor) -> torch.Tensor:
    """OpenCV's cubic convolution weights (a = -0.75) at fractional offsets, (..., 4), in float32."""
    a = -0.75
    x = frac
    w0 = ((a * (x + 1) - 5 * a) * (x + 1) + 8 * a) * (x + 1) - 4 * a
    w1 = ((a + 2) * x - (a + 3)) * x * x + 1
    w2 = ((a + 2) * (1 - x) - (a + 3)) * (1 - x) * (1 - x) + 1
    return torch.stack([w0, w1, w2, 1 - w0 - w1 - w2], dim=-1)


def remap_cubic(images: torch.Tensor, map_x: torch.Tensor, map_y: torch.Tensor) -> torch.Tensor:
    """OpenCV's remap(INTER_CUBIC, BORDER_CONSTANT 0) of (N, C, H, W) images at float maps (N, H, W):
    coordinates rounded to 1/32 pixel, 4x4 taps, taps outside the image count as 0."""
    n, c, h, w = images.shape
    qx = torch.round(map_x * TAB).to(torch.int32)
    qy = torch.round(map_y * TAB).to(torch.int32)
    fx = (qx & (TAB - 1)).to(torch.float32) / TAB
    fy = (qy & (TAB - 1)).to(torch.float32) / TAB
    sx = (qx >> 5) - 1
    sy = (qy >> 5) - 1
    wx = _cubic_weights(fx)                                       # (N, H, W, 4)
    wy = _cubic_weights(fy)
    flat = images.reshape(n, c, h * w)
    rows = []                                 # sum of each row's 4 taps, and of all 16 taps one by one
    running = torch.zeros_like(images)
    for i in range(4):
        yi = sy + i
        y_ok = (yi >= 0) & (yi < h)
        row_start = yi.clamp(0, h - 1) * w
        row = None
        for j in range(4):
            xj = sx + j
            ok = y_ok & (xj >= 0) & (xj < w)
            idx = (row_start + xj.clamp(0, w - 1)).reshape(n, 1, h * w).expand(n, c, h * w).long()
            tap = flat.gather(2, idx).reshape(n, c, h, w) * (wy[..., i] * wx[..., j] * ok)[:, None]
            row = tap if row is None else row + tap
            running = running + tap
        rows.append(row)
    # OpenCV adds row sums where the 4x4 window is inside the image, and the taps one by one elsewhere
    inside = ((sx >= 0) & (sx + 3 < w) & (sy >= 0) & (sy + 3 < h))[:, None]
    out = torch.where(inside, ((rows[0] + rows[1]) + rows[2]) + rows[3], running)
    return out


# ---------------------------------------------------------------------------------------------- one scale
class _Warp:
    """What one warp's iterations read: I1 warped by the flow, its gradient, and their fixed parts."""

    def __init__(self, i0: torch.Tensor, stack: torch.Tensor, grid: tuple[torch.Tensor, torch.Tensor],
                 u: list[torch.Tensor], l_t: float):
        warped = remap_cubic(stack, grid[0] + u[0], grid[1] + u[1])
        i1w, self.ix, self.iy = warped[:, 0], warped[:, 1], warped[:, 2]
        grad = self.ix * self.ix + self.iy * self.iy
        self.rho_c = i1w - self.ix * u[0] - self.iy * u[1] - i0
        self.upper = l_t * grad                       # the thresholds of the step on rho
        self.lower = -l_t * grad
        self.has_grad = grad > FLT_EPSILON
        self.safe_grad = torch.where(self.has_grad, grad, 1.0)


class _Scale:
    """The iterations at one pyramid scale for a batch of pairs: warps, outer and inner iterations."""

    def __init__(self, p: dict[str, Any], sync_every: int):
        self.p = p
        self.l_t = np.float32(p["lambda"] * p["theta"]).item()
        self.taut = np.float32(p["tau"] / p["theta"]).item()
        self.theta = np.float32(p["theta"]).item()
        self.gamma = np.float32(p["gamma"]).item()
        self.use_gamma = p["gamma"] != 0
        self.sync_every = sync_every  # inner iterations between "has every pair converged?" (a device sync)

    def run(self, i0: torch.Tensor, i1: torch.Tensor, u: list[torch.Tensor]) -> list[torch.Tensor]:
        """u = [u1, u2] (+ [u3] with gamma) refined at this scale."""
        n, h, w = i0.shape
        eps = np.float32(self.p["epsilon"] ** 2 * h * w).item()
        ix, iy = centred_gradient(i1)
        stack = torch.stack([i1, ix, iy], dim=1)
        grid = torch.meshgrid(torch.arange(h, dtype=torch.float32, device=i0.device),
                              torch.arange(w, dtype=torch.float32, device=i0.device), indexing="ij")[::-1]
        dual = [torch.zeros_like(i0) for _ in range(2 * len(u))]   # p11, p12, p21, p22 (, p31, p32)
        for _ in range(self.p["warps"]):
            warp = _Warp(i0, stack, grid, u, self.l_t)
            active = torch.ones(n, dtype=torch.bool, device=i0.device)
            for _ in range(self.p["outer_iterations"]):
                if self.p["median_filtering"] > 1:
                    for k in (0, 1):
                        u[k] = _where(active, median5(u[k], self.p["median_filtering"]), u[k])
                for it in range(self.p["inner_iterations"]):
                    u, dual, error = self._step(warp, u, dual, active)
                    active = active & (error > eps)
                    if (it + 1) % self.sync_every == 0 and not bool(active.any()):
                        break
                if not bool(active.any()):
                    break
        return u

    def _step(self, warp: _Warp, u: list[torch.Tensor], dual: list[torch.Tensor], active: torch.Tensor
              ) -> tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor]:
        """One inner iteration (threshold, primal, dual) for the pairs still active; the others unchanged."""
        rho = warp.rho_c + (warp.ix * u[0] + warp.iy * u[1])
        if self.use_gamma:
            rho = rho + self.gamma * u[2]
        fi = torch.where(warp.has_grad, -rho / warp.safe_grad, 0.0)
        coef = torch.where(rho < warp.lower, self.l_t, torch.where(rho > warp.upper, -self.l_t, fi))
        d = [coef * warp.ix, coef * warp.iy] + ([coef * self.gamma] if self.use_gamma else [])
        new_u, error = [], None
        for k in range(len(u)):
            uk = (u[k] + d[k]) + self.theta * divergence(dual[2 * k], dual[2 * k + 1])
            sq = (uk - u[k]).square().sum(dim=(1, 2))
            error = sq if error is None else error + sq
            new_u.append(_where(active, uk, u[k]))
        new_dual = []
        for k in range(len(u)):
            ux, uy = forward_gradient(new_u[k])
            ng = 1.0 + self.taut * torch.hypot(ux, uy)
            new_dual.append(_where(active, (dual[2 * k] + self.taut * ux) / ng, dual[2 * k]))
            new_dual.append(_where(active, (dual[2 * k + 1] + self.taut * uy) / ng, dual[2 * k + 1]))
        return new_u, new_dual, error


def _where(active: torch.Tensor, new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    return torch.where(active[:, None, None], new, old)


# ---------------------------------------------------------------------------------------------- the pyramid
def tvl1_flow(i0: torch.Tensor, i1: torch.Tensor, params: dict[str, Any], sync_every: int | None = None
              ) -> torch.Tensor:
    """Dual TV-L1 flow of a batch: (N, H, W) float32 grey images (0..255) -> (N, H, W, 2) float32.
    `sync_every` (default: 1 on the CPU, SYNC_EVERY on a GPU) changes the speed only, never the result."""
    sizes = pyramid_sizes(i0.shape[1], i0.shape[2], params["nscales"], params["scale_step"])
    step = float(params["scale_step"])
    i0s, i1s = [i0], [i1]
    for size in sizes[1:]:
        i0s.append(resize_linear(i0s[-1], size, (1 / step, 1 / step)))
        i1s.append(resize_linear(i1s[-1], size, (1 / step, 1 / step)))
    if sync_every is None:
        sync_every = 1 if i0.device.type == "cpu" else SYNC_EVERY
    scale = _Scale(params, sync_every)
    n_fields = 3 if params["gamma"] != 0 else 2
    u = [torch.zeros_like(i0s[-1]) for _ in range(n_fields)]
    for s in range(len(sizes) - 1, -1, -1):
        u = scale.run(i0s[s], i1s[s], u)
        if s == 0:
            break
        u = [resize_linear(f, sizes[s - 1]) for f in u]
        inv = np.float32(1 / step).item()
        u[0], u[1] = u[0] * inv, u[1] * inv                       # u3 is not a displacement: not scaled
    return torch.stack([u[0], u[1]], dim=-1)


class TorchTVL1:
    """The batch backend: chunks of `batch_size` pairs on `device`, results back as numpy float32."""

    def __init__(self, params: dict[str, Any], settings: FlowSettings):
        self.params = params
        self.resolved = rounded(params)
        self.settings = settings
        self._device: torch.device | None = None   # resolved at first use: a parent process stays CUDA-free

    @property
    def device(self) -> torch.device:
        if self._device is None:
            self._device = resolve_device(self.settings.device)
        return self._device

    def __call__(self, prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        check_pairs(prev, nxt)
        out = np.empty(prev.shape + (2,), np.float32)
        step = max(1, self.settings.batch_size)
        with torch.inference_mode():
            for start in range(0, len(prev), step):
                a = torch.from_numpy(np.ascontiguousarray(prev[start:start + step])).to(self.device).float()
                b = torch.from_numpy(np.ascontiguousarray(nxt[start:start + step])).to(self.device).float()
                out[start:start + step] = tvl1_flow(a, b, self.params).cpu().numpy()
        return out


def build(params: dict[str, Any], settings: FlowSettings) -> FlowBackend:
    values = resolve_params(FAMILY, PARAMS, params)
    check_device(settings.device)
    return TorchTVL1(values, settings)
