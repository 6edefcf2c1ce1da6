"""Training commands under a user's mistakes and signals (issue 12): every bad config value, bad checkpoint or
interrupted run ends with one line and a documented exit status, never a traceback."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from tests.conftest import ROOT, cocon_args, run_cli
from train.cocon import main as train_main
from train.engine.command import quiet_peer_errors


def _one_line(capsys, rc: int, expected_rc: int = 2) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == expected_rc and err and err[-1].startswith("error: "), err
    assert not any("Traceback" in line for line in err), err
    return err[-1]


@pytest.mark.parametrize("extra,message", [
    (["model.width=0"], "config key model.width must be positive; got 0.0"),
    (["model.width=-1"], "config key model.width must be positive; got -1.0"),
    (["data.workers=-1"], "config key data.workers must be 0"),
    (["model.sizes={rgb: 0}"], "config key model.sizes.rgb must be a positive input size; got 0"),
    (["seed=100000000000000000"], "config key seed must be in [0, 2**32)"),
    (["seed=1e17"], "config key seed expects an integer"),
    (["device=foo"], "config key device must be auto, cpu, cuda or cuda:N; got 'foo'"),
    (["device=cuda:99"], "config key device is 'cuda:99' but this machine has"),
    (["loss.teacher=flow_dis"], "config key loss.teacher must be one of data.views ['rgb'] or empty; got 'flow_dis'"),
    (["loss.freeze_teacher=true"], "config key loss.freeze_teacher needs loss.teacher: the view to freeze"),
])
def test_well_typed_invalid_values_are_one_line(cocon_store, tmp_path, capsys, extra, message):
    rc = train_main(cocon_args(cocon_store, tmp_path, "schedule.stage=cpc", "data.views=[rgb]", "schedule.cpc_epochs=1",
                               *extra))
    line = _one_line(capsys, rc)
    assert message in line, line
    assert not (tmp_path / "sample").exists()          # nothing written


def test_cuda_without_cuda_is_one_line(cocon_store, tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    line = _one_line(capsys, train_main(cocon_args(cocon_store, tmp_path, "device=cuda")))
    assert "config key device is 'cuda' but this machine has no usable CUDA GPU" in line


def test_out_that_is_a_file_is_one_line(cocon_store, tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    line = _one_line(capsys, train_main(cocon_args(cocon_store, tmp_path / "afile" / "deeper")))
    assert line == f"error: config key out: {tmp_path / 'afile'} is a file, not a folder for runs"


def test_overrides_are_accepted_after_resume(cocon_store, tmp_path, capsys):
    args = cocon_args(cocon_store, tmp_path, "schedule.stage=cpc", "data.views=[rgb]", "schedule.cpc_epochs=1")
    assert train_main(args) == 0
    capsys.readouterr()
    # `--resume` in the middle of the overrides: the ones after it count too (cpc_epochs=2 trains one more epoch)
    assert train_main(args[:-1] + ["--resume", "schedule.cpc_epochs=2"]) == 0
    lines = (tmp_path / "sample" / "cpc-rgb" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2]


@pytest.fixture(scope="module")
def finished_run(cocon_store, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("finished")
    assert train_main(cocon_args(cocon_store, out, "schedule.cpc_epochs=1", "schedule.cocon_epochs=1")) == 0
    return out


@pytest.mark.parametrize("damage,message", [
    (lambda b: b[: len(b) // 2], "cannot be read (truncated or not a checkpoint?)"),
    (lambda b: b"", "cannot be read (truncated or not a checkpoint?): Ran out of input"),
    (lambda b: bytes(range(256)) * 20, "cannot be read (truncated or not a checkpoint?)"),
])
def test_resume_from_a_damaged_checkpoint_is_one_line(finished_run, tmp_path, capsys, damage, message, cocon_store):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    ckpt = run / "sample" / "cocon" / "checkpoint.pth"
    ckpt.write_bytes(damage(ckpt.read_bytes()))
    line = _one_line(capsys, train_main(cocon_args(cocon_store, run, "schedule.cpc_epochs=1", "schedule.cocon_epochs=1",
                                              "--resume")))
    assert line.startswith(f"error: checkpoint {ckpt} ") and message in line, line


@pytest.mark.parametrize("extra,message", [
    (["model.width=0.25"], "differ in shape (e.g. views.rgb.encoder.stem.0.weight: (8, 3, 1, 7, 7) in the "
                           "checkpoint, (16, 3, 1, 7, 7) here); changed since: model.width: 0.125 -> 0.25"),
    (["model.depth=34"], "changed since: model.depth: 18 -> 34"),
    (["data.views=[rgb]"], "weight(s) this run's model lacks (e.g. views.flow_dis."),
])
def test_resume_with_another_model_names_the_difference(finished_run, capsys, extra, message, cocon_store):
    line = _one_line(capsys, train_main(cocon_args(cocon_store, finished_run, "schedule.cpc_epochs=1",
                                                   "schedule.cocon_epochs=1", *extra, "--resume")))
    assert line.startswith("error: cannot resume from ") and "checkpoint.pth" in line and message in line, line


class _Killed(BaseException):
    """Stands for a kill -9 at a chosen point (nothing after it runs)."""


@pytest.mark.parametrize("when", ["after_checkpoint", "before_checkpoint"])
def test_metrics_are_complete_after_a_kill_around_the_checkpoint(cocon_store, tmp_path, monkeypatch, when):
    """A kill between an epoch's checkpoint and its metrics line used to lose the line; now the line is written
    first, and a line whose epoch the checkpoint never got is trimmed when that epoch is redone."""
    import train.engine.runner as runner
    real = runner.save_training_state

    def dying(path, dist, parts, **extra):
        if extra["epoch"] == 2 and when == "before_checkpoint":
            raise _Killed()
        real(path, dist, parts, **extra)
        if extra["epoch"] == 2:
            raise _Killed()

    args = cocon_args(cocon_store, tmp_path, "schedule.stage=cpc", "data.views=[rgb]", "schedule.cpc_epochs=3")
    monkeypatch.setattr(runner, "save_training_state", dying)
    with pytest.raises(_Killed):
        train_main(args)
    monkeypatch.setattr(runner, "save_training_state", real)
    assert train_main(args + ["--resume"]) == 0
    lines = (tmp_path / "sample" / "cpc-rgb" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2, 3]


def _children(pid: int) -> set[int]:
    """The live child processes of `pid` (Linux /proc)."""
    out: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out |= {int(x) for x in (task / "children").read_text().split()}
        except OSError:
            pass
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _terminal_sigint() -> None:
    """SIGINT as a terminal's job gets it: pytest started in the background of a script (`cmd &`) passes SIGINT on
    ignored, and Python keeps an ignored SIGINT, so Ctrl-C would never reach the run under test."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start_with_workers(cocon_store: Path, out: Path, loader: str) -> tuple[subprocess.Popen, set[int]]:
    """A long cpc run with 2 data workers, in its own process group, once its workers are running."""
    cmd = [sys.executable, "-m", "train.cocon", *cocon_args(cocon_store, out, "schedule.stage=cpc", "data.views=[rgb]",
                                                       "schedule.cpc_epochs=200", "data.workers=2",
                                                       f"data.loader={loader}")]
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"}, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=_terminal_sigint)
    metrics = out / "sample" / "cpc-rgb" / "metrics.jsonl"
    deadline = time.time() + 240
    while time.time() < deadline:
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        workers = _children(proc.pid)
        if metrics.exists() and len(workers) >= 2:
            return proc, workers
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    raise AssertionError("the run never had a finished epoch and its workers running")


