"""Declared algorithm parameters: each backend lists its parameters with type, default and valid range, and
`resolve_params` turns a user's KEY=VALUE dict into checked values before any work starts.

Ranges are those under which the algorithm runs and gives a meaningful flow: OpenCV accepts many values
that then fail on every video (`nscales=0`), crash the process (`patch_size=0`), or silently give zero
flow (`tau=nan`); all of those are refused here with one line naming the parameter and its range.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

from ..errors import UserError


@dataclass(frozen=True)
class Param:
    """One algorithm parameter: its type, default, and the check that its value is valid."""

    name: str
    kind: type
    default: Any
    valid: Callable[[Any], bool]
    rule: str                     # the valid range in words, for the error message

    def coerce(self, backend: str, value: Any) -> Any:
        """The value as this parameter's type, checked against its range, or a one-line UserError."""
        try:
            if self.kind is bool:
                text = str(value).lower()
                if text not in ("0", "1", "true", "false"):
                    raise ValueError(value)
                out: Any = text in ("1", "true")
            elif self.kind is int:
                out = int(str(value)) if isinstance(value, str) else int(value)
                if not isinstance(value, (str, int, bool)) and out != value:
                    raise ValueError(value)
            else:
                out = self.kind(value)
        except (TypeError, ValueError):
            raise UserError(f"{backend} parameter {self.name}={value!r} is not a valid {self.kind.__name__}") from None
        if not self.valid(out) and self.kind is str:
            raise UserError(f"{backend} parameter {self.name}={value!r} is not {self.rule}")
        if not self.valid(out):
            raise UserError(f"{backend} parameter {self.name}={value} is out of range: {self.rule}")
        return out


def finite_in(low: float, high: float, low_open: bool = False, high_open: bool = False) -> Callable[[float], bool]:
    """A check for a finite number in [low, high] (or open at either end)."""
    def check(x: float) -> bool:
        if not math.isfinite(x):
            return False
        above = x > low if low_open else x >= low
        below = x < high if high_open else x <= high
        return above and below
    return check


def int_at_least(low: int) -> Callable[[int], bool]:
    return lambda x: x >= low


def one_of(*values: Any) -> Callable[[Any], bool]:
    return lambda x: x in values


def resolve_params(backend: str, declared: tuple[Param, ...], given: dict[str, Any] | None) -> dict[str, Any]:
    """Every declared parameter's value in force: the given ones checked, the rest their defaults."""
    table = {p.name: p for p in declared}
    given = dict(given or {})
    unknown = sorted(set(given) - set(table))
    if unknown:
        raise UserError(f"unknown {backend} parameter(s) {', '.join(unknown)}; known: {', '.join(table)}")
    return {p.name: p.coerce(backend, given[p.name]) if p.name in given else p.default for p in declared}


def check_bound(bound: float) -> float:
    """The flow quantiser's clip bound: a finite positive number of pixels."""
    if not (math.isfinite(bound) and bound > 0):
        raise UserError(f"--flow-bound must be positive, got {bound} (a finite number of pixels)")
    return float(bound)
