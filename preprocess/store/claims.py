"""Who is making a shard right now: a claim file per shard, so that two jobs never make the same shard at
once (a duplicated array task, a re-submission while the first still runs) and so that partial files left
by a dead job, on any host, can be removed safely.

    ROOT/.claims/shard-00012       "host pid" of the process making shard 12; its mtime is a heartbeat

A claim is created by hard-linking a file holding its text to the claim's name, which fails atomically when
the name exists on local file systems, NFS and Lustre. It is
stale when its process is gone: on the same host, when that pid no longer runs; on another host, when its
heartbeat (touched every HEARTBEAT_S seconds) is older than STALE_S. A stale claim is broken by renaming
it (only one of several racing jobs succeeds) and then taken.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

from ..errors import UserError
from .layout import PARTIAL_RE, view_dir

CLAIMS = ".claims"
HEARTBEAT_S = 30.0
STALE_S = 600.0


class ShardBusy(UserError):
    """Another live process is making this shard."""


def claim_path(root: Path, shard: int) -> Path:
    return Path(root) / CLAIMS / f"shard-{shard:05d}"


def process_alive(pid: int) -> bool:
    """Whether a process of this host still runs (a killed worker may linger as a zombie: dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def claim_owner(path: Path) -> tuple[str, int, float, str] | None:
    """(host, pid, seconds since its heartbeat, its text) of a claim, or None when there is none."""
    try:
        raw = path.read_text()
        age = time.time() - path.stat().st_mtime
    except (FileNotFoundError, NotADirectoryError):
        return None
    text = raw.split()
    host, pid = (text[0], int(text[1])) if len(text) >= 2 and text[1].isdigit() else ("?", -1)
    return host, pid, age, raw


def is_stale(host: str, pid: int, age: float) -> bool:
    if host == socket.gethostname():
        return not process_alive(pid)
    return age > STALE_S


class ShardClaim:
    """Hold the claim of one shard while making it: `with ShardClaim(root, shard):` raises ShardBusy when a
    live process holds it; a stale claim is taken over."""

    def __init__(self, root: Path, shard: int) -> None:
        self.path = claim_path(root, shard)
        self.me = f"{socket.gethostname()} {os.getpid()}"
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    def __enter__(self) -> "ShardClaim":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            if self._create():
                self._beat = threading.Thread(target=self._heartbeat, daemon=True, name="shard-claim")
                self._beat.start()
                return self
            owner = claim_owner(self.path)
            if owner is None:
                continue
            host, pid, age, judged = owner
            if not is_stale(host, pid, age):
                raise ShardBusy(f"{self.path.name} is being made by {host} pid {pid} (heartbeat {age:.0f} s ago; "
                                f"claim {self.path})")
            self._break(judged)
        raise ShardBusy(f"{self.path.name}: could not take its claim {self.path} (other jobs keep taking it)")

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._beat is not None:
            self._beat.join()
        try:
            if self.path.read_text() == self.me:
                self.path.unlink()
        except FileNotFoundError:
            pass

    def _create(self) -> bool:
        """Take the claim if there is none: its text is written first, then linked into place (a hard link
        fails when the name exists, atomically), so a claim never exists without its owner's text, also
        when that owner is killed while taking it (an empty claim would look alive for STALE_S)."""
        tmp = self.path.with_name(f".{self.path.name}.new-{socket.gethostname()}-{os.getpid()}")
        tmp.write_text(self.me)
        try:
            os.link(tmp, self.path)
        except FileExistsError:
            return False
        finally:
            tmp.unlink(missing_ok=True)
        return True

    def _break(self, judged: str) -> None:
        """Move the stale claim `judged` (its text) aside and drop it. The rename is atomic: of several jobs
        breaking it at once one succeeds; one that finds it moved a fresh claim instead puts it back."""
        aside = self.path.with_name(f".{self.path.name}.stale-{socket.gethostname()}-{os.getpid()}")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return
        try:
            if aside.read_text() != judged:
                os.link(aside, self.path)
        except OSError:
            pass
        aside.unlink(missing_ok=True)

    def _heartbeat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                os.utime(self.path)
            except OSError:
                pass


def remove_partials(root: Path, view: str, shard: int) -> None:
    """Delete every partial file of a shard, of any host: call only while holding the shard's claim."""
    folder = view_dir(root, view)
    if folder.is_dir():
        for p in folder.iterdir():
            m = PARTIAL_RE.match(p.name)
            if m and int(m.group(1)) == shard:
                p.unlink(missing_ok=True)