@pytest.mark.parametrize("loader", ["slots", "torch"])
def test_data_workers_exit_when_the_trainer_is_killed(cocon_store, tmp_path, loader):
    """kill -9 of the main process only (not its group): the workers used to live on as orphans forever."""
    proc, workers = _start_with_workers(cocon_store, tmp_path, loader)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    deadline = time.time() + 10
    while time.time() < deadline and any(_alive(w) for w in workers):
        time.sleep(0.05)
    left = [w for w in workers if _alive(w)]
    for w in left:
        os.kill(w, signal.SIGKILL)
    assert not left, f"workers {left} outlived the killed trainer"


@pytest.mark.parametrize("sig,rc,line", [
    (signal.SIGINT, 130, "interrupted (Ctrl-C): every finished epoch's checkpoint is kept; run the same command "
                         "with --resume to continue"),
    (signal.SIGTERM, 143, "terminated (SIGTERM): every finished epoch's checkpoint is kept; run the same command "
                          "with --resume to continue"),
])
@pytest.mark.parametrize("loader", ["slots", "torch"])
def test_ctrl_c_and_sigterm_end_with_one_line_and_keep_the_checkpoint(cocon_store, tmp_path, sig, rc, line, loader):
    """Ctrl-C reaches the whole process group (main and workers), as a terminal sends it; Slurm's SIGTERM too."""
    proc, workers = _start_with_workers(cocon_store, tmp_path, loader)
    os.killpg(proc.pid, sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == rc, err[-3000:]
    assert "Traceback" not in err and err.strip().splitlines()[-1] == line, err[-3000:]
    assert not any(_alive(w) for w in workers)
    ckpt = torch.load(tmp_path / "sample" / "cpc-rgb" / "checkpoint.pth", weights_only=False)
    assert ckpt["epoch"] >= 1


SHM_FULL = "unable to allocate shared memory(shm) for file </torch_1_2_3>: No space left on device (28)"


def test_slot_loader_out_of_shared_memory_is_one_line_with_the_numbers(cocon_store, tmp_path, capsys, monkeypatch):
    """What Docker's 64 MB /dev/shm gives (8 workers, batch 6, 128 px); here the allocation is made to fail as
    torch fails it. 2 workers -> 5 slots of 2 clips of 40 x 112 x 112 x 3 bytes (crop 0.875 of the stored
    128) + 2 int64 labels (index, label)."""
    def full(self):
        raise RuntimeError(SHM_FULL)

    monkeypatch.setattr(torch.Tensor, "share_memory_", full)
    rc = train_main(cocon_args(cocon_store, tmp_path, "schedule.stage=cpc", "data.views=[rgb]", "schedule.cpc_epochs=1",
                          "data.workers=2"))
    line = _one_line(capsys, rc)
    item = 40 * 112 * 112 * 3 + 2 * 8
    assert f"data.workers=2 needs about {5 * 2 * item / 2**20:.0f} MB (5 batches of 2 clips, " \
           f"{2 * item / 2**20:.1f} MB each) in /dev/shm" in line, line
    assert "docker run --shm-size=1g, or --ipc=host" in line and "lower data.workers or data.batch_size" in line


# `python -m train.cocon` with the call that gives a DataLoader worker's collate a new /dev/shm segment for each
# batch failing as it fails when /dev/shm is full (inherited by the forked workers).
_SHM_FULL_IN_WORKERS = f"""
import sys, torch
def full(cls, size):
    raise RuntimeError({SHM_FULL!r})
torch.UntypedStorage._new_using_fd_cpu = classmethod(full)
torch.UntypedStorage._new_using_filename_cpu = classmethod(full)
from train.cocon import main
from train.engine.distributed import exit_process
exit_process(main(sys.argv[1:]))
"""


def test_dataloader_out_of_shared_memory_is_one_line_and_the_process_ends(cocon_store, tmp_path):
    """data.loader=torch: the worker's error reaches the main process, which says it in one line and exits 2.
    A subprocess with a hard timeout: the run used to print the line and then hang at exit, multiprocessing
    waiting for workers that ignore SIGTERM. 2 workers x 2 prefetched batches of 2 clips of 40 x 112 x 112 x 3
    bytes + 2 int64 labels."""
    cmd = [sys.executable, "-c", _SHM_FULL_IN_WORKERS,
           *cocon_args(cocon_store, tmp_path, "schedule.stage=cpc", "data.views=[rgb]", "schedule.cpc_epochs=1",
                  "data.workers=2", "data.loader=torch")]
    proc = subprocess.run(cmd, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True,
                          text=True, timeout=120)
    err = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    item = 40 * 112 * 112 * 3 + 2 * 8
    assert err[-1].startswith("error: out of shared memory: the data loader with data.workers=2 needs about "
                              f"{4 * 2 * item / 2**20:.0f} MB (4 batches of 2 clips, {2 * item / 2**20:.1f} MB "
                              "each) in /dev/shm"), err[-1]
    assert "docker run --shm-size=1g, or --ipc=host" in err[-1] and "lower data.workers or data.batch_size" in err[-1]


def test_skip_failed_trains_without_the_videos_the_store_records_as_failed(sample_videos, tmp_path, capsys, caplog):
    """A store with one video that failed (not a video at all): refused by default, naming the failure;
    data.skip_failed=true trains on the other 6 and says it left 1 out."""
    videos = tmp_path / "videos"
    shutil.copytree(sample_videos, videos)
    first_class = sorted(p for p in videos.iterdir() if p.is_dir())[0]
    (first_class / "broken.mp4").write_bytes(bytes(range(256)) * 40)
    root = tmp_path / "store"
    run_cli("run", "--videos", videos, "--out", root, "--views", "rgb,flow_dis", "--no-progress")
    capsys.readouterr()
    args = cocon_args(root, tmp_path / "runs", "schedule.stage=cpc", "data.views=[rgb]", "schedule.cpc_epochs=1")
    line = _one_line(capsys, train_main(args))
    assert "view rgb lacks 1 of the 7 videos" in line and "broken" in line, line
    assert train_main(args + ["data.skip_failed=true"]) == 0
    assert "data.skip_failed: left out 1 of the 7 videos of the store recorded as failed (first: " in caplog.text


def test_a_data_workers_dropped_connection_prints_nothing_and_other_thread_errors_still_do(capsys):
    """With data.loader=torch, Ctrl-C to the process group can kill a worker while multiprocessing's resource
    sharer thread hands it a tensor: its ConnectionResetError traceback used to follow the one-line message."""
    sharer = {}
    exec(compile("def serve():\n    raise ConnectionResetError(104, 'Connection reset by peer')\n",
                 os.path.join("lib", "multiprocessing", "resource_sharer.py"), "exec"), sharer)

    def elsewhere() -> None:
        raise ConnectionResetError(104, "a connection of the user's own code")

    previous = threading.excepthook
    threading.excepthook = threading.__excepthook__   # Python's own (pytest's would turn errors into warnings)
    try:
        quiet_peer_errors()
        quiet_peer_errors()   # installed once: still one wrapper
        for target in (sharer["serve"], elsewhere):
            t = threading.Thread(target=target)
            t.start()
            t.join()
    finally:
        threading.excepthook = previous
    err = capsys.readouterr().err
    assert err.count("Traceback") == 1 and "the user's own code" in err and "resource_sharer" not in err
