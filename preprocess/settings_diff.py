"""Name what differs between the settings a view was made with and this run's, key by key."""

from __future__ import annotations

from typing import Any

_ABSENT = object()


def differences(have: Any, want: Any, prefix: str = "") -> list[str]:
    """'params.algorithm.tau: 0.25 (store) vs 0.3 (this run)' for every leaf that differs."""
    if isinstance(have, dict) and isinstance(want, dict):
        out: list[str] = []
        for key in sorted(set(have) | set(want), key=str):
            out += differences(have.get(key, _ABSENT), want.get(key, _ABSENT), f"{prefix}{key}.")
        return out
    if have == want:
        return []
    show = lambda v: "(absent)" if v is _ABSENT else repr(v)  # noqa: E731
    return [f"{prefix.rstrip('.')}: {show(have)} in the store, {show(want)} in this run"]
