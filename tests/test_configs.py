"""Every shipped config loads with its command's schema, and names its run after its file."""

from __future__ import annotations

import pytest

from tests.conftest import ROOT
from train.config import load_config
from train.evaluate_config import EvalConfig
from train.finetune_config import FinetuneConfig
from train.methods import METHODS, get_method

# A config file is named for its command: a method's pre-training (its own schema) or a downstream command.
SCHEMAS = {**{name: get_method(name).schema for name in METHODS}, "finetune": FinetuneConfig,
           "linear": FinetuneConfig, "limited": FinetuneConfig, "evaluate": EvalConfig}
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))


def test_every_config_has_a_known_command():
    assert CONFIGS and all(p.name.split("_")[0] in SCHEMAS for p in CONFIGS)


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_config_loads(path):
    cfg = load_config(path, [], schema=SCHEMAS[path.name.split("_")[0]])
    if "sample" not in path.name:
        assert cfg.name == path.stem


def test_linear_probe_config_freezes_and_limited_config_lists_fractions():
    linear = load_config(ROOT / "configs" / "linear_r18-128_4x16_100e_ucf101-rgb-flow-pose-seg.yaml", [], FinetuneConfig)
    assert linear.model.linear_probe and linear.model.init
    limited = load_config(ROOT / "configs" / "limited_r18-128_4x16_100e_ucf101-rgb-flow.yaml", [], FinetuneConfig)
    assert limited.data.label_fractions == [0.01, 0.1, 0.2, 0.5, 1.0]
