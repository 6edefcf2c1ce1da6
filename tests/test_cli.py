"""The command line: every option documented, every user mistake one line and exit status 2."""

from __future__ import annotations

import subprocess

import pytest

from preprocess.cli import build_parser
from tests.conftest import ROOT, python_cmd, run_cli


def test_help_documents_every_option():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, cmd in sub.choices.items():
        for action in cmd._actions:
            if action.dest != "help":
                assert action.help, f"{name} {action.option_strings or action.dest} has no help"
    out = subprocess.run(python_cmd() + ["run", "--help"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    for option in ("--videos", "--dataset", "--annotations", "--out", "--views", "--stride", "--size", "--flow-bound",
                   "--tvl1", "--farneback", "--dis", "--jobs", "--shard", "--num-shards", "--scheduler",
                   "--videos-per-shard", "--block-frames", "--compression"):
        assert option in out
    for key in ("tau", "lambda", "inner_iterations", "median_filtering", "poly_sigma", "preset",
                "variational_refinement_iterations"):
        assert key in out


@pytest.mark.parametrize("args,message", [
    (["--views", "rgb,depth"], "unknown view(s) depth; choose from rgb, flow_tvl1, flow_farneback, flow_dis"),
    (["--views", "flow_tvl1", "--tvl1", "nscale=3"], "unknown tvl1 parameter(s) nscale; known: tau, lambda"),
    (["--views", "flow_tvl1", "--tvl1", "warps=many"], "tvl1 parameter warps='many' is not a valid int"),
    (["--views", "flow_dis", "--dis", "preset=slow"], "dis parameter preset='slow' is not one of ultrafast"),
    (["--views", "flow_dis", "--flow-bound", "0"], "--flow-bound must be positive, got 0.0"),
    (["--compression", "rgb=brotli"], "unknown compression 'brotli'; choose from none, gzip-1"),
    (["--compression", "depth=lzf"], "--compression names unknown view(s) depth"),
    (["--dataset", "ucf101"], "annotations"),
])
def test_user_errors_are_one_line(sample_videos, tmp_path, capsys, args, message):
    rc = run_cli("run", "--videos", sample_videos, "--out", tmp_path / "s", "--no-progress", *args)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("error: ") and message in err[0], err


def test_bad_store_root_is_one_line(tmp_path, capsys):
    for command in ("verify", "info"):
        assert run_cli(command, tmp_path) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err == [f"error: {tmp_path} is not a store (no manifest.json); create it with `python -m preprocess run`"]


def test_bad_option_value_exits_2(tmp_path):
    res = subprocess.run(python_cmd() + ["run", "--videos", str(tmp_path), "--out", str(tmp_path), "--stride", "0"],
                         cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 2 and "expected a positive integer, got 0" in res.stderr and "Traceback" not in res.stderr
