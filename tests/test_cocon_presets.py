"""The `preset: authors-code` config of `train.cocon`: the keys it sets, and the loss terms of CoCon's own loss step
(`train.methods.cocon.step.cocon_losses`, the code path a training step takes) under it, against the reference
values measured by running the authors' code (research/cocon_parity.md, "Reproducible reference values")."""

from __future__ import annotations

import pytest
import torch
from train.config import load_config
from train.engine.errors import ConfigError
from train.methods.cocon.config import CoconConfig
from train.methods.cocon.presets import AUTHORS_CODE
from train.methods.cocon.step import cocon_losses
from train.models import CPCModel, l2_normalise
from train.models.cpc import CPCOutput


def _features(seed: int, shape: tuple[int, int, int, int]) -> torch.Tensor:
    """randn(B, N, D, s, s) from its own generator, L2-normalised per cell over D (eps 1e-5), as the doc."""
    b, n, d, s = shape
    x = torch.randn(b, n, d, s, s, generator=torch.Generator().manual_seed(seed))
    return x / (x.norm(dim=2, keepdim=True) + 1e-5)


def _cpc_inputs(seed: int, b: int, p: int, d: int, s: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The doc's L_cpc inputs: pred then gt from one generator, each L2-normalised per cell."""
    g = torch.Generator().manual_seed(seed)
    pred = torch.randn(b, p, d, s, s, generator=g)
    gt = torch.randn(b, p, d, s, s, generator=g)
    return l2_normalise(pred, dim=2), l2_normalise(gt, dim=2)


def _output(pred: torch.Tensor, target: torch.Tensor, features: torch.Tensor) -> CPCOutput:
    return CPCOutput(pred=pred, target=target, features=features, context=features[:, 0])


def _close(value: float, expected: float) -> None:
    # Relative 1e-6 or 3e-8 absolute: the doc prints 8 decimals of float32 values.
    assert value == pytest.approx(expected, rel=1e-6, abs=3e-8)


def _preset() -> CoconConfig:
    return load_config(None, ["preset=authors-code"], CoconConfig)


def test_the_preset_sets_every_authors_code_setting_and_nothing_else() -> None:
    cfg, default = _preset(), CoconConfig()
    assert (cfg.loss.temperature_twice, cfg.loss.sim_scale, cfg.loss.sync_penalty) == (True, "authors", "l1")
    assert (cfg.loss.lambda_sim, cfg.loss.lambda_sync, cfg.loss.pool_pad_odd) == (10.0, 10.0, True)
    assert (cfg.model.context_norm, cfg.model.predictor_init, cfg.model.bn_running_stats) == ("once", "orthogonal",
                                                                                             True)
    cfg.preset, default.preset = "", ""
    changed = {f"{section}.{key}" for section in ("data", "model", "loss", "optim", "augment", "schedule")
               for key, value in vars(getattr(cfg, section)).items()
               if value != getattr(getattr(default, section), key)}
    # The preset's other keys (temperature 0.07, mu 1, block granularity, tracked BatchNorm) are already ours.
    assert changed == {"loss.temperature_twice", "loss.lambda_sim", "loss.sim_scale", "loss.lambda_sync",
                       "loss.sync_penalty", "loss.pool_pad_odd", "model.context_norm", "model.predictor_init"}
    assert changed < set(AUTHORS_CODE)


def test_a_key_set_against_the_preset_is_a_one_line_error_and_an_equal_one_is_not() -> None:
    with pytest.raises(ConfigError, match="preset authors-code sets loss.lambda_sync=10.0, but the config sets "
                                          "loss.lambda_sync=2.0"):
        load_config(None, ["preset=authors-code", "loss.lambda_sync=2"], CoconConfig)
    assert load_config(None, ["preset=authors-code", "loss.sync_penalty=l1"], CoconConfig).loss.lambda_sync == 10.0
    with pytest.raises(ConfigError, match="preset must be one of"):
        load_config(None, ["preset=authors"], CoconConfig)


def test_the_default_config_is_unchanged_by_the_new_keys() -> None:
    cfg = load_config(None, [], CoconConfig)
    assert (cfg.preset, cfg.loss.temperature_twice, cfg.loss.sim_scale, cfg.loss.pool_pad_odd) == ("", False, "paper",
                                                                                                   False)
    assert (cfg.model.context_norm, cfg.model.predictor_init, cfg.model.bn_running_stats) == ("every_step", "default",
                                                                                             True)


# (view a shape, seed, view b shape, seed, CoCon coop/10, CoCon sim/10) of cocon_parity.md; the 7x7 row is
# CoCon's padded pooling, which the preset's loss.pool_pad_odd selects.
A4, A2, A7 = (4, 8, 256, 4), (4, 8, 256, 2), (4, 8, 256, 7)
ROWS = [(A4, 10, A4, 20, 0.00916066, 0.50060463), (A2, 11, A2, 21, 0.06843991, 0.51048851),
        (A7, 12, A7, 22, 0.00277543, 0.50009336), (A4, 13, A2, 23, 0.87177477, 0.51361947),
        ((2, 8, 256, 4), 14, (2, 8, 256, 4), 24, 0.01165891, 0.50097866)]
COCON_CPC = 35.1696358    # CoCon's L_cpc (tau 0.07 on both sides) of the doc's (4, 3, 16 cells, 256) row, seed 1


@pytest.mark.parametrize("shape_a, seed_a, shape_b, seed_b, coop, sim", ROWS)
def test_the_cocon_step_under_the_preset_gives_the_authors_code_terms(shape_a, seed_a, shape_b, seed_b, coop,
                                                                      sim) -> None:
    pred, target = _cpc_inputs(1, 4, 3, 256, 4)
    b = shape_a[0]
    outs = {"flow": _output(pred[:b], target[:b], _features(seed_b, shape_b)),
            "rgb": _output(pred[:b], target[:b], _features(seed_a, shape_a))}
    result = cocon_losses(_preset().loss, outs, cooperative=True, offset=0)
    # Views pair in sorted order ("flow-rgb"); L_sim and L_sync are symmetric in the two views.
    _close(result.terms["sync/flow-rgb"], coop)
    _close(result.terms["sim/flow-rgb"], sim)
    if b == 4:
        _close(result.terms["cpc/rgb"], COCON_CPC)
        # CoCon's trainer sums L_cpc of each view + 10 coop + 10 sim (its weights included in coop and sim).
        assert result.total.item() == pytest.approx(2 * COCON_CPC + 10 * coop + 10 * sim, rel=1e-6)


@pytest.mark.parametrize("shape, seed, cocon", [((4, 3, 4, 32), 0, 95.0164261), ((2, 3, 7, 64), 2, 73.5775375)])
def test_the_cpc_stage_step_under_the_preset_gives_the_authors_code_loss(shape, seed, cocon) -> None:
    b, p, s, d = shape
    pred, target = _cpc_inputs(seed, b, p, d, s)
    result = cocon_losses(_preset().loss, {"rgb": _output(pred, target, target)}, cooperative=False, offset=0)
    _close(result.terms["cpc/rgb"], cocon)
    default = cocon_losses(CoconConfig().loss, {"rgb": _output(pred, target, target)}, cooperative=False, offset=0)
    assert default.terms["cpc/rgb"] != pytest.approx(cocon, rel=1e-3)   # the preset, not the default, matches


def test_the_preset_builds_the_model_the_authors_code_builds() -> None:
    from train.methods.cocon.model import build_view_model
    torch.manual_seed(0)
    model = build_view_model(_preset().model, num_blocks=4, channels=3)
    assert isinstance(model, CPCModel) and model.context_norm == "once"
    w = model.predictor[0].weight.flatten(1)
    torch.testing.assert_close(w @ w.T, torch.eye(w.shape[0]), atol=1e-5, rtol=0)   # orthogonal init
