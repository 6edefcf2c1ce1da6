"""`preprocess run`: plan the shards this task owns, skip finished ones, run the rest in parallel.

On one machine, `--jobs` worker processes that survive a video crashing its worker (worker_pool.py); on a
Dask cluster (`--scheduler`), Dask's own scheduling with the same isolation (dask_runs.py). As array jobs,
N tasks each take the shards k with k % N == I.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import json
import os
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

from tqdm import tqdm

from data_specs import DatasetError, load_video_list

from .errors import UserError
from .names import shown
from .retry import parse_classes, shards_to_retry
from .store.quarantine import set_aside_damaged
from .frame_policy import with_legacy_frames
from .settings_diff import differences
from .dask_runs import run_shards_on_dask
from .pipeline import ShardResult, ShardTask
from .worker_pool import run_shards
from .store.layout import VIEW_META, create_json_once, read_json, shard_path, view_dir, write_json_atomic
from .store.manifest import Manifest, create_or_check_manifest
from .store.reader import list_shards, list_views, open_shard, shard_failures
from .flow.server import FlowServer, describe_stats, use_flow_server
from .views import ViewOptions, build_view, flow_settings, library_versions, recorded_attrs

EXIT_OK, EXIT_FAILED_VIDEOS, EXIT_SHARDS_BUSY = 0, 3, 4


@dataclass
class RunConfig:
    """Everything `preprocess run` was asked to do."""

    videos: str
    out: str
    views: list[str]
    options: ViewOptions
    dataset: str | None = None
    annotations: str | None = None
    jobs: int = -1
    shard: int | None = None
    num_shards: int | None = None
    scheduler: str | None = None
    videos_per_shard: int | None = None
    decode_threads: int = 1
    progress: bool = True
    retry_failed: str | None = None  # reason classes to make again (retry.py), None: none
    flow_server: str = "auto"        # auto | on | off: one flow process per device for the workers (flow/server.py)


def resolve_task(shard: int | None, num_shards: int | None, env: dict[str, str] | None = None) -> tuple[int, int]:
    """This job's (index, count) among array jobs: from the options, else from Slurm, else (0, 1)."""
    env = os.environ if env is None else env
    if shard is None and num_shards is None and "SLURM_ARRAY_TASK_ID" in env:
        first = _env_int(env, "SLURM_ARRAY_TASK_MIN", "0")
        shard = _env_int(env, "SLURM_ARRAY_TASK_ID") - first
        num_shards = _env_int(env, "SLURM_ARRAY_TASK_COUNT", "1")
    shard = 0 if shard is None else shard
    num_shards = 1 if num_shards is None else num_shards
    if num_shards < 1 or not 0 <= shard < num_shards:
        raise UserError(f"--shard must be in [0, --num-shards); got --shard {shard} --num-shards {num_shards}")
    return shard, num_shards


def _env_int(env: dict[str, str], name: str, default: str | None = None) -> int:
    value = env.get(name, default)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise UserError(f"${name} is {value!r}, not an integer: give --shard and --num-shards instead") from None


def check_output_folder(root: Path) -> None:
    """--out must be a folder this process can write (or one it can create)."""
    if root.exists() and not root.is_dir():
        raise UserError(f"--out {root} is a file, not a store folder")
    for folder in [root, *(p for p in root.iterdir() if p.is_dir())] if root.is_dir() else []:
        if not os.access(folder, os.W_OK | os.X_OK):
            raise UserError(f"cannot write to {folder} (permission denied): the store must be writable by this user")


def keep_recorded_compression(root: Path, views: Iterable[str], options: ViewOptions) -> ViewOptions:
    """Options in which every view that already exists under `root` keeps the compression it was made with
    (a store begun before a default changed goes on as it began), unless --compression names it."""
    chosen = dict(options.compression)
    for view in views:
        path = view_dir(root, view) / VIEW_META
        if view not in chosen and path.exists():
            recorded = read_json(path).get("compression")
            if recorded:
                chosen[view] = recorded
    return dataclasses.replace(options, compression=chosen)


def ensure_view_meta(root: Path, computers: Iterable) -> None:
    """Write each view's view.json once; refuse a run whose settings would change a view's bytes."""
    for comp in computers:
        path = view_dir(root, comp.name) / VIEW_META
        have = create_json_once(path, {**comp.attrs, "versions": library_versions()})
        have_attrs = with_legacy_frames(recorded_attrs({k: v for k, v in have.items() if k != "versions"}))
        diff = differences(have_attrs, _jsonable(comp.attrs))
        if diff:
            raise UserError(f"{path.parent} was made with other settings ({'; '.join(diff)}): "
                            f"use the same settings or another --out")


def _jsonable(obj: dict) -> dict:
    """The dict as it reads back from JSON (tuples become lists), for comparing with a view.json."""
    return json.loads(json.dumps(obj))


