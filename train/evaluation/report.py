"""An evaluation run's record: metrics.json (machine-readable) and report.md (sections of text, tables and
figures) in the run's folder, both written atomically."""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class Section:
    """One `## title` part of the report: text, then a table (first row = header), then figures."""

    title: str
    text: str = ""
    table: list[list[str]] | None = None
    figures: list[Path] = field(default_factory=list)


def format_percent(x: float | None, digits: int = 1) -> str:
    """A fraction as a percentage for tables: 0.8333 -> "83.3%"; None or NaN -> "n/a"."""
    if x is None or math.isnan(float(x)):
        return "n/a"
    return f"{100.0 * float(x):.{digits}f}%"


NOT_INFORMATIVE = "not informative at this size"


def recall_table(recalls: Mapping[str, Mapping[int, float]], chance: Mapping[int, float]) -> list[list[str]]:
    """The retrieval table: a row of R@k per feature set, then the chance row (a random ranking); a k whose
    chance is 100% (every query has fewer than k gallery videos of other classes) holds by construction and
    is printed as NOT_INFORMATIVE."""
    ks = list(chance)
    rows = [["features"] + [f"R@{k}" for k in ks]]
    for name, recall in recalls.items():
        rows.append([name] + [NOT_INFORMATIVE if chance[k] == 1.0 else format_percent(recall[k]) for k in ks])
    rows.append(["chance (random ranking)"] + [NOT_INFORMATIVE if chance[k] == 1.0 else format_percent(chance[k])
                                               for k in ks])
    return rows


def describe_clips(count: int, placement: str, num_blocks: int, block_frames: int, overlap: float) -> str:
    """Words for a test protocol's clips per video (a `train.methods.TestClips`), for the reports."""
    if placement == "even":
        return f"{count} clips of {num_blocks * block_frames} stored frames with evenly spaced starts"
    which = "every window" if count == 0 else f"up to {count} evenly chosen windows"
    return f"{which} of {num_blocks}x{block_frames} stored frames overlapping by {overlap:g}"


def missing_classes_note(names: list[str], test_labels: np.ndarray, gallery_labels: np.ndarray) -> str:
    """A sentence naming the classes without a test video and those without a training (gallery) video,
    or "" when every class has both."""
    def absent(labels: np.ndarray) -> list[str]:
        present = set(np.asarray(labels).tolist())
        return [name for c, name in enumerate(names) if c not in present]

    parts = []
    for what, missing in (("test", absent(test_labels)), ("training", absent(gallery_labels))):
        if missing:
            shown = ", ".join(missing[:20]) + (f" and {len(missing) - 20} more" if len(missing) > 20 else "")
            parts.append(f"{len(missing)} of {len(names)} classes have no {what} video: {shown}.")
    return " ".join(parts)


def _plain(value: Any) -> Any:
    """value with numpy scalars and arrays, tuples and paths made JSON types, and NaN or inf made None."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


def _write_atomic(path: Path, text: str) -> None:
    """Write text to path through a temporary file in the same folder and a rename."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _cell(text: Any) -> str:
    """One Markdown table cell: pipes escaped, line breaks as spaces."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _table(rows: list[list[str]]) -> str:
    """A GitHub Markdown table from rows, the first being the header."""
    header, body = rows[0], rows[1:]
    bad = [i for i, row in enumerate(body, start=1) if len(row) != len(header)]
    if bad:
        raise ValueError(f"table rows {bad} do not have the header's {len(header)} cells")
    lines = ["| " + " | ".join(_cell(c) for c in header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in body]
    return "\n".join(lines)


def write_report(run_dir: str | os.PathLike, title: str, metrics: Mapping[str, Any], sections: list[Section]) -> Path:
    """Write run_dir/metrics.json and run_dir/report.md (figures linked relative to run_dir); the report's path.

    Figure paths are used as given (absolute, or relative to the working directory); a missing one is an error.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    parts = [f"# {title}", f"Generated at {stamp}."]
    for section in sections:
        parts.append(f"## {section.title}")
        if section.text:
            parts.append(section.text.strip())
        if section.table:
            parts.append(_table(section.table))
        for figure in section.figures:
            figure = Path(figure)
            if not figure.is_file():
                raise FileNotFoundError(f"figure {figure} of section {section.title!r} does not exist")
            link = Path(os.path.relpath(figure, run_dir)).as_posix()
            link = f"<{link}>" if " " in link else link
            parts.append(f"![{figure.stem}]({link})")
    metrics_text = json.dumps(_plain(metrics), indent=2, sort_keys=True, allow_nan=False) + "\n"
    _write_atomic(run_dir / "metrics.json", metrics_text)
    report = run_dir / "report.md"
    _write_atomic(report, "\n\n".join(parts) + "\n")
    return report
