"""Two-rank tests: start torchrun with two gloo ranks, what a worker hands back (the loss terms averaged over
ranks and rank 0's gradients), and the comparison with one process on the same global batch."""

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

from train.engine.distributed import DistInfo, mean_over_ranks


def save_rank_result(out: str | Path, dist: DistInfo, model: torch.nn.Module, losses: Any) -> None:
    """Average `losses` (terms and total) over ranks; rank 0 saves them with its parameters' gradients."""
    values = mean_over_ranks({**losses.terms, "total": float(losses.total)}, dist.device)
    if dist.is_main:
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        torch.save({"values": values, "grads": grads}, out)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun_two_ranks(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """Two gloo ranks on this machine; a rank that aborts prints every Python thread's stack (faulthandler)."""
    root = Path(__file__).resolve().parents[2]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), *args]
    env = {**os.environ, "PYTHONFAULTHANDLER": "1"}
    return subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=timeout)


def assert_equals_one_process(saved: str | Path, model: torch.nn.Module, losses: Any, terms: int) -> None:
    """The two-rank result `saved` (save_rank_result) equals one process's `losses` (backward already run on
    `model`): the same `terms` values (terms and total) to 1e-5 relative, every gradient to rtol 1e-4."""
    two = torch.load(saved, weights_only=False)
    values = {**losses.terms, "total": float(losses.total.detach())}
    assert set(values) == set(two["values"]) and len(values) == terms, (sorted(values), sorted(two["values"]))
    for key, value in values.items():
        assert abs(value - two["values"][key]) < 1e-5 * max(1.0, abs(value)), (key, value, two["values"][key])
    grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    assert grads.keys() == two["grads"].keys() and len(grads) > 20
    for name, g in grads.items():
        torch.testing.assert_close(two["grads"][name], g, rtol=1e-4, atol=1e-6, msg=name)
