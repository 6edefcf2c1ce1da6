"""Batches from worker processes through a ring of shared-memory slots.

PyTorch's DataLoader makes every batch in a fresh shared-memory segment inside the worker (allocate, fault
in, copy, hand over a file descriptor, unmap): about 2.5 ms per 2.5 MB clip here, as much as reading the
clip. Our items have fixed shapes (a clip of N·K frames at the view's crop side), so the workers instead copy
each item once into one of a few batch slots allocated when the loader starts, and tell the main process
which slot is full. Same batches as a DataLoader over the same index order (items depend only on the dataset's
seed, epoch and index), in order, whatever the worker scheduling.

A yielded batch's tensors are views of a slot: valid until the next batch is requested. The training loops
here move or convert them before asking for the next one; copy (`.clone()`) anything kept longer.
"""

from __future__ import annotations

import os
import queue
import traceback
from collections.abc import Iterator, Sequence
from typing import Any

import torch
import torch.multiprocessing as mp

from preprocess.errors import UserError

from .dataset import DataError
from .shm import batch_bytes, is_shm_exhausted, shm_error
from .worker_life import die_with_parent, parent_alive, signals_held

POLL_SECONDS = 5.0
TERMINATE_SECONDS = 5.0   # how long a stopped worker gets to die of SIGTERM before SIGKILL


def _fill(dataset: Any, slot: dict[str, torch.Tensor], indices: Sequence[int]) -> None:
    """Put items `indices` of `dataset` into the first rows of a slot: written there by the dataset when it
    can (`fill_rows`), else copied there (each item copied exactly once)."""
    for i, index in enumerate(indices):
        rows = {key: target[i] for key, target in slot.items()}
        item = dataset.fill_rows(index, rows) if hasattr(dataset, "fill_rows") else dataset[index]
        for key, row in rows.items():
            value = item[key]
            if value is row:
                continue
            if torch.is_tensor(value):
                row.copy_(value)
            else:
                slot[key][i] = value


def _worker(dataset: Any, slots: list[dict[str, torch.Tensor]], tasks: Any, done: Any, parent_pid: int) -> None:
    """Fill slots with items until told to stop (None); report an error as (batch, None, message, is_user).
    Ends with its parent: killed by the kernel (Linux), or on its own when it sees itself orphaned."""
    die_with_parent(parent_pid)
    torch.set_num_threads(1)
    while True:
        try:
            task = tasks.get(timeout=POLL_SECONDS)
        except queue.Empty:
            if not parent_alive(parent_pid):
                os._exit(1)
            continue
        if task is None:
            return
        number, slot, indices = task
        try:
            _fill(dataset, slots[slot], indices)
        except Exception as exc:  # noqa: BLE001 - every failure goes back to the main process
            user = isinstance(exc, UserError)
            message = str(exc) if user else "".join(traceback.format_exception(exc)).rstrip()
            done.put((number, None, message, user))
            continue
        done.put((number, slot, None, False))


