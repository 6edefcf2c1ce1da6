"""The shared-memory slot loader: the DataLoader's batches, in order; worker errors and deaths surface as
one clear error instead of a hang; workers never outlive an iteration."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from torch.utils.data import DataLoader

from train.data import DataError, DenseClips, MultiViewClips
from train.data.loader import SlotLoader


def _ours() -> list:
    """Live slot-loader workers (joblib's reusable preprocess workers may be alive too; they are not ours)."""
    return [p for p in mp.active_children() if p.name.startswith("slot-loader")]


def _equal_batches(a, b) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.keys() == y.keys()
        for k in x:
            torch.testing.assert_close(x[k], y[k], rtol=0, atol=0)


@pytest.mark.parametrize("workers", [0, 1, 3])
def test_same_batches_as_a_dataloader(motion_store: Path, workers: int) -> None:
    ds = MultiViewClips(motion_store, ["rgb", "flow_farneback"], num_blocks=2, block_frames=3, train=True, seed=4)
    ds.set_epoch(2)
    order = [5, 0, 11, 3, 7, 2, 9, 1, 4, 10, 6]             # 11 items: a partial last batch of 3
    ours = [{k: v.clone() for k, v in b.items()} for b in SlotLoader(ds, order, 4, workers)]
    ref = list(DataLoader(torch.utils.data.Subset(ds, order), batch_size=4, num_workers=0))
    _equal_batches(ours, ref)
    assert [len(b["index"]) for b in ours] == [4, 4, 3] and ours[0]["index"].tolist() == [5, 0, 11, 3]
    dropped = list(SlotLoader(ds, order, 4, workers, drop_last=True))
    assert len(dropped) == 2
    dense = DenseClips(motion_store, ["rgb"], num_blocks=2, block_frames=3)
    got = [{k: v.clone() for k, v in b.items()} for b in SlotLoader(dense, range(len(dense)), 5, 2)]
    _equal_batches(got, list(DataLoader(dense, batch_size=5, num_workers=0)))
    assert not _ours()


class _Failing(MultiViewClips):
    def __getitem__(self, index: int):
        if index == 3:
            raise DataError("video x: broken on purpose")
        if index == 5:
            raise ZeroDivisionError("a bug")
        if index == 7:
            os.kill(os.getpid(), signal.SIGKILL)
        return super().__getitem__(index)


def test_worker_errors_and_deaths_are_reported_not_hung(motion_store: Path) -> None:
    ds = _Failing(motion_store, ["rgb"], num_blocks=2, block_frames=3)
    with pytest.raises(DataError, match="^video x: broken on purpose$"):
        list(SlotLoader(ds, [0, 1, 2, 3], 2, 2))
    with pytest.raises(RuntimeError, match="ZeroDivisionError: a bug"):
        list(SlotLoader(ds, [4, 5], 2, 1))
    with pytest.raises(RuntimeError, match="died with exit code -9"):
        list(SlotLoader(ds, [6, 7, 8, 9], 2, 1))
    assert not _ours()


def test_breaking_out_stops_the_workers(motion_store: Path) -> None:
    ds = MultiViewClips(motion_store, ["rgb"], num_blocks=2, block_frames=3)
    it = iter(SlotLoader(ds, range(12), 2, 2))
    next(it)
    it.close()
    assert not _ours()


def _hold_sigterm_then_sleep(held) -> None:
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})   # as a worker forked under `signals_held`
    held.set()
    signal.pause()


def test_stopping_kills_a_worker_that_holds_sigterm() -> None:
    """A worker stopped before it unblocks SIGTERM must not make the stop (and so Ctrl-C or Slurm's SIGTERM of the
    trainer) wait for ever: after TERMINATE_SECONDS it gets SIGKILL."""
    ctx = mp.get_context("fork")
    held = ctx.Event()
    worker = ctx.Process(target=_hold_sigterm_then_sleep, args=(held,), daemon=True)
    worker.start()
    assert held.wait(timeout=30)
    stopper = threading.Thread(target=SlotLoader._stop, args=([worker], ctx.Queue(), ctx.Queue(), False), daemon=True)
    stopper.start()
    stopper.join(timeout=30)
    alive = worker.is_alive()
    if alive:
        worker.kill()
    assert not stopper.is_alive() and not alive
    assert worker.exitcode == -signal.SIGKILL
