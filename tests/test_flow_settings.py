"""Invalid flow settings are refused before any work: one line on stderr, exit 2, no store or view created.

Each case here was accepted before and then stored all-zero flow, failed every video, or killed every
worker (SIGFPE, SIGSEGV), leaving a store that a re-run without the option refused."""

from __future__ import annotations

import pytest

from tests.conftest import run_cli

CASES = [
    ("--farneback", "winsize=0", "flow_farneback"),
    ("--tvl1", "tau=nan", "flow_tvl1"),
    ("--tvl1", "theta=0", "flow_tvl1"),
    ("--flow-bound", "inf", "flow_tvl1"),
    ("--tvl1", "nscales=0", "flow_tvl1"),
    ("--tvl1", "scale_step=1.5", "flow_tvl1"),
    ("--tvl1", "median_filtering=4", "flow_tvl1"),
    ("--farneback", "pyr_scale=1.5", "flow_farneback"),
    ("--dis", "patch_size=0", "flow_dis"),
    ("--dis", "patch_stride=0", "flow_dis"),
    ("--dis", "finest_scale=-5", "flow_dis"),
    ("--flow-device", "tpu", "flow_tvl1"),
    ("--flow-device", "cuda:99", "flow_tvl1"),       # a GPU this machine does not have
]


@pytest.mark.parametrize("flag,value,view", CASES, ids=[f"{f}={v}" for f, v, _ in CASES])
def test_invalid_setting_is_one_line_exit_2_and_nothing_written(tmp_path, capsys, sample_videos, flag, value, view):
    out = tmp_path / "store"
    extra = ["--flow-impl", "torch"] if flag == "--flow-device" else []
    rc = run_cli("run", "--videos", sample_videos, "--out", out, "--views", f"rgb,{view}", "--no-progress",
                 flag, value, *extra)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 1 and err[0].startswith("error: "), err
    assert not out.exists()


def test_the_message_names_the_parameter_and_its_range(capsys, tmp_path, sample_videos):
    run_cli("run", "--videos", sample_videos, "--out", tmp_path / "s", "--views", "flow_tvl1", "--tvl1", "theta=0")
    assert capsys.readouterr().err.strip() == ("error: tvl1 parameter theta=0 is out of range: "
                                               "a finite number > 0 (coupling)")


def test_settings_in_range_at_their_limits_are_accepted():
    from preprocess.flow import make_flow
    for family, params in [("tvl1", {"median_filtering": "1", "scale_step": "1", "epsilon": "0", "gamma": "0"}),
                           ("farneback", {"levels": "0", "winsize": "1", "flags": "256"}),
                           ("dis", {"finest_scale": "0", "patch_size": "2", "patch_stride": "1"})]:
        backend = make_flow(family, params)
        assert all(backend.resolved[k] is not None for k in params)