def plan(root: Path, manifest: Manifest, views: list[str], task: int, num_tasks: int) -> list[tuple[int, list[str]]]:
    """(shard, views still missing) for the shards this task owns."""
    todo = []
    for shard in range(task, manifest.num_shards, num_tasks):
        missing = [v for v in views if not shard_path(root, v, shard).exists()]
        if missing:
            todo.append((shard, missing))
    return todo


def _execute(tasks: list[ShardTask], jobs: int, scheduler: str | None, on_videos: Callable[[int], object],
             server: FlowServer | None = None) -> Iterator[ShardResult]:
    """Every task's result as it finishes; `on_videos(n)` as n more videos finish (per shard on Dask)."""
    if not tasks:
        return iter(())
    if scheduler:
        try:
            from dask.distributed import Client
        except ImportError:
            raise UserError("--scheduler needs dask[distributed]: pip install -c constraints.txt '.[dask]'") from None
        _check_reachable(scheduler)
        try:
            client = Client(scheduler, timeout="30s")
        except (OSError, TimeoutError, ValueError) as exc:
            raise UserError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None
        return _dask_results(client, tasks, on_videos)
    if jobs <= 0:
        jobs = max(1, len(os.sched_getaffinity(0)) + 1 + jobs)
    return run_shards(tasks, jobs, on_videos, server)


def scheduler_url(address: str) -> tuple[str, str | None, int | None]:
    """(scheme, host, port) of a scheduler address, or one line saying it is not one."""
    from urllib.parse import urlparse
    try:
        url = urlparse(address if "://" in address else f"tcp://{address}")
        return url.scheme, url.hostname, url.port
    except ValueError as exc:
        raise UserError(f"--scheduler {address!r} is not an address like tcp://host:8786 ({exc})") from None


def _check_reachable(address: str) -> None:
    """Fail in one line, at once, when nothing listens at a tcp:// scheduler address."""
    scheme, host, port = scheduler_url(address)
    if scheme != "tcp" or not host or not port:
        return
    try:
        socket.create_connection((host, port), timeout=10).close()
    except OSError as exc:
        raise UserError(f"cannot reach the Dask scheduler at {address}: {exc.strerror or exc}") from None


def _dask_results(client, tasks: list[ShardTask], on_videos: Callable[[int], object]) -> Iterator[ShardResult]:
    try:
        try:
            client.wait_for_workers(1, timeout=60)
        except TimeoutError:
            raise UserError(f"the Dask cluster at {client.scheduler.address} has no workers (waited 60 s)") from None
        yield from run_shards_on_dask(client, tasks, on_videos)
    finally:
        client.close()


def collect_failures(root: Path, manifest: Manifest, views: list[str], shards: Iterable[int]) -> list[dict]:
    """Failure records of the given shards in every view, read from the finished shard files."""
    out = []
    for view in views:
        present = list_shards(root, view)
        for shard in shards:
            if shard in present:
                with open_shard(present[shard]) as f:
                    out.extend({"view": view, **x} for x in shard_failures(f))
    return out


