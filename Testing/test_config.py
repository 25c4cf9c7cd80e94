"""Configuration dataclasses: strict (de)serialisation, validation, recipes in configs/."""

from __future__ import annotations

import dataclasses
import json

import pytest
from conftest import REPO_ROOT

from TLTTrackerLib.config import (
    ModelConfig,
    PreprocessConfig,
    TrainConfig,
    check_compatible,
    load_run_config,
    run_config_from_dict,
)
from TLTTrackerLib.errors import InputError

TRAIN = TrainConfig(synthetic_volumes=("ct",))


@pytest.mark.parametrize(
    "cfg", [ModelConfig(), PreprocessConfig(), TRAIN, ModelConfig(norm="none", raam_mode="off")]
)
def test_round_trip_through_json(cfg):
    text = json.dumps(cfg.to_dict())
    assert type(cfg).from_dict(json.loads(text)) == cfg


def test_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        ModelConfig().d_model = 96  # type: ignore[misc]


def test_unknown_keys_and_wrong_types_are_errors():
    with pytest.raises(InputError, match="unknown model config keys \\['d_modle'\\]"):
        ModelConfig.from_dict({"d_modle": 192})
    with pytest.raises(InputError, match="model.fusion_layers must be an integer"):
        ModelConfig.from_dict({"fusion_layers": "3"})
    with pytest.raises(InputError, match="must have 3 entries"):
        PreprocessConfig.from_dict({"search_size_mm": [96, 80]})
    with pytest.raises(InputError, match="true or false"):
        TrainConfig.from_dict({"synthetic_volumes": ["x"], "augment": 1})
    assert PreprocessConfig.from_dict({"spacing_mm": 1}).spacing_mm == 1.0  # ints are fine for floats


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"norm": "batch"}, "model.norm"),
        ({"raam_mode": "softmax"}, "raam_mode"),
        ({"d_model": 100}, "divisible by 6"),
        ({"n_heads": 5}, "n_heads"),
        ({"sss_min_tokens": 0}, "sss_min_tokens"),
    ],
)
def test_model_validation(kwargs, message):
    with pytest.raises(InputError, match=message):
        ModelConfig(**kwargs)


def test_preprocess_and_train_validation():
    with pytest.raises(InputError, match="multiple of token_stride"):
        PreprocessConfig(search_size_mm=(90.0, 80.0, 80.0))
    assert PreprocessConfig(spacing_mm=2.0, search_size_mm=(96, 80, 80)).search_shape == (48, 40, 40)
    with pytest.raises(InputError, match="training data"):
        TrainConfig()
    with pytest.raises(InputError, match="dls_volume_dir"):
        TrainConfig(dls_train_json="train.json")
    with pytest.raises(InputError, match="l1_space"):
        TrainConfig(synthetic_volumes=("x",), l1_space="voxels")
    with pytest.raises(InputError, match="stride"):
        check_compatible(ModelConfig(backbone_channels=(16, 32, 64)), PreprocessConfig())


def test_run_config_with_overrides():
    rc = run_config_from_dict(
        {"train": {"synthetic_volumes": ["a"]}}, {"train.max_steps": 7, "model.dropout": 0.0}
    )
    assert rc.train.max_steps == 7 and rc.model.dropout == 0.0 and rc.preprocess == PreprocessConfig()
    assert run_config_from_dict(rc.to_dict()) == rc
    with pytest.raises(InputError, match="sections"):
        run_config_from_dict({"modle": {}})
    with pytest.raises(InputError, match="override"):
        run_config_from_dict({}, {"max_steps": 3})


def test_shipped_recipes_parse():
    recipes = sorted((REPO_ROOT / "configs").glob("*.json"))
    assert recipes, "configs/ holds no recipes"
    for path in recipes:
        rc = load_run_config(path)
        assert rc.train is not None, path
