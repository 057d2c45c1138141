"""The FPGA resource model (hqflow/fpga.py, tables/fpga_xc7.yaml) and the search's `--cost fpga`.

Fast: the shipped table loads, bad tables are refused naming file, key and value, the estimates
behave (more lanes cost more LUTs, po2 and spike inputs take no DSP48, big memories go to block
RAM), and a short search with the FPGA cost runs and records it in plan.json.
Slow (`slow` and `rtl`, needs Yosys): a few cores re-synthesized against the table's estimate:
LUT within LUT_TOLERANCE, DSP48 and BRAM36 exactly.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from hqflow import fpga
from hqflow.config import config_from_dict, load_config
from hqflow.cost import LayerShape, layer_shapes
from hqflow.errors import UserError
from hqflow.numerics import DEFAULT_CANDIDATES, Candidate
from hqflow.topology import spikformer

ROOT = Path(__file__).resolve().parents[1]
LUT_TOLERANCE = 0.15  # relative LUT error of the table against a fresh synthesis (slow test)
LINEAR = LayerShape("fc", "mlp", 96, 384, 1, 36, 4)
CONV = LayerShape("conv", "tokenizer", 12, 24, 9, 144, 4)


@pytest.fixture(scope="module")
def table():
    return fpga.load_fpga_table()


def test_shipped_table_is_calibrated(table):
    assert table.family == "xc7"
    assert not table.placeholder, "the shipped table should come from `python -m hqflow.export.rtl.dev.calibrate`"
    text = fpga.DEFAULT_TABLE.read_text()
    assert "Yosys 0.23" in text and "hqflow.export.rtl.dev.calibrate" in text


def test_resources_arithmetic():
    a, b = fpga.Resources(1, 2, 3, 0.5), fpga.Resources(10, 20, 30, 1)
    assert a + b == fpga.Resources(11, 22, 33, 1.5)
    assert a.scaled(2) == fpga.Resources(2, 4, 6, 1)
    assert fpga.total([a, b]) == a + b and fpga.total({"x": a}) == a
    assert a.to_dict() == {"lut": 1.0, "ff": 2.0, "dsp": 3.0, "bram": 0.5, "uram": 0.0}
    assert fpga.resources_from_cells({"URAM288": 3, "RAMB18E2": 2}) == fpga.Resources(bram=1.0, uram=3.0)


def test_cells_convention():
    res = fpga.resources_from_cells({"LUT6": 10, "LUT2": 5, "RAM32M": 3, "FDRE": 7, "FDCE_1": 1, "DSP48E1": 2,
                                     "RAMB36E1": 1, "RAMB18E1": 3, "CARRY4": 9, "MUXF7": 4})
    assert res == fpga.Resources(lut=10 + 5 + 12, ff=8, dsp=2, bram=2.5)


@pytest.mark.parametrize("fmt", [c.name for c in DEFAULT_CANDIDATES] + ["uniform-8", "po2-4", "uniform-3"])
@pytest.mark.parametrize("shape", [LINEAR, CONV], ids=["linear", "conv"])
def test_more_lanes_more_luts(table, fmt, shape):
    c = Candidate.parse(fmt)
    luts = [fpga.layer_resources(shape, c, table, lanes, 1).lut for lanes in (4, 8, 16)]
    assert luts[0] < luts[1] < luts[2], luts


@pytest.mark.parametrize("x_bits", [1, 2, 3, 15])
def test_po2_takes_no_dsp(table, x_bits):
    for fmt in ("po2-2", "po2-4", "po2z-4"):
        assert fpga.layer_resources(CONV, Candidate.parse(fmt), table, 8, x_bits).dsp == 0, (fmt, x_bits)


def test_spike_inputs_take_no_dsp_and_counts_do(table):
    for fmt in ("uniform-2", "uniform-4", "uniform-8", "fp32"):
        assert fpga.layer_resources(LINEAR, Candidate.parse(fmt), table, 8, 1).dsp == 0, fmt
    # the first conv reads 15-bit event counts: a uniform-4 or fp32 lane multiplies (negative control)
    assert fpga.layer_resources(CONV, Candidate.parse("uniform-4"), table, 8, 15).dsp >= 8
    assert fpga.layer_resources(CONV, Candidate.parse("fp32"), table, 8, 15).dsp >= 8


def test_memory_mapping(table):
    # tiny RAM: LUT RAM (RAM32M, 6 bits x 32 each: 4 LUTs); a deep wide RAM: block RAM
    assert fpga.memory_resources(120, 32, table) == fpga.Resources(lut=80, ff=120)
    big = fpga.memory_resources(240, 432, table)
    assert big.bram > 0 and big.lut == 0
    # ROMs (Yosys 0.23, measured by the calibration): 64 x 256 in LUTs (a LUT6 per bit and 64 words),
    # 64 x 1024 in two RAMB36 (36 x 1024 each), 16 x 2304 RAM in three RAMB18 (18 x 1024)
    assert fpga.memory_resources(64, 256, table, rom=True) == fpga.Resources(lut=256, ff=64)
    assert fpga.memory_resources(64, 1024, table, rom=True) == fpga.Resources(bram=2)
    assert fpga.memory_resources(16, 2304, table) == fpga.Resources(bram=1.5)
    assert fpga.memory_resources(0, 10, table) == fpga.Resources()


def test_cost_matrix_for_the_search(table):
    cfg = load_config(ROOT / "configs" / "tiny.yaml")
    shapes = layer_shapes(cfg.model, cfg.data.time_steps)
    x_bits = fpga.layer_input_bits(spikformer(cfg.model), cfg.data.time_steps)
    assert x_bits["sps.conv0"] == 15 and x_bits["sps.conv1"] == 1
    assert x_bits["blocks.0.attn.q"] == 2 and x_bits["blocks.0.mlp.fc1"] == 2 and x_bits["head"] == 10
    m = np.array(fpga.fpga_cost_matrix(shapes, DEFAULT_CANDIDATES, table, 8, x_bits))
    assert m.shape == (len(shapes), len(DEFAULT_CANDIDATES)) and np.all(m > 0)
    fp32 = [c.name for c in DEFAULT_CANDIDATES].index("fp32")
    assert np.all(m[:, fp32] == m.max(axis=1))  # fp32 is every layer's most expensive format


def _broken(tmp_path, edit) -> Path:
    raw = yaml.safe_load(fpga.DEFAULT_TABLE.read_text())
    edit(raw)
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize("edit, expect", [
    (lambda r: r.pop("lanes"), "t.yaml: (top level): lacks key(s) lanes"),
    (lambda r: r["weights"].update(dsp=-1), "t.yaml: weights.dsp: expected a finite number >= 0, got -1"),
    (lambda r: r["weights"].update(lut="many"), "t.yaml: weights.lut: expected a finite number >= 0, got 'many'"),
    (lambda r: r["lanes"].update({"int-4": {1: {"lut": 1, "ff": 1, "dsp": 0}}}), "t.yaml: lanes.int-4: not a weight format"),
    (lambda r: r["lanes"]["po2-2"].update({0: {"lut": 1, "ff": 1, "dsp": 0}}), "lanes.po2-2: input width key 0"),
    (lambda r: r["lanes"]["po2-2"][1].pop("dsp"), "t.yaml: lanes.po2-2.1: lacks key(s) dsp"),
    (lambda r: r["memory"]["bram36"].update(configs=[[72]]), "t.yaml: memory.bram36.configs: expected a list"),
    (lambda r: r["cores"].pop("conv_lif"), "t.yaml: cores: lacks key(s) conv_lif"),
    (lambda r: r.update(schema_version=2), "t.yaml: schema_version: expected 1, got 2"),
    (lambda r: r["spike_ops"].update(relu={}), "t.yaml: spike_ops.relu: not one of"),
])
def test_bad_tables_are_refused(tmp_path, edit, expect):
    path = _broken(tmp_path, edit)
    with pytest.raises(UserError) as err:
        fpga.load_fpga_table(path)
    assert expect in str(err.value)
    assert "\n" not in str(err.value)


def test_good_copy_loads(tmp_path):  # the negative control of the bad tables
    assert fpga.load_fpga_table(_broken(tmp_path, lambda r: None)).lanes


def test_missing_and_not_mapping(tmp_path):
    with pytest.raises(UserError, match="none.yaml: not found"):
        fpga.load_fpga_table(tmp_path / "none.yaml")
    (tmp_path / "l.yaml").write_text("- 1\n")
    with pytest.raises(UserError, match="l.yaml: \\(top level\\): expected a mapping"):
        fpga.load_fpga_table(tmp_path / "l.yaml")


def test_config_cost_is_validated():
    with pytest.raises(UserError, match="search.cost: 'gpu'; expected one of energy, fpga"):
        config_from_dict({"search": {"cost": "gpu"}})
    assert config_from_dict({"search": {"cost": "fpga"}}).search.cost == "fpga"
    assert config_from_dict({}).search.cost == "energy"


SMALL = {
    "model": {"img_size": 16, "embed_dim": 16, "num_heads": 2, "depth": 1, "pools": [True, True, False, False]},
    "data": {"dataset": "digits-dvs", "time_steps": 2, "max_train_samples": 96, "val_fraction": 0.25},
    "train": {"batch_size": 32, "seed": 3},
    "search": {"epochs": 1, "hw_lambda": 2.0, "alpha_lr": 0.2, "cost": "fpga"},
}


def test_search_with_fpga_cost_records_it(tmp_path):
    from hqflow.plan import load_plan
    from hqflow.search.quant_search import run_search

    out = tmp_path / "s"
    run_search(config_from_dict(SMALL), out, progress=False)
    plan = load_plan(out / "plan.json")
    assert plan.summary["cost"] == "fpga"
    res = plan.summary["fpga"]
    assert res["lut"] > 0 and res["ff"] > 0 and res["dsp"] >= 0 and res["lanes"] == 8
    log = [json.loads(line) for line in (out / "search_log.jsonl").read_text().splitlines()]
    assert "fpga_pct" in log[0] and log[-1]["fpga_pct"] < log[0]["fpga_pct"]  # lambda 2 drives it down
    # an old plan without the record still loads (the summary is free-form)
    raw = json.loads((out / "plan.json").read_text())
    for key in ("cost", "fpga"):
        raw["summary"].pop(key)
    (tmp_path / "old.json").write_text(json.dumps(raw))
    assert load_plan(tmp_path / "old.json").summary.get("cost") is None


# ---------------------------------------------------------------------------------------------- slow

HAVE_YOSYS = shutil.which("yosys") is not None


@pytest.mark.slow
@pytest.mark.rtl
@pytest.mark.skipif(not HAVE_YOSYS, reason="yosys not found")
def test_table_predicts_fresh_syntheses(tmp_path, table):
    """Re-synthesize three cores (the table's own design, another seed of random weights) and compare."""
    from hqflow.export.rtl.dev import calibrate

    wanted = [p for p in calibrate.design() if p["kind"] in ("linear_lif", "conv_lif")]
    points = [wanted[1], next(p for p in wanted if p.get("format") == "uniform-2" and p.get("x_bits") == 15),
              next(p for p in wanted if p["kind"] == "conv_lif" and p["format"] == "po2-2")]
    for p in points:
        measured = fpga.resources_from_cells(calibrate.synthesize(p, tmp_path, seed=7))
        est = calibrate.predict(p, table)
        assert abs(est.lut - measured.lut) <= LUT_TOLERANCE * measured.lut, (p, est, measured)
        assert est.dsp == measured.dsp and est.bram == measured.bram, (p, est, measured)
