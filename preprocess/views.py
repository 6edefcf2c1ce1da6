"""View computers: turn a batch of decoded frame pairs into the uint8 frames a view stores.

A view is built from its spec (data_specs/views.py) and the run's options; `params` holds every
value that changes the stored bytes and goes into the store's attributes.
"""

from __future__ import annotations

import importlib.metadata
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from data_specs.views import DEFAULT_BLOCK_FRAMES, DEFAULT_FLOW_BOUND, DEFAULT_SIZE, DEFAULT_STRIDE, VIEWS, ViewSpec

from .decode import FramePair, target_size
from .errors import UserError
from .flow import FlowSettings, check_bound, make_flow
from .flow.server import ServerAddress, ServerFlow
from .frame_policy import FramePolicy
from .quantise import quantise_flow
from .store.compression import compression_kwargs

LIBRARIES = ("av", "opencv-contrib-python-headless", "h5py", "hdf5plugin", "numpy", "torch")


@dataclass
class ViewOptions:
    """The run's settings that views read."""

    stride: int = DEFAULT_STRIDE
    size: int = DEFAULT_SIZE
    block_frames: int = DEFAULT_BLOCK_FRAMES
    flow_bound: float = DEFAULT_FLOW_BOUND
    flow_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    flow_impl: str = "opencv"        # implementation of TV-L1 flow (preprocess/flow): opencv | torch
    flow_device: str = "auto"        # where a torch flow runs: auto | cpu | cuda | cuda:N
    flow_batch: int = 32             # frame pairs a torch flow computes at once (bounds its memory)
    compression: dict[str, str] = field(default_factory=dict)
    pose_backend: str = "mediapipe"
    pose_size: int = 64
    pose_sigma: float = 2.0
    pose_combine: str = "max"
    seg_backend: str = "mediapipe"
    seg_size: int = 64
    seg_model: int = 0
    pose_config: str | None = None
    pose_checkpoint: str | None = None
    det_config: str | None = None
    det_checkpoint: str | None = None
    seg_config: str | None = None
    seg_checkpoint: str | None = None
    seg_person_class: int | None = None
    model_device: str = "auto"
    frames: FramePolicy = field(default_factory=FramePolicy)


@dataclass
class ViewComputer:
    """A ready view: `compute(pairs)` -> (N, H, W, C) uint8; `timings` accumulates seconds spent."""

    spec: ViewSpec
    attrs: dict[str, Any]
    needs_next: bool
    compute_one: Callable[[FramePair], np.ndarray] | None = None
    compute_many: Callable[[list[FramePair]], np.ndarray] | None = None
    reset: Callable[[], None] = lambda: None
    needs_source: bool = False
    seconds: float = 0.0

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def compression(self) -> str:
        return self.attrs["compression"]

    def compute(self, pairs: list[FramePair]) -> np.ndarray:
        start = time.perf_counter()
        out = self.compute_many(pairs) if self.compute_many else np.stack([self.compute_one(p) for p in pairs])
        self.seconds += time.perf_counter() - start
        return out


def library_versions() -> dict[str, str]:
    """Versions of the libraries whose output ends up in a store."""
    out = {}
    for name in LIBRARIES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "unknown"
    return out


def parse_views(text: str) -> list[str]:
    """'rgb,flow_tvl1' -> ['rgb', 'flow_tvl1'], with a one-line error for an unknown view."""
    names = [v.strip() for v in text.split(",") if v.strip()]
    unknown = [v for v in names if v not in VIEWS]
    if unknown or not names:
        raise UserError(f"unknown view(s) {', '.join(unknown) or '(none given)'}; choose from {', '.join(VIEWS)}")
    return list(dict.fromkeys(names))


def build_view(name: str, options: ViewOptions, flow_server: ServerAddress | None = None) -> ViewComputer:
    """Make the computer of one view from the run's options; with `flow_server`, the torch TV-L1's pairs
    go to that flow server (flow/server.py) instead of being computed here."""
    spec = VIEWS[name]
    attrs: dict[str, Any] = {
        "view": name, "kind": spec.kind, "channels": spec.channels, "size": options.size,
        "stride": options.stride, "block_frames": options.block_frames,
        "compression": options.compression.get(name, spec.compression),
        "frames": options.frames.view_attrs(spec.kind),
    }
    compression_kwargs(attrs["compression"])  # an unknown name fails here, before any work
    if spec.kind == "rgb":
        attrs["params"] = {"interpolation": "area", "colour": "rgb24"}
        return ViewComputer(spec, attrs, False, lambda p: p.rgb)
    if spec.kind == "flow":
        return _flow_view(spec, attrs, options, flow_server)
    if spec.kind in ("pose", "seg"):
        return _model_view(spec, attrs, options)
    raise UserError(f"view {name!r} has unknown kind {spec.kind!r}")


