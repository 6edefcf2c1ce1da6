"""One flow process per device for the local workers of `preprocess run` (`--flow-server`).

The decode workers send their (grey t, grey t+1) pairs over a Unix socket; the server gathers the pairs of
several workers and videos into batches of up to --flow-batch pairs of one frame size, computes each batch
with the torch TV-L1 on its device and sends every request its flow back. Each pair converges on its own test
(torch_tvl1.py), so a pair's flow does not depend on its batch: a store made through the server has the bytes
of one made without it (tested). Each worker has at most one request in flight, so the server holds at most
--jobs requests and one batch.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import shutil
import signal
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.connection import Client, Connection, Listener
from pathlib import Path
from typing import Any

import numpy as np

from ..child_process import death_cause, die_with_parent
from ..errors import UserError, WorkerError
from .base import FlowSettings, check_pairs

MODES = ("auto", "on", "off")
GATHER_S = 0.05      # how long the server waits for more pairs before it computes a batch that is not full
CONNECT_S = 30.0     # how long a worker keeps trying to reach the server
START_S = 600.0      # how long the supervisor waits for the server to be ready (CUDA start-up included)
STOP_S = 60.0        # ... and for its statistics when it is told to stop


class FlowServerError(RuntimeError):
    """The flow server is gone: fatal for the run (like a full disk), never a video's failure."""


@dataclass(frozen=True)
class ServerAddress:
    """How a worker reaches the server; travels in each ShardTask."""

    path: str
    authkey: bytes


def use_flow_server(mode: str, views: list[str], flow_impl: str, device: str, scheduler: str | None) -> bool:
    """Whether this run computes TV-L1 in one flow server: `auto` when the torch TV-L1 runs on a CUDA device
    with local workers; `on` also on the CPU (to test it); a one-line error where it cannot work."""
    if mode not in MODES:
        raise UserError(f"--flow-server must be one of {', '.join(MODES)}, got {mode!r}")
    served = flow_impl == "torch" and "flow_tvl1" in views
    if mode == "on" and not served:
        raise UserError("--flow-server on needs --flow-impl torch and the flow_tvl1 view")
    if mode == "on" and scheduler:
        raise UserError("--flow-server on works with local workers only: Dask workers batch the pairs of their "
                        "own videos (use --flow-server auto or off with --scheduler)")
    if mode != "auto":
        return mode == "on"
    if not served or scheduler:
        return False
    from .torch_tvl1 import resolve_device
    return resolve_device(device).type == "cuda"


