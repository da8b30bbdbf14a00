"""Every ScDealConfig field is validated, with one line naming the field, the value and what is
allowed."""

from __future__ import annotations

import dataclasses

import pytest

from scdeal.errors import ScdealError
from scdeal.model import PRESETS, ScDealConfig, preset
from scdeal.model.config import _RULES, _literal_fields


def test_every_field_has_a_rule():
    fields = {f.name for f in dataclasses.fields(ScDealConfig)}
    checked = set(_RULES) | set(_literal_fields()) | {"hidden_dims", "predictor_dims", "split",
                                                      "joint_head_dims",
                                                      "preprocess"}
    assert fields == checked


@pytest.mark.parametrize(("field", "value", "allowed"), [
    ("device", "gpu", "one of cpu, cuda"),
    ("activation", "tanh", "one of relu, leaky_relu, elu, gelu"),
    ("noise", "salt", "one of mask, gaussian"),
    ("release", "GDSC3", "one of auto, GDSC1, GDSC2"),
    ("metric", "ic50", "one of auc, ln_ic50"),
    ("extractor", "gan", "one of ae, dae, vae"),
    ("pretrain_epochs", 0, "a whole number >= 1"),
    ("transfer_epochs", 2.5, "a whole number >= 1"),
    ("lr", 0.0, "a number > 0"),
    ("lr", float("nan"), "a number > 0"),
    ("dropout", 1.0, r"a number in \[0, 1\)"),
    ("target_val_fraction", 0, r"a number in \(0, 1\)"),
    ("batch_norm", "yes", "True or False"),
    ("n_models", True, "a whole number >= 1"),
    ("seed", -1, "a whole number >= 0"),
    ("mmd_bandwidth", -2.0, "None or a number > 0"),
    ("hidden_dims", (256, 0), "list of whole numbers >= 1"),
    ("predictor_dims", ("a",), "list of whole numbers >= 1"),
])
def test_bad_values_give_one_line_naming_field_value_and_allowed(field, value, allowed):
    with pytest.raises(ScdealError, match=f"^{field} must be .*{allowed}.*got ") as info:
        ScDealConfig(**{field: value})
    assert "\n" not in str(info.value) and repr(value)[:3] in str(info.value)


def test_defaults_presets_and_json_round_trip_are_valid():
    for name in PRESETS:
        config = preset(name)
        assert ScDealConfig.from_dict(config.to_dict()) == config
    assert ScDealConfig(predictor_dims=(), mmd_bandwidth=None).predictor_dims == ()


def test_joint_head_dims_are_widths_or_none():
    assert ScDealConfig(joint_head_dims=[16]).joint_head_dims == (16,)
    assert ScDealConfig(joint_head_dims=[]).joint_head_dims == ()
    with pytest.raises(ScdealError, match="joint_head_dims must be a list of whole numbers"):
        ScDealConfig(joint_head_dims=[0])
