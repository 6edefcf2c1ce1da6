"""Which source frames a video yields and what is told about them: the tolerance for frames missing at
the end, the bound on the long side, and the flow target rule for repeated source frames.

Every value that changes stored bytes goes into each view's `frames` attributes, so a re-run with other
values is refused; `LEGACY_FRAMES` is what a store made before these settings existed implicitly used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import UserError

FLOW_TARGETS = ("next-different", "next")
DEFAULT_MAX_MISSING_FRAMES = 2
DEFAULT_MAX_LONG_SIDE = 1024
DEFAULT_REPEAT_MAX_CHANGED = 0.001
# A source frame "repeats" its predecessor when at most `repeat_max_changed` of its grey pixels, at the
# stored size, differ from it by more than CHANGE_LEVEL grey levels (compression noise on a repeated frame
# stays below it); the flow target is looked for at most MAX_SKIP source frames ahead.
CHANGE_LEVEL = 8
MAX_SKIP = 8


@dataclass(frozen=True)
class FramePolicy:
    """The run's frame settings (see docs/robustness.md)."""

    max_missing_frames: int = DEFAULT_MAX_MISSING_FRAMES
    max_long_side: int = DEFAULT_MAX_LONG_SIDE          # 0: unbounded
    flow_target: str = "next-different"
    repeat_max_changed: float = DEFAULT_REPEAT_MAX_CHANGED

    def __post_init__(self) -> None:
        if self.flow_target not in FLOW_TARGETS:
            raise UserError(f"--flow-target must be one of {', '.join(FLOW_TARGETS)}, got {self.flow_target!r}")
        if not 0.0 <= self.repeat_max_changed < 1.0:
            raise UserError(f"--repeat-max-changed must be in [0, 1), got {self.repeat_max_changed}")
        if self.max_missing_frames < 0:
            raise UserError(f"--max-missing-frames must be 0 or more, got {self.max_missing_frames}")
        if self.max_long_side < 0:
            raise UserError(f"--max-long-side must be 0 (unbounded) or more, got {self.max_long_side}")

    @property
    def skips_repeats(self) -> bool:
        return self.flow_target == "next-different"

    def view_attrs(self, kind: str) -> dict[str, Any]:
        """The byte-changing part, as a view records it (the flow rule only in flow views)."""
        out: dict[str, Any] = {"max_long_side": self.max_long_side}
        if kind == "flow":
            out["flow_target"] = self.flow_target
            if self.skips_repeats:
                out.update(repeat_max_changed=self.repeat_max_changed, change_level=CHANGE_LEVEL, max_skip=MAX_SKIP)
        return out


def legacy_frames(kind: str) -> dict[str, Any]:
    """What a view made before these settings existed did: no bound on the long side, flow to t+1."""
    return FramePolicy(max_long_side=0, flow_target="next").view_attrs(kind)


def with_legacy_frames(view_meta: dict[str, Any]) -> dict[str, Any]:
    """A view.json as the current code would have written it, for comparison with this run's settings."""
    if "frames" in view_meta:
        return view_meta
    return {**view_meta, "frames": legacy_frames(str(view_meta.get("kind", "")))}


def add_frame_arguments(group: Any) -> None:
    """The frame settings' command-line options (an argparse argument group)."""
    group.add_argument("--max-missing-frames", type=int, default=DEFAULT_MAX_MISSING_FRAMES, metavar="N",
                       help="a video that ends more than N frames before its declared frame count or duration is "
                            "recorded as failed (truncated); up to N missing frames are stored and counted in "
                            "the video's missing_end_frames attribute")
    group.add_argument("--max-long-side", type=int, default=DEFAULT_MAX_LONG_SIDE, metavar="PIXELS",
                       help="bound on the stored long side (an extreme aspect ratio then gets a shorter short "
                            "side, flagged in the video's long_side_capped attribute); 0: no bound")
    group.add_argument("--flow-target", choices=FLOW_TARGETS, default="next-different",
                       help="flow of stored frame t goes to source frame t+1 (next), or, when t+1 repeats t, to "
                            "the next source frame that differs, at most 8 ahead (next-different); the target of "
                            "each stored frame is recorded in flow_target_indices")
    group.add_argument("--repeat-max-changed", type=float, default=DEFAULT_REPEAT_MAX_CHANGED, metavar="FRACTION",
                       help=f"a source frame repeats its predecessor when at most this fraction of its grey pixels "
                            f"(at the stored size) differ by more than {CHANGE_LEVEL} levels")


def policy_from_args(args: Any) -> FramePolicy:
    """The FramePolicy of parsed command-line options."""
    return FramePolicy(max_missing_frames=args.max_missing_frames, max_long_side=args.max_long_side,
                       flow_target=args.flow_target, repeat_max_changed=args.repeat_max_changed)