# ------------------------------------------------------------------------------------------- worker side
class ServerFlow:
    """A worker's flow backend that hands its pairs to the flow server and waits for their flow."""

    def __init__(self, address: ServerAddress, resolved: dict[str, Any]):
        self.address = address
        self.resolved = resolved
        self._conn: Connection | None = None
        self._video = 0

    def new_video(self) -> None:
        """The next pairs are another video's (the server counts videos per batch)."""
        self._video += 1

    def __call__(self, prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        check_pairs(prev, nxt)
        conn = self._connection()
        try:
            conn.send(("flow", self._video, prev, nxt))
            kind, payload = conn.recv()      # EOF as soon as the server's process ends
        except (EOFError, OSError) as exc:
            self._conn = None
            raise FlowServerError(f"the flow server is gone ({type(exc).__name__}: connection closed)") from None
        if kind == "error":                  # the flow of this request failed (as it would in the worker)
            raise RuntimeError(f"flow server: {payload}")
        return payload

    def _connection(self) -> Connection:
        deadline = time.monotonic() + CONNECT_S
        while self._conn is None:
            try:
                self._conn = Client(self.address.path, "AF_UNIX", authkey=self.address.authkey)
            except (FileNotFoundError, ConnectionRefusedError) as exc:
                if time.monotonic() > deadline:
                    raise FlowServerError(f"cannot reach the flow server at {self.address.path}: {exc}") from None
                time.sleep(0.1)
        return self._conn


# ------------------------------------------------------------------------------------------- server side
@dataclass
class _Request:
    client: Connection
    video: tuple[int, int]     # (client number, video number): counts videos per batch
    prev: np.ndarray
    nxt: np.ndarray
    out: np.ndarray
    left: int


@dataclass
class BatchStats:
    """What the server did, for the run's log: are pairs of several videos really computed together?"""

    batches: int = 0
    pairs: int = 0
    requests: int = 0
    videos_in_batches: int = 0     # summed over batches: the distinct videos in each
    most_videos: int = 0
    compute_s: float = 0.0
    failed_batches: int = 0

    def summary(self) -> dict[str, Any]:
        n = max(self.batches, 1)
        return {"batches": self.batches, "pairs": self.pairs, "requests": self.requests,
                "pairs_per_batch": self.pairs / n, "videos_per_batch": self.videos_in_batches / n,
                "most_videos_in_a_batch": self.most_videos, "compute_seconds": self.compute_s,
                "failed_batches": self.failed_batches}


@dataclass
class _Batcher:
    """Gathers requests by frame size and computes batches of up to `batch` pairs: a full batch at once; one
    that is not full when every connected worker waits on the server, or after `gather_s`."""

    backend: Any
    batch: int
    gather_s: float
    clients: dict[Connection, int] = field(default_factory=dict)          # live connection -> its number
    inflight: dict[Connection, _Request] = field(default_factory=dict)    # each client's request
    waiting: dict[tuple[int, ...], deque] = field(default_factory=dict)   # shape -> [request, first pair left]
    since: float = 0.0          # when the oldest waiting pair arrived
    stats: BatchStats = field(default_factory=BatchStats)
    connections: int = 0
    stopped: bool = False

    def run(self, inbox: queue.Queue) -> dict[str, Any]:
        """Serve the events of `inbox` until told to stop; the batch statistics."""
        while not self.stopped:
            shape = self._ready()
            if shape is not None:
                self._compute(shape)
                self._take(inbox, 0.0)   # what came in meanwhile, before choosing the next batch
            else:
                self._take(inbox, max(0.0, self.since + self.gather_s - time.monotonic()) if self.waiting else None)
        return self.stats.summary()

    def _take(self, inbox: queue.Queue, timeout: float | None) -> None:
        """Handle one event (waiting up to `timeout`, None: until one comes), then every event queued."""
        try:
            event = inbox.get(timeout=timeout)
        except queue.Empty:
            return
        while True:
            self._handle(*event)
            try:
                event = inbox.get_nowait()
            except queue.Empty:
                return

    def _handle(self, kind: str, conn: Connection | None = None, msg: Any = None) -> None:
        if kind == "stop":
            self.stopped = True
        elif kind == "client":
            self.connections += 1
            self.clients[conn] = self.connections
        elif kind == "gone":
            self.clients.pop(conn, None)
            self._drop(self.inflight.pop(conn, None))
        elif kind == "request":
            self._enqueue(conn, msg)

    def _enqueue(self, conn: Connection, msg: Any) -> None:
        try:
            _, video, prev, nxt = msg
            check_pairs(prev, nxt)
        except (TypeError, ValueError) as exc:
            _reply(conn, ("error", f"bad request: {exc}"))
            return
        req = _Request(conn, (self.clients.get(conn, -1), int(video)), prev, nxt,
                       np.empty(prev.shape + (2,), np.float32), len(prev))
        if not self.waiting:
            self.since = time.monotonic()
        self.inflight[conn] = req
        self.waiting.setdefault(prev.shape[1:], deque()).append([req, 0])
        self.stats.requests += 1

    def _ready(self) -> tuple[int, ...] | None:
        """The frame size to compute now, or None to wait for more pairs."""
        if not self.waiting:
            return None
        for shape, parts in self.waiting.items():
            if sum(len(r.prev) - start for r, start in parts) >= self.batch:
                return shape
        everyone_waits = all(c in self.inflight for c in self.clients)
        if everyone_waits or time.monotonic() >= self.since + self.gather_s:
            return next(iter(self.waiting))    # the oldest size (dicts keep insertion order)
        return None

    def _compute(self, shape: tuple[int, ...]) -> None:
        parts, room, todo = [], self.batch, self.waiting[shape]
        while todo and room:
            req, start = todo[0]
            take = min(room, len(req.prev) - start)
            parts.append((req, start, take))
            room -= take
            if start + take == len(req.prev):
                todo.popleft()
            else:
                todo[0][1] = start + take
        if not todo:
            del self.waiting[shape]
        self.since = time.monotonic()
        t = time.perf_counter()
        try:
            flow = self.backend(np.concatenate([r.prev[s:s + k] for r, s, k in parts]),
                                np.concatenate([r.nxt[s:s + k] for r, s, k in parts]))
        except Exception as exc:  # e.g. out of GPU memory: the videos of this batch fail, the server goes on
            self.stats.failed_batches += 1
            for req in {id(r): r for r, _, _ in parts}.values():
                self._drop(req)
                _reply(req.client, ("error", f"{type(exc).__name__}: {' '.join(str(exc).split())}"))
            return
        self.stats.compute_s += time.perf_counter() - t
        self.stats.batches += 1
        self.stats.pairs += len(flow)
        videos = len({r.video for r, _, _ in parts})
        self.stats.videos_in_batches += videos
        self.stats.most_videos = max(self.stats.most_videos, videos)
        at = 0
        for req, start, k in parts:
            req.out[start:start + k] = flow[at:at + k]
            at += k
            req.left -= k
            if req.left == 0 and self.inflight.get(req.client) is req:
                del self.inflight[req.client]
                _reply(req.client, ("flow", req.out))

    def _drop(self, req: _Request | None) -> None:
        """Forget a request (its worker is gone, or its batch failed): no more of its pairs are computed."""
        if req is None:
            return
        if self.inflight.get(req.client) is req:
            del self.inflight[req.client]
        for shape in list(self.waiting):
            kept = deque(p for p in self.waiting[shape] if p[0] is not req)
            if kept:
                self.waiting[shape] = kept
            else:
                del self.waiting[shape]


def _reply(conn: Connection, message: tuple) -> None:
    try:
        conn.send(message)
    except OSError:  # the worker died meanwhile: its supervisor handles that
        pass


def _accept(listener: Listener, inbox: queue.Queue) -> None:
    while True:
        try:
            conn = listener.accept()
        except OSError:
            return
        except Exception:  # a peer without the key: ignore it
            continue
        inbox.put(("client", conn))
        threading.Thread(target=_read, args=(conn, inbox), daemon=True).start()


def _read(conn: Connection, inbox: queue.Queue) -> None:
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            inbox.put(("gone", conn))
            return
        inbox.put(("request", conn, msg))


def _watch_control(control: Connection, inbox: queue.Queue) -> None:
    try:
        control.recv()
    except (EOFError, OSError):
        pass
    inbox.put(("stop",))


def _serve(params: dict[str, Any], settings: FlowSettings, address: ServerAddress, control: Connection,
           gather_s: float) -> None:
    """The server process: build the backend, listen, batch until told to stop, send back the statistics."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the supervisor's to handle
    die_with_parent()
    from . import make_flow
    from .torch_tvl1 import resolve_device
    import torch
    try:
        backend = make_flow("tvl1", params, "torch", settings)
        if resolve_device(settings.device).type == "cpu":
            torch.set_num_threads(1)   # as a worker computing its own flow: the same sums, the same bytes
        listener = Listener(address.path, "AF_UNIX", backlog=64, authkey=address.authkey)
    except Exception as exc:
        control.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    inbox: queue.Queue = queue.Queue()
    threading.Thread(target=_accept, args=(listener, inbox), daemon=True).start()
    threading.Thread(target=_watch_control, args=(control, inbox), daemon=True).start()
    control.send(("ready", str(backend.device)))
    stats = _Batcher(backend, settings.batch_size, gather_s).run(inbox)
    control.send(("stats", stats))


# ------------------------------------------------------------------------------------------- supervisor side
class FlowServer:
    """The server process as the supervisor holds it: started on entering, checked while workers run,
    stopped (returning its statistics) at the end, terminated on any way out."""

    def __init__(self, params: dict[str, Any], settings: FlowSettings, gather_s: float = GATHER_S):
        self.params, self.settings, self.gather_s = params, settings, gather_s
        self.device = settings.device

    def __enter__(self) -> "FlowServer":
        self._dir = Path(tempfile.mkdtemp(prefix="cocon-flow-"))
        self.address = ServerAddress(str(self._dir / "socket"), os.urandom(16))
        ctx = mp.get_context("spawn")
        self._control, child = ctx.Pipe()
        self.process = ctx.Process(target=_serve, args=(self.params, self.settings, self.address, child,
                                                        self.gather_s), daemon=True, name="preprocess-flow-server")
        self.process.start()
        child.close()
        try:
            kind, payload = self._receive(START_S, "to start")
            if kind != "ready":
                raise UserError(f"the flow server could not start: {payload}")
        except BaseException:
            self.__exit__()
            raise
        self.device = payload
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.process.is_alive():
            self.process.terminate()
        self.process.join(timeout=10)
        self._control.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    @property
    def sentinel(self) -> int:
        return self.process.sentinel

    def check(self, wait_s: float = 0.0) -> None:
        """One line (WorkerError) if the server has died; `wait_s` gives a dying one time to be seen dead."""
        self.process.join(timeout=wait_s)
        if not self.process.is_alive():
            raise WorkerError(f"the flow server process {death_cause(self.process.exitcode)}: finished shards "
                              f"are kept; run the same command again to finish")

    def stop(self) -> dict[str, Any]:
        """Tell the server to stop; its batch statistics."""
        try:
            self._control.send(None)
        except OSError:
            self.check(5.0)
        kind, payload = self._receive(STOP_S, "to stop")
        return {"device": self.device, **payload}

    def _receive(self, limit_s: float, what: str) -> tuple[str, Any]:
        """The server's next control message, waiting while it lives and at most `limit_s`."""
        deadline = time.monotonic() + limit_s
        while not self._control.poll(1.0):
            self.check()
            if time.monotonic() > deadline:
                raise WorkerError(f"the flow server took more than {limit_s:.0f} s {what}")
        try:
            return self._control.recv()
        except (EOFError, OSError):
            self.check(5.0)
            raise WorkerError("the flow server closed its control pipe") from None


def describe_stats(stats: dict[str, Any]) -> str:
    """One line for the run's output: shows that batching works (pairs and videos per batch)."""
    return (f"flow server on {stats['device']}: {stats['pairs']} pairs in {stats['batches']} batches, "
            f"{stats['pairs_per_batch']:.1f} pairs and {stats['videos_per_batch']:.2f} videos per batch "
            f"(at most {stats['most_videos_in_a_batch']}), {stats['compute_seconds']:.1f} s computing")
