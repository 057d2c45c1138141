"""The `paper` energy table reproduces the paper's Fig. 4 fp32 split; the 45 nm table is unchanged.

The paper (arXiv 2412.05505, Fig. 4, CIFAR10-DVS, fp32 Spikformer-2-256 = configs/paper.yaml):
energy tokenizer / attention / MLP 41.4 / 19.5 / 38.9 %, storage 38 / 20 / 41 %.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from hqflow.cli import main
from hqflow.config import load_config
from hqflow.cost import (DEFAULT_TABLE, LayerShape, fp32_breakdown, layer_cost, load_energy_table,
                         resolve_energy_table, table_names)
from hqflow.errors import UserError
from hqflow.numerics import Candidate

ROOT = Path(__file__).resolve().parents[1]
PAPER = load_config(ROOT / "configs" / "paper.yaml")
PAPER_ENERGY = (41.4, 19.5, 38.9)
PAPER_STORAGE = (38, 20, 41)
GROUPS = ("tokenizer", "attention", "mlp")


def _split(table) -> tuple[tuple[float, ...], tuple[float, ...]]:
    s = fp32_breakdown(PAPER.model, PAPER.data.time_steps, table, PAPER.data.dataset)
    return (tuple(s["energy_pct_by_group"][g] for g in GROUPS), tuple(s["storage_pct_by_group"][g] for g in GROUPS))


def test_paper_table_reproduces_fig4():
    energy, storage = _split(load_energy_table("paper"))
    np.testing.assert_allclose(energy, PAPER_ENERGY, atol=1.0)
    np.testing.assert_allclose(energy, PAPER_ENERGY, atol=0.2)  # what it achieves: 41.5 / 19.5 / 38.9
    np.testing.assert_allclose(storage, PAPER_STORAGE, atol=1.0)


def test_45nm_table_does_not_reproduce_fig4():
    """Negative control: the default (physically motivated) table is far from the paper's energy split."""
    energy, storage = _split(load_energy_table())
    assert abs(energy[0] - PAPER_ENERGY[0]) > 20  # 71.1 against 41.4
    np.testing.assert_allclose(storage, PAPER_STORAGE, atol=1.0)  # storage does not depend on the table


def test_45nm_table_figures_unchanged():
    """The default table, by name, by path and by None, gives the figures it always gave (bit for bit)."""
    shape = LayerShape("l", "mlp", c_in=64, c_out=32, taps=9, positions=100, time_steps=4)
    c = Candidate.parse("uniform-4")
    by_none, by_name, by_path = (load_energy_table(t) for t in (None, "45nm", DEFAULT_TABLE))
    assert by_none == by_name and by_name.accumulate_only is False and by_name.weight_reads == "per_inference"
    assert by_path.name == str(DEFAULT_TABLE) and by_none.name == "45nm"
    cost = layer_cost(shape, c, by_none)
    macs, bits = 4 * 100 * 64 * 32 * 9, 64 * 32 * 9 * 4
    assert cost.compute_pj == macs * (3.1 * (4 / 32) ** 2 + 0.1)
    assert cost.memory_pj == bits * 20.3125
    energy, _ = _split(by_none)
    np.testing.assert_allclose(energy, (71.13, 9.62, 19.24), atol=0.01)


def test_paper_table_counting():
    """paper: E = T * (MACs per step * E_add + bits * dram_per_bit): no multiply, weights read every step."""
    table = load_energy_table("paper")
    assert table.accumulate_only and table.weight_reads == "per_step" and table.name == "paper"
    shape = LayerShape("l", "mlp", c_in=64, c_out=32, taps=9, positions=100, time_steps=4)
    for name, e_add in (("fp32", 0.9), ("uniform-4", 0.1), ("po2-2", 0.1)):
        cost = layer_cost(shape, Candidate.parse(name), table)
        bits = 64 * 32 * 9 * Candidate.parse(name).bits
        assert cost.compute_pj == pytest.approx(4 * 100 * 64 * 32 * 9 * e_add, rel=1e-12)
        assert cost.memory_pj == pytest.approx(4 * bits * 40.625, rel=1e-12)
        assert cost.storage_bits == bits  # storage is per model, not per step


def test_table_names_and_resolution(tmp_path):
    assert set(table_names()) >= {"45nm", "paper"}
    assert resolve_energy_table("paper")[1].name == "energy_paper.yaml"
    assert resolve_energy_table("my.yaml") == ("my.yaml", Path("my.yaml"))  # a suffix: a path
    with pytest.raises(UserError, match="unknown energy table 'papr'"):
        resolve_energy_table("papr")
    own = tmp_path / "own.yaml"
    own.write_text((ROOT / "hqflow" / "tables" / "energy_paper.yaml").read_text().replace("per_step", "per_inference"))
    table = load_energy_table(own)
    assert table.weight_reads == "per_inference" and table.name == str(own)


def test_cost_command_last_line():
    runner = CliRunner()
    paper = runner.invoke(main, ["cost", str(ROOT / "configs" / "paper.yaml"), "--energy-table", "paper"])
    assert paper.exit_code == 0, paper.output
    last = paper.output.splitlines()[-1]
    assert last == "energy_split: 41.5/19.5/38.9", last
    default = runner.invoke(main, ["cost", str(ROOT / "configs" / "paper.yaml"), "--layers"])
    assert default.exit_code == 0, default.output
    assert default.output.splitlines()[-1] == "energy_split: 71.1/9.6/19.2"
    assert "blocks.1.mlp.fc2" in default.output and "blocks.1.mlp.fc2" not in paper.output