class SlotLoader:
    """Iterate batches of `dataset[i]` for a given index order with `workers` processes, or in this process
    with workers=0 (one slot, no process, no draw from any global random generator either way).

    `dataset.item_spec()` gives every key's shape and dtype (all items alike). Workers are started per
    iteration (like a DataLoader without persistent workers), after the dataset's epoch is set, and always
    stopped when the iteration ends, breaks or fails.
    """

    def __init__(self, dataset: Any, indices: Sequence[int], batch_size: int, workers: int,
                 drop_last: bool = False, slots_per_worker: int = 2) -> None:
        if workers < 0 or batch_size < 1:
            raise ValueError(f"SlotLoader needs workers >= 0 and batch_size >= 1, got {workers} and {batch_size}")
        self.dataset, self.batch_size, self.workers = dataset, int(batch_size), int(workers)
        indices = [int(i) for i in indices]
        stop = len(indices) - len(indices) % batch_size if drop_last else len(indices)
        self.batches = [indices[s:s + batch_size] for s in range(0, stop, batch_size)]
        self.num_slots = slots_per_worker * self.workers + 1

    def __len__(self) -> int:
        return len(self.batches)

    def _slots(self, count: int, shared: bool) -> list[dict[str, torch.Tensor]]:
        spec = self.dataset.item_spec()
        slots = [{key: torch.empty((self.batch_size, *shape), dtype=dtype) for key, (shape, dtype) in spec.items()}
                 for _ in range(count)]
        if shared:
            for slot in slots:
                for t in slot.values():
                    t.share_memory_()
        return slots

    @staticmethod
    def _view(slot: dict[str, torch.Tensor], n: int) -> dict[str, torch.Tensor]:
        return {key: t[:n] for key, t in slot.items()}

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        if not self.batches:
            return
        if self.workers == 0:
            slot = self._slots(1, shared=False)[0]
            for indices in self.batches:
                try:
                    _fill(self.dataset, slot, indices)
                except UserError as exc:
                    raise DataError(str(exc)) from None
                yield self._view(slot, len(indices))
            return
        try:
            slots = self._slots(self.num_slots, shared=True)
        except RuntimeError as exc:
            if not is_shm_exhausted(exc):
                raise
            raise shm_error(self.num_slots, batch_bytes(self.dataset, self.batch_size), self.workers,
                            self.batch_size) from None
        ctx = mp.get_context("fork")
        tasks, done = ctx.Queue(), ctx.Queue()
        procs = [ctx.Process(target=_worker, args=(self.dataset, slots, tasks, done, os.getpid()), daemon=True,
                             name=f"slot-loader-{k}") for k in range(self.workers)]
        with signals_held():
            for p in procs:
                p.start()
        free = list(range(self.num_slots))
        sent = 0
        ready: dict[int, int] = {}
        held: int | None = None
        finished = False
        try:
            for number in range(len(self.batches)):
                if held is not None:        # the previous batch has been used: its slot is free again
                    free.append(held)
                    held = None
                while sent < len(self.batches) and free and sent - number < self.num_slots - 1:
                    tasks.put((sent, free.pop(), self.batches[sent]))
                    sent += 1
                while number not in ready:
                    got, slot, error, user = self._next_result(done, procs)
                    if error is not None:
                        raise (DataError(error) if user else RuntimeError(f"data worker failed:\n{error}"))
                    ready[got] = slot
                held = ready.pop(number)
                yield self._view(slots[held], len(self.batches[number]))
            finished = True
        finally:
            self._stop(procs, tasks, done, graceful=finished)

    @staticmethod
    def _stop(procs: list[Any], tasks: Any, done: Any, graceful: bool) -> None:
        """Stop the workers: let them finish (all tasks done) or, after an error or a break, end them now."""
        if graceful:
            for _ in procs:
                tasks.put(None)
        for p in procs:
            if graceful:
                p.join(timeout=10)
            if p.is_alive():
                p.terminate()
                p.join(timeout=TERMINATE_SECONDS)
            if p.is_alive():   # SIGTERM still held (a worker not yet through `die_with_parent`): SIGKILL is not
                p.kill()
                p.join()
        for q in (tasks, done):
            q.cancel_join_thread()
            q.close()

    @staticmethod
    def _next_result(done: Any, procs: list[Any]) -> tuple[int, int | None, str | None, bool]:
        """The next worker report; a worker that died (killed, segfault) raises instead of hanging."""
        while True:
            try:
                return done.get(timeout=POLL_SECONDS)
            except queue.Empty:
                dead = [p for p in procs if not p.is_alive()]
                if dead:
                    raise RuntimeError(f"data worker {dead[0].name} (pid {dead[0].pid}) died with exit code "
                                       f"{dead[0].exitcode}; main process pid {os.getpid()}") from None
