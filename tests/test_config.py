"""Config files: defaults, strict keys, types, overrides."""

import pytest

from hqflow.config import Config, config_from_dict, load_config
from hqflow.errors import UserError


def test_shipped_configs_load():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "configs"
    tiny, paper = load_config(root / "tiny.yaml"), load_config(root / "paper.yaml")
    assert tiny.model.img_size == 24 and tiny.data.time_steps == 4
    assert (paper.model.img_size, paper.model.embed_dim, paper.model.num_heads) == (128, 256, 16)
    assert (paper.model.depth, paper.model.mlp_ratio, paper.data.time_steps) == (2, 4, 16)


def test_unknown_key_names_it_and_suggests(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("model:\n  embed_dims: 64\n")
    with pytest.raises(UserError, match=r"c\.yaml.*'model\.embed_dims'.*did you mean 'embed_dim'"):
        load_config(p)


def test_unknown_section_and_bad_type(tmp_path):
    with pytest.raises(UserError, match="unknown section 'trian'.*did you mean 'train'"):
        config_from_dict({"trian": {}})
    with pytest.raises(UserError, match="epochs: expected int, got 'ten'"):
        config_from_dict({"train": {"epochs": "ten"}})
    with pytest.raises(UserError, match="pools"):
        config_from_dict({"model": {"pools": [True, True]}})
    p = tmp_path / "bad.yaml"
    p.write_text("model: [1, 2\n")
    with pytest.raises(UserError, match="not valid YAML"):
        load_config(p)
    with pytest.raises(UserError, match="missing.yaml: not found; expected a config"):
        load_config(tmp_path / "missing.yaml")


def test_int_accepted_as_float_and_replace():
    cfg = config_from_dict({"train": {"lr": 1}})
    assert cfg.train.lr == 1.0 and isinstance(cfg.train.lr, float)
    cfg2 = cfg.replace("train", epochs=3, seed=None)
    assert cfg2.train.epochs == 3 and cfg2.train.seed == cfg.train.seed
    assert config_from_dict(cfg2.to_dict()) == cfg2
    assert Config().model.num_tokens == 64
