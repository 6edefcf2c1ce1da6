"""File names as they really are: any bytes but '/' and NUL. Python holds undecodable bytes as lone
surrogates (PEP 383); these helpers carry such names through HDF5, TSV files and terminals unchanged
or, where text must be printable, escaped reversibly."""

from __future__ import annotations

from typing import Any

_ESCAPES = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"}


def shown(name: str) -> str:
    """A name printable on one line and in one TSV field: backslash, tab, newline and carriage return
    escaped as \\\\, \\t, \\n, \\r; bytes that are not UTF-8 as \\xNN."""
    text = "".join(_ESCAPES.get(c, c) for c in name)
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def unshown(text: str) -> str:
    """The name that `shown` printed (for reading failures.tsv back)."""
    raw = text.encode("utf-8").decode("unicode_escape").encode("latin-1")
    return raw.decode("utf-8", "surrogateescape")


def h5_text(name: str) -> Any:
    """A value HDF5 can hold: the text itself, or its raw bytes when it is not valid UTF-8."""
    try:
        name.encode("utf-8")
        return name
    except UnicodeEncodeError:
        return name.encode("utf-8", "surrogateescape")


def from_h5_text(value: Any) -> str:
    """The name `h5_text` stored."""
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else str(value)