def flow_implementation(family: str, options: ViewOptions) -> str:
    """The implementation a flow family runs with: --flow-impl chooses TV-L1's; the others have one."""
    return options.flow_impl if family == "tvl1" else "opencv"


def _flow_view(spec: ViewSpec, attrs: dict[str, Any], options: ViewOptions,
               flow_server: ServerAddress | None) -> ViewComputer:
    """A flow view: grey pairs in batches through the chosen backend, then the uint8 quantiser."""
    impl = flow_implementation(spec.flow_backend, options)
    backend = make_flow(spec.flow_backend, options.flow_params.get(spec.flow_backend), impl, flow_settings(options))
    reset: Callable[[], None] = lambda: None  # noqa: E731
    if flow_server is not None and impl == "torch":
        backend = ServerFlow(flow_server, backend.resolved)
        reset = backend.new_video
    bound = check_bound(float(options.flow_bound))
    attrs["params"] = {"backend": spec.flow_backend, "implementation": impl, "algorithm": backend.resolved,
                       "bound": bound, "input": flow_input(options.frames.flow_target),
                       "quantisation": "clip to [-bound, bound], round((f + bound) * 255 / (2 * bound))"}

    def compute_many(pairs: list[FramePair]) -> np.ndarray:
        greys = [p.grey() for p in pairs]
        flow = backend(np.stack([g[0] for g in greys]), np.stack([g[1] for g in greys]))
        return quantise_flow(flow, bound)

    return ViewComputer(spec, attrs, True, compute_many=compute_many, reset=reset)


def flow_settings(options: ViewOptions) -> FlowSettings:
    """Where and in what batches the run's flow backends compute."""
    return FlowSettings(device=options.flow_device, batch_size=options.flow_batch)


FLOW_INPUT_T1 = "grey frames at the stored size, source frame t -> t+1"


def flow_input(flow_target: str) -> str:
    """The flow views' "input" text: what each stored flow goes from and to under --flow-target."""
    if flow_target == "next":
        return FLOW_INPUT_T1
    return (f"{FLOW_INPUT_T1}, or -> the next source frame that differs when t+1 repeats t "
            f"(per frame in flow_target_indices)")


def recorded_attrs(attrs: dict[str, Any]) -> dict[str, Any]:
    """A view.json's attributes as this version writes them: a flow view made before implementations
    were recorded was made by OpenCV (its bytes are OpenCV's), so it reads as implementation opencv; one
    whose "input" text said t -> t+1 under --flow-target next-different gets today's (true) text."""
    params = attrs.get("params")
    if attrs.get("kind") != "flow" or not isinstance(params, dict):
        return attrs
    params = {"implementation": "opencv", **params}
    target = attrs.get("frames", {}).get("flow_target") if isinstance(attrs.get("frames"), dict) else None
    if params.get("input") == FLOW_INPUT_T1 and target is not None:
        params["input"] = flow_input(target)
    return {**attrs, "params": params}


def _model_view(spec: ViewSpec, attrs: dict[str, Any], options: ViewOptions) -> ViewComputer:
    """A view inferred by a model (pose heatmaps, person masks) from the upright source frames."""
    from .pose_seg import make_pose_model, make_seg_model
    if spec.kind == "pose":
        model, size = make_pose_model(options), options.pose_size
    else:
        model, size = make_seg_model(options), options.seg_size
    attrs["size"] = size
    attrs["params"] = {**model.params, "input": "upright source frames at their original size",
                       "output": f"short side {size}"}

    def compute_many(pairs: list[FramePair]) -> np.ndarray:
        h, w = pairs[0].source.shape[:2]
        return model([p.source for p in pairs], target_size(h, w, size, options.frames.max_long_side))

    return ViewComputer(spec, attrs, False, compute_many=compute_many, reset=model.reset, needs_source=True)
