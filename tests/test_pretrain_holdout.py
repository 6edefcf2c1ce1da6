"""`data.holdout` of every pre-training method (train.cocon, train.tclr): pre-training on a class-folder store
leaves out exactly the videos that `train.finetune data.splits=[]` and `train.evaluate data.split=null` test on
(same holdout, same seed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from preprocess.store import Store
from tests.conftest import ROOT, TINY_MOTION, TINY_PRETRAIN
from train.config import load_config
from train.engine.errors import ConfigError
from train.evaluate import Evaluation
from train.evaluate_config import EvalConfig
from train.finetune import plan_units
from train.finetune_config import FinetuneConfig
from train.data.splits import store_records
from train.methods.cocon import CoconConfig, build_datasets
from train.methods.tclr import TCLRConfig
from train.methods.tclr.job import build_dataset as build_tclr_dataset

CONFIGS = ROOT / "configs"


def _pretraining(store: Path, method: str, *extra: str) -> tuple[list[str], list[str]]:
    """The videos a tiny pre-training run of `method` trains on and validates on (TCLR has no validation set:
    its training videos twice)."""
    if method == "tclr":
        cfg = load_config(CONFIGS / "tclr_r3d18w0.125-32_1x4_4e_sample-rgb.yaml",
                          [f"data.root={store}", "data.views=[rgb]", "data.workers=0", *extra], TCLRConfig)
        ids = build_tclr_dataset(cfg).video_ids
        return ids, ids
    cfg = load_config(CONFIGS / "cocon_r18w0.125-64_1x3_3+3e_sample-rgb-flow.yaml",
                      [f"data.root={store}", "data.views=[rgb]", *TINY_PRETRAIN, *extra], CoconConfig)
    train, val = build_datasets(cfg, ["rgb"])
    return train.video_ids, val.video_ids


def _finetune_test_ids(store: Path, seed: int) -> list[str]:
    cfg = load_config(CONFIGS / "finetune_r18w0.125-64_sample-rgb-flow.yaml",
                      [f"data.root={store}", "data.views=[rgb]", "data.splits=[]", "data.holdout=0.5",
                       f"seed={seed}", *TINY_MOTION], FinetuneConfig)
    opened = Store(store)
    units = plan_units(cfg, opened)
    opened.close()
    assert len({tuple(u.test_ids) for u in units}) == 1
    return units[0].test_ids


def _evaluate_test_ids(store: Path, seed: int) -> list[str]:
    cfg = load_config(CONFIGS / "evaluate_r18w0.125-64_sample-rgb-flow.yaml",
                      [f"data.root={store}", "checkpoint=", "data.views=[rgb]", "data.split=null", "data.holdout=0.5",
                       f"seed={seed}", *TINY_MOTION], EvalConfig)
    evaluation = Evaluation(cfg)
    evaluation.store.close()
    return list(evaluation.test_ids)


@pytest.mark.parametrize("method, seed", [("cocon", 0), ("cocon", 3), ("tclr", 3)])
def test_pretraining_holdout_excludes_exactly_the_videos_finetuning_and_evaluation_test_on(motion_store, method,
                                                                                           seed):
    everything = sorted(r.id for r in store_records(str(motion_store)))
    assert len(everything) == 12                                   # 3 classes x 4 videos, no split files
    tested = _finetune_test_ids(motion_store, seed)
    assert tested == _evaluate_test_ids(motion_store, seed)
    assert len(tested) == 6                                        # round(0.5 * 4) = 2 of each class
    train, val = _pretraining(motion_store, method, "data.holdout=0.5", f"seed={seed}")
    assert sorted(train) == sorted(set(everything) - set(tested))  # exactly the others, each once
    assert sorted(val) == sorted(train)                            # validation never sees a test video


@pytest.mark.parametrize("method", ["cocon", "tclr"])
def test_without_holdout_pretraining_takes_every_video_as_before(motion_store, method):
    train, val = _pretraining(motion_store, method)
    assert sorted(train) == sorted(val) == sorted(r.id for r in store_records(str(motion_store)))


@pytest.mark.parametrize("method, keys", [("cocon", "data.train_split or data.val_split"),
                                         ("tclr", "data.train_split")])
def test_holdout_beside_a_split_is_a_one_line_config_error(motion_store, method, keys):
    with pytest.raises(ConfigError, match=f"with {keys} set, the split decides"):
        _pretraining(motion_store, method, "data.holdout=0.3", "data.train_split=1")
    with pytest.raises(ConfigError, match=r"data.holdout must be in \[0, 1\)"):
        _pretraining(motion_store, method, "data.holdout=1")
