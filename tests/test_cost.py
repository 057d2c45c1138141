"""The 45 nm cost model: hand-computed layers, shapes against the real model, the table file."""

import pytest
import torch

from hqflow.config import ModelConfig
from hqflow.cost import EnergyTable, LayerShape, layer_cost, layer_shapes, load_energy_table, summarize
from hqflow.errors import UserError
from hqflow.numerics import Candidate
from hqflow.search.model import Spikformer

from conftest import counted_macs

TABLE = load_energy_table()
CFG = ModelConfig(img_size=16, embed_dim=16, num_heads=2, depth=1, pools=(True, True, False, False), num_classes=10)


def test_table_values_are_the_cited_ones():
    assert (TABLE.fp32_mult, TABLE.fp32_add, TABLE.int32_mult, TABLE.int8_mult) == (3.7, 0.9, 3.1, 0.2)
    assert (TABLE.int32_add, TABLE.int8_add, TABLE.dram_per_bit) == (0.1, 0.03, 20.3125)
    # the width scaling of the multiplier reproduces the int8 figure within 5 %
    assert TABLE.mult(Candidate("uniform", 8)) == pytest.approx(TABLE.int8_mult, rel=0.05)


def test_hand_computed_conv_layer():
    # Conv3x3 4 -> 8 channels on an 8x8 output, T = 2: 2 * 64 * 4 * 8 * 9 = 36,864 MACs
    shape = LayerShape("sps.conv1", "tokenizer", 4, 8, 9, 64, 2)
    assert shape.params == 288 and shape.macs == 36_864
    fp32 = layer_cost(shape, Candidate("fp32", 32), TABLE)
    assert fp32.compute_pj == pytest.approx(36_864 * (3.7 + 0.9))
    assert fp32.memory_pj == pytest.approx(288 * 32 * 20.3125)
    u4 = layer_cost(shape, Candidate("uniform", 4), TABLE)
    assert u4.compute_pj == pytest.approx(36_864 * (3.1 * (4 / 32) ** 2 + 0.1))
    assert u4.storage_bits == 288 * 4
    p2 = layer_cost(shape, Candidate("po2", 2), TABLE)
    assert p2.compute_pj == pytest.approx(36_864 * (0.1 * 2 / 32 + 0.1))
    half = layer_cost(shape, Candidate("po2", 2), TABLE, input_rate=0.5)
    assert half.compute_pj == pytest.approx(p2.compute_pj / 2) and half.memory_pj == p2.memory_pj


@pytest.mark.parametrize("cfg", [
    CFG,
    ModelConfig(img_size=16, embed_dim=24, num_heads=3, depth=2, pools=(False, True, False, True), num_classes=5),
    ModelConfig(img_size=8, embed_dim=16, num_heads=4, depth=3, mlp_ratio=2, pools=(False,) * 4, num_classes=3),
], ids=["depth1", "depth2-pools-0101", "depth3-no-pools"])
def test_shapes_match_the_model(cfg):
    """MACs from the config equal those counted by hooks on a real forward pass."""
    time_steps = 3
    counted = counted_macs(Spikformer(cfg).eval(), torch.rand(1, time_steps, 2, cfg.img_size, cfg.img_size))
    shapes = {s.name: s for s in layer_shapes(cfg, time_steps)}
    assert list(shapes) == list(counted)
    for name, macs in counted.items():
        assert shapes[name].macs == macs, name
    # control: the shapes of another pool pattern or time_steps disagree with the count
    other = ModelConfig(**{**cfg.__dict__, "pools": (True, False, False, False)})
    assert [s.macs for s in layer_shapes(other, time_steps)] != list(counted.values())
    assert [s.macs for s in layer_shapes(cfg, time_steps + 1)] != list(counted.values())


def test_summary_percentages():
    shapes = layer_shapes(CFG, 4)
    fp32 = [layer_cost(s, Candidate("fp32", 32), TABLE) for s in shapes]
    u2 = [layer_cost(s, Candidate("uniform", 2), TABLE) for s in shapes]
    summary = summarize(u2, fp32)
    assert summary["avg_weight_bits"] == pytest.approx(2.0)
    assert summary["storage_pct"] == pytest.approx(100 * 2 / 32)
    assert sum(summary["storage_pct_by_group"].values()) == pytest.approx(summary["storage_pct"])
    assert sum(summary["energy_pct_by_group"].values()) == pytest.approx(summary["energy_pct"])
    assert summarize(fp32, fp32)["energy_pct"] == pytest.approx(100.0)


def test_energy_table_errors(tmp_path):
    with pytest.raises(UserError, match="none.yaml: not found; expected an energy table"):
        load_energy_table(tmp_path / "none.yaml")
    bad = tmp_path / "t.yaml"
    bad.write_text("fp32_mult: 3.7\n")
    with pytest.raises(UserError, match="lacks key"):
        load_energy_table(bad)
    text = (load_energy_table.__globals__["DEFAULT_TABLE"]).read_text().replace("int8_add: 0.03", "int8_add: -1")
    bad.write_text(text)
    with pytest.raises(UserError, match="int8_add: expected a finite, non-negative number"):
        load_energy_table(bad)
    assert isinstance(TABLE, EnergyTable)
