"""A stand-in for `mmcv.ops` (and `torchvision.transforms.ToPILImage`) so mmpose/mmseg import with mmcv-lite.

mmcv-lite 2.1.0 ships no compiled ops (`mmcv._ext`), yet mmpose 1.3.2 / mmsegmentation 1.2.2 / mmdet 3.3.0
import `mmcv.ops` at module level (deformable-DETR / SAN heads, focal loss, point_sample, ...), and mmpose
imports `torchvision.transforms.ToPILImage` at module level. None of these is used by the top-down heatmap
and plain semantic-segmentation models this project runs (the install recipe and its limits: docs/preprocess.md,
`scripts/install_openmmlab.sh`).

`install_shim()` registers placeholder modules in `sys.modules` before mmpose/mmseg are imported: any name
taken from them is a placeholder class that raises NotImplementedError when called or instantiated, except
`nms`, `batched_nms` (`preprocess/box_nms.py`) and `RoIAlign` (`preprocess/roi_align.py`), which are real
(plain torch), so that single- and two-stage mmdet detectors run. With a
real mmcv build (`mmcv._ext` present) or a real torchvision, it leaves that package alone. Idempotent.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types
from typing import Any

_MARK = "__preprocess_stub__"
_OPS_HINT = ("is a placeholder: mmcv-lite has no compiled ops (mmcv._ext); this model needs a full mmcv "
             "2.1.0 build with ops (see scripts/install_openmmlab.sh, GPU-cluster recipe)")
_TV_HINT = "is a placeholder: torchvision is not installed (stand-in registered by preprocess.mmcv_shim)"


def _placeholder(qualname: str, hint: str) -> type:
    message = f"{qualname} {hint}"

    def _fail(*_args: Any, **_kwargs: Any) -> Any:
        raise NotImplementedError(message)

    # A class serves for both functions and classes: calling it, instantiating it or instantiating a
    # subclass of it raises; defining a subclass (as some modules do at import) works.
    return type(qualname.rsplit(".", 1)[-1], (), {"__init__": _fail, "__new__": lambda cls, *a, **k: _fail(),
                                                   "__module__": qualname.rsplit(".", 1)[0],
                                                   "__doc__": message, _MARK: True})


def _stub_module(name: str, hint: str, package: bool) -> types.ModuleType:
    module = types.ModuleType(name, f"Stand-in for {name} registered by preprocess.mmcv_shim.")
    setattr(module, _MARK, True)
    if package:
        module.__path__ = []                     # lets `import name.sub` reach the finder below
    cache: dict[str, type] = {}

    def __getattr__(attr: str) -> Any:           # PEP 562: any public name is a placeholder
        if attr.startswith("__"):
            raise AttributeError(attr)
        if attr not in cache:
            cache[attr] = _placeholder(f"{name}.{attr}", hint)
        return cache[attr]

    module.__getattr__ = __getattr__             # type: ignore[method-assign]
    return module


class _StubFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves `mmcv.ops.<anything>` (and `torchvision.<anything>` when stubbed) as stub modules."""

    def __init__(self) -> None:
        self.prefixes: dict[str, str] = {}       # package prefix -> hint

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        for prefix in self.prefixes:
            if fullname.startswith(prefix + "."):
                return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec: Any) -> types.ModuleType:
        hint = next(h for p, h in self.prefixes.items() if spec.name.startswith(p + "."))
        return _stub_module(spec.name, hint, package=True)

    def exec_module(self, module: types.ModuleType) -> None:
        return None


_FINDER = _StubFinder()


def _register(name: str, hint: str) -> types.ModuleType:
    module = _stub_module(name, hint, package=True)
    module.__spec__ = importlib.machinery.ModuleSpec(name, _FINDER, is_package=True)
    sys.modules[name] = module
    _FINDER.prefixes[name] = hint
    if _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)
    parent, _, child = name.rpartition(".")
    if parent and parent in sys.modules:
        setattr(sys.modules[parent], child, module)
    return module


def _has_real_ops() -> bool:
    try:
        return importlib.util.find_spec("mmcv._ext") is not None
    except (ImportError, ValueError):
        return False


def _provide_plain_torch_ops(ops: types.ModuleType) -> None:
    """Real stand-ins for the ops detectors need (NMS; RoIAlign for two-stage ones), reachable both as
    `mmcv.ops.<name>` and from their submodules (`from mmcv.ops.nms import batched_nms`), as in mmcv."""
    from .box_nms import batched_nms, nms
    from .roi_align import RoIAlign, roi_align
    for module, names in (("nms", {"nms": nms, "batched_nms": batched_nms}),
                          ("roi_align", {"RoIAlign": RoIAlign, "roi_align": roi_align})):
        sub = _register(f"mmcv.ops.{module}", _OPS_HINT)
        for name, obj in names.items():
            setattr(sub, name, obj)
    for name, obj in (("nms", nms), ("batched_nms", batched_nms), ("RoIAlign", RoIAlign), ("roi_align", roi_align)):
        setattr(ops, name, obj)                  # after the submodules: `mmcv.ops.nms` is the function, as in mmcv


def install_shim() -> None:
    """Register the stand-ins where needed; call before importing mmpose / mmseg / mmdet. Idempotent."""
    if importlib.util.find_spec("mmcv") is None:
        return                                   # no OpenMMLab here: register nothing
    if not _has_real_ops():
        current = sys.modules.get("mmcv.ops")
        if current is None or not getattr(current, _MARK, False):
            # an mmcv.ops imported without mmcv._ext cannot work (it fails at import): replace it
            ops = _register("mmcv.ops", _OPS_HINT)
            _provide_plain_torch_ops(ops)
    if "torchvision" not in sys.modules and importlib.util.find_spec("torchvision") is None:
        tv = _register("torchvision", _TV_HINT)
        tv.__version__ = "0.0.0"
        transforms = _register("torchvision.transforms", _TV_HINT)
        tv.transforms = transforms

