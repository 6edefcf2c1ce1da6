"""RoIAlign in plain torch with the semantics of `mmcv.ops.RoIAlign` (average pooling, `aligned`, adaptive
sampling), so that two-stage mmdet detectors (Faster R-CNN, ...) run on mmcv-lite. Vectorised per group of
RoIs with the same sampling grid; meant for the CPU fallback, not for speed."""

from __future__ import annotations


import torch
from torch import Tensor, nn


def _bilinear(feature: Tensor, batch: Tensor, y: Tensor, x: Tensor) -> Tensor:
    """mmcv's bilinear sample of feature (N, C, H, W) at (y, x) (R, S) of image `batch` (R,) -> (R, C, S):
    zero beyond one pixel outside the map, coordinates in [-1, 0] taken as 0, the last row/column clamped."""
    n, c, h, w = feature.shape
    outside = (y < -1.0) | (y > h) | (x < -1.0) | (x > w)
    y, x = y.clamp(min=0.0), x.clamp(min=0.0)
    y0, x0 = y.floor().long(), x.floor().long()
    y_edge, x_edge = y0 >= h - 1, x0 >= w - 1
    y0, x0 = torch.where(y_edge, h - 1, y0), torch.where(x_edge, w - 1, x0)
    y1, x1 = torch.where(y_edge, h - 1, y0 + 1), torch.where(x_edge, w - 1, x0 + 1)
    y, x = torch.where(y_edge, y0.to(y.dtype), y), torch.where(x_edge, x0.to(x.dtype), x)
    ly, lx = y - y0, x - x0
    hy, hx = 1.0 - ly, 1.0 - lx
    flat = feature.reshape(n, c, h * w).permute(0, 2, 1)          # (N, HW, C)
    b = batch[:, None]

    def at(yy: Tensor, xx: Tensor) -> Tensor:
        return flat[b, yy * w + xx].permute(0, 2, 1)               # (R, C, S)

    out = (at(y0, x0) * (hy * hx)[:, None] + at(y0, x1) * (hy * lx)[:, None]
           + at(y1, x0) * (ly * hx)[:, None] + at(y1, x1) * (ly * lx)[:, None])
    return out.masked_fill(outside[:, None], 0.0)


def roi_align(feature: Tensor, rois: Tensor, output_size: int | tuple[int, int], spatial_scale: float = 1.0,
              sampling_ratio: int = 0, pool_mode: str = "avg", aligned: bool = True) -> Tensor:
    """Pool each RoI (K, 5) = (image index, x1, y1, x2, y2) of `feature` (N, C, H, W) to (K, C, oh, ow)."""
    if pool_mode != "avg":
        raise NotImplementedError("the plain-torch RoIAlign does pool_mode='avg' only")
    oh, ow = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)
    k, c = rois.shape[0], feature.shape[1]
    out = feature.new_zeros((k, c, oh, ow))
    if k == 0:
        return out
    offset = 0.5 if aligned else 0.0
    boxes = rois[:, 1:].to(feature.dtype) * spatial_scale - offset
    x_start, y_start = boxes[:, 0], boxes[:, 1]
    roi_w, roi_h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    if not aligned:  # mmcv: legacy boxes are at least one pixel
        roi_w, roi_h = roi_w.clamp(min=1.0), roi_h.clamp(min=1.0)
    bin_w, bin_h = roi_w / ow, roi_h / oh
    if sampling_ratio > 0:
        grid_h = torch.full((k,), sampling_ratio, dtype=torch.long)
        grid_w = grid_h.clone()
    else:
        grid_h = torch.ceil(roi_h / oh).long().clamp(min=1).cpu()
        grid_w = torch.ceil(roi_w / ow).long().clamp(min=1).cpu()
    batch = rois[:, 0].long()
    for gh, gw in {(int(a), int(b)) for a, b in zip(grid_h.tolist(), grid_w.tolist())}:
        sel = torch.nonzero((grid_h == gh) & (grid_w == gw)).flatten().to(feature.device)
        # sample (py, iy) of a bin row: y_start + py * bin_h + (iy + 0.5) * bin_h / gh
        fy = (torch.arange(oh, device=feature.device)[:, None] + (torch.arange(gh, device=feature.device) + 0.5) / gh)
        fx = (torch.arange(ow, device=feature.device)[:, None] + (torch.arange(gw, device=feature.device) + 0.5) / gw)
        ys = y_start[sel, None] + bin_h[sel, None] * fy.reshape(1, -1)          # (R, oh * gh)
        xs = x_start[sel, None] + bin_w[sel, None] * fx.reshape(1, -1)          # (R, ow * gw)
        r = len(sel)
        yy = ys[:, :, None].expand(r, oh * gh, ow * gw).reshape(r, -1)
        xx = xs[:, None, :].expand(r, oh * gh, ow * gw).reshape(r, -1)
        vals = _bilinear(feature, batch[sel], yy, xx).reshape(r, c, oh, gh, ow, gw)
        out[sel] = vals.mean(dim=(3, 5))
    return out


class RoIAlign(nn.Module):
    """`mmcv.ops.RoIAlign`'s constructor and forward(input, rois), in plain torch (no gradient needed here)."""

    def __init__(self, output_size: int | tuple[int, int], spatial_scale: float = 1.0, sampling_ratio: int = 0,
                 pool_mode: str = "avg", aligned: bool = True, use_torchvision: bool = False) -> None:
        super().__init__()
        self.output_size = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)
        self.spatial_scale = float(spatial_scale)
        self.sampling_ratio = int(sampling_ratio)
        self.pool_mode, self.aligned = pool_mode, aligned

    def forward(self, input: Tensor, rois: Tensor) -> Tensor:  # noqa: A002 - mmcv's argument name
        return roi_align(input, rois, self.output_size, self.spatial_scale, self.sampling_ratio, self.pool_mode,
                         self.aligned)

    def extra_repr(self) -> str:
        return (f"output_size={self.output_size}, spatial_scale={self.spatial_scale}, "
                f"sampling_ratio={self.sampling_ratio}, aligned={self.aligned} (plain torch)")


__all__ = ["RoIAlign", "roi_align"]