def write_failures_table(root: Path, manifest: Manifest) -> Path:
    """ROOT/failures.tsv: one line per video and view that failed, from every finished shard."""
    rows = collect_failures(root, manifest, list_views(root), range(manifest.num_shards))
    path = root / "failures.tsv"
    if not rows:  # nothing fails (any more): no stale lines
        path.unlink(missing_ok=True)
        return path
    lines = ["view\tvideo\treason\tpath"] + ["\t".join(shown(r[k]) for k in ("view", "id", "reason", "path"))
                                            for r in rows]
    tmp = path.with_name(f".failures.tsv.{os.getpid()}")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def run(cfg: RunConfig) -> int:
    """Run (or resume) a preprocessing job; returns the exit status."""
    root = Path(cfg.out)
    check_output_folder(root)
    if cfg.scheduler:
        scheduler_url(cfg.scheduler)
    cfg = dataclasses.replace(cfg, options=keep_recorded_compression(Path(cfg.out), cfg.views, cfg.options))
    computers = [build_view(v, cfg.options) for v in cfg.views]  # validates every setting before work starts
    serve = use_flow_server(cfg.flow_server, cfg.views, cfg.options.flow_impl, cfg.options.flow_device,
                            cfg.scheduler)
    try:
        videos = load_video_list(cfg.videos, cfg.dataset, cfg.annotations)
    except DatasetError as exc:
        raise UserError(str(exc)) from None
    if videos.missing:
        print(videos.missing_summary(), file=sys.stderr)
    task, num_tasks = resolve_task(cfg.shard, cfg.num_shards)
    manifest = create_or_check_manifest(root, videos, cfg.options.stride, cfg.videos_per_shard)
    ensure_view_meta(root, computers)
    owned = range(task, manifest.num_shards, num_tasks)
    for line in set_aside_damaged(root, cfg.views, owned):
        print(line, file=sys.stderr)
    todo = plan(root, manifest, cfg.views, task, num_tasks)
    retry = _plan_retry(root, cfg, owned, todo)
    todo = [(shard, cfg.views if shard in retry else views) for shard, views in todo] + \
        [(shard, cfg.views) for shard in sorted(retry) if shard not in dict(todo)]
    n_videos = sum(len(manifest.shard_records(s)) for s, _ in todo)
    total_owned = sum(len(manifest.shard_records(s)) for s in owned)
    print(f"{root}: {len(manifest.records)} videos in {manifest.num_shards} shards; task {task}/{num_tasks} owns "
          f"{len(owned)} shards ({total_owned} videos), {len(todo)} to do ({n_videos} videos); "
          f"views {','.join(cfg.views)}", file=sys.stderr)
    tasks = [ShardTask(str(root), shard, manifest.shard_records(shard), missing, cfg.options,
                       decode_threads=cfg.decode_threads, replace=shard in retry) for shard, missing in todo]
    busy: list[str] = []
    started = time.time()
    totals = ShardResult(-1)
    served = serve and any("flow_tvl1" in t.views for t in tasks)   # nothing to compute: no server
    with _flow_server(cfg.options) if served else contextlib.nullcontext() as server:
        if server is not None:
            tasks = [dataclasses.replace(t, flow_server=server.address) for t in tasks]
        with tqdm(total=n_videos, unit="video", disable=not cfg.progress, dynamic_ncols=True, desc="preprocess",
                  file=sys.stderr, bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} videos "
                                              "[{elapsed}<{remaining}, {rate_noinv_fmt}]") as bar:
            for res in _execute(tasks, cfg.jobs, cfg.scheduler, bar.update, server):
                totals.videos += res.videos
                totals.stored_frames += res.stored_frames
                totals.decoded_frames += res.decoded_frames
                if res.busy:
                    busy.append(f"warning: shard {res.shard} left alone: {res.busy}; run again once that job ends")
                for key, value in res.seconds.items():
                    totals.seconds[key] = totals.seconds.get(key, 0.0) + value
        batching = server.stop() if server is not None else None
    if batching is not None:
        print(describe_stats(batching), file=sys.stderr)
    wall = time.time() - started
    failures = collect_failures(root, manifest, cfg.views, owned)
    failed_videos = sorted({f["id"] for f in failures})
    _write_log(root, cfg, task, num_tasks, manifest, totals, failures, wall, batching)
    write_failures_table(root, manifest)
    ok = total_owned - len(failed_videos)
    print(f"done: {ok} of {total_owned} videos stored in {','.join(cfg.views)}; {len(failed_videos)} failed"
          + (f" (reasons in {root / 'failures.tsv'})" if failed_videos else "")
          + f"; this run made {totals.videos} videos, {totals.stored_frames} frames in {wall:.1f}s", file=sys.stderr)
    for f in failures[:10]:
        print(f"  failed {f['view']} {shown(f['id'])}: {shown(f['reason'])}", file=sys.stderr)
    for line in busy:
        print(line, file=sys.stderr)
    return EXIT_SHARDS_BUSY if busy else EXIT_FAILED_VIDEOS if failed_videos else EXIT_OK


def _plan_retry(root: Path, cfg: RunConfig, owned: range, todo: list[tuple[int, list[str]]]) -> set[int]:
    """Shards to make again under --retry-failed (finished ones whose failures are of the asked classes)."""
    classes = parse_classes(cfg.retry_failed)
    if classes is None:
        return set()
    retry = shards_to_retry(root, cfg.views, owned, classes)
    others = [v for v in list_views(root) if v not in cfg.views]
    print(f"retrying {sum(retry.values())} failed videos ({', '.join(sorted(classes))}) in {len(retry)} shards"
          + (f"; views {', '.join(others)} are not in --views and keep their failures: list every view to keep "
             f"them aligned" if retry and others else ""), file=sys.stderr)
    return set(retry)


def _flow_server(options: ViewOptions) -> FlowServer:
    """The flow server of this run's torch TV-L1 (started on entering), with the run's --tvl1 parameters."""
    return FlowServer(dict(options.flow_params.get("tvl1") or {}), flow_settings(options))


def _write_log(root: Path, cfg: RunConfig, task: int, num_tasks: int, manifest: Manifest, totals: ShardResult,
               failures: list[dict], wall: float, batching: dict | None = None) -> None:
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S")
    path = root / "logs" / f"run-{stamp}-task{task}of{num_tasks}-{socket.gethostname()}-{os.getpid()}.json"
    write_json_atomic(path, {
        "argv": sys.argv, "views": cfg.views, "jobs": cfg.jobs, "task": task, "num_tasks": num_tasks,
        "videos_made": totals.videos, "stored_frames": totals.stored_frames,
        "decoded_frames": totals.decoded_frames, "wall_seconds": wall, "worker_seconds": totals.seconds,
        "failures": failures, "versions": library_versions(),
        **({"flow_server": batching} if batching is not None else {}),
    })
