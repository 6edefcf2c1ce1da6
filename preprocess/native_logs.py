"""Native libraries (mediapipe's absl logging, TFLite) write info and warning lines straight to file
descriptor 2, from their own threads, into the progress bar: about 50 per run. A worker process calls
`keep_only_error_logs()` once: its descriptor 2 then feeds a thread that passes on error lines only."""

from __future__ import annotations

import os
import re
import sys
import threading

# absl's E(rror)/F(atal) lines with their date stamp, ERROR/FATAL prefixes (TFLite), Python's error lines.
ERROR_LINE = re.compile(r"^([EF]\d{4} |ERROR|FATAL|\w*(Error|Exception)\b)")
TRACEBACK = "Traceback (most recent call last):"


def error_lines(lines: list[str], in_traceback: bool = False) -> tuple[list[str], bool]:
    """The lines to keep (errors, and Python tracebacks whole); whether a traceback is still open."""
    kept = []
    for line in lines:
        if line.startswith(TRACEBACK):
            in_traceback = True
        if in_traceback or ERROR_LINE.match(line):
            kept.append(line)
        if in_traceback and line and not line[0].isspace() and not line.startswith(TRACEBACK):
            in_traceback = False  # the exception's own line ends a traceback
    return kept, in_traceback


def keep_only_error_logs() -> None:
    """From now on, this process's writes to descriptor 2 reach the real stderr only when they are errors."""
    sys.stderr.flush()
    read_end, write_end = os.pipe()
    real = os.dup(2)
    os.dup2(write_end, 2)
    os.close(write_end)

    def pump() -> None:
        in_traceback = False
        with os.fdopen(read_end, "r", encoding="utf-8", errors="replace") as source:
            for line in source:
                kept, in_traceback = error_lines([line.rstrip("\n")], in_traceback)
                if kept:
                    os.write(real, (kept[0] + "\n").encode())

    threading.Thread(target=pump, daemon=True, name="native-logs").start()
