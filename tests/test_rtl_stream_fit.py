"""The streaming top's resource estimate (export/rtl/stream_estimate.py) and folding to fit --part.

Every core has its op's hardware model: memories mapped as Yosys maps them, logic terms with the
shipped table's non-negative coefficients, DSP48s counted; the estimate an export records equals the
one recomputed from its manifest; a table with a negative or missing coefficient is an error naming
the file and key. `plan_to_fit` returns the fastest folding a predicate accepts: the next faster one
it tried is rejected. On a part with UltraRAM where block RAM runs short, the placement moves the
large RAMs of the cores that free the most BRAM36 per URAM288 (ULTRA); under `slow`, a top with every
such core placed is co-simulated bit for bit. Estimates against synthesis are measured by `python -m
hqflow.export.rtl.stream_estimate check OUT` on synthesized exports (README); under `slow`, a small
mixed-format top (fp32 layers included, outside the fit's data) is synthesized and its estimate
checked: DSP48 exact, BRAM36 within 10 %, LUT and FF within 20 %.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
import torch
import yaml
from click.testing import CliRunner

from hqflow import devices, fpga
from hqflow.cli import main
from hqflow.errors import UserError
from hqflow.export.lower import load_checkpoint, lower
from hqflow.export.rtl import project, stream, stream_estimate, stream_project
from hqflow.export.rtl.stream_ops import FIFO, STREAM_OPS
from hqflow.numerics import Candidate
from hqflow.resources import rom_resources
from test_rtl_stream import _cfg, make_run, needs_verilator
from test_rtl_synth import needs_yosys

pytestmark = pytest.mark.rtl
ROOT = Path(__file__).resolve().parent.parent


def test_every_core_has_coefficients_for_its_terms():
    table = stream_estimate.load_stream_table()
    modules = {op.module for op in [*STREAM_OPS.values(), FIFO] if op.has_core}
    assert modules == set(table.coeffs)
    for coeffs in table.coeffs.values():
        assert coeffs["lut"] and coeffs["ff"] and min(min(c.values()) for c in coeffs.values()) >= 0
    with pytest.raises(UserError, match="no resource model for the core hqflow_nothing"):
        stream_estimate.core_resources("hqflow_nothing", {}, table)


def test_bad_tables_name_file_and_key(tmp_path):
    good = yaml.safe_load(stream_estimate.DEFAULT_TABLE.read_text())
    cases = [(("hqflow_fifo", "lut", "fixed"), -1.0, r"modules\.hqflow_fifo\.lut\.fixed: expected a number >= 0"),
             (("hqflow_fifo", "ff"), None, r"modules\.hqflow_fifo\.ff: expected a mapping")]
    for path, value, message in cases:
        doc = json.loads(json.dumps(good))
        entry = doc["modules"]
        for key in path[:-1]:
            entry = entry[key]
        entry[path[-1]] = value
        bad = tmp_path / "table.yaml"
        bad.write_text(yaml.safe_dump(doc))
        with pytest.raises(UserError, match=f"{bad.name}: {message}"):
            stream_estimate.load_stream_table(bad)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("fit") / "run", _cfg(img=16, dim=32, heads=2, depth=1, steps=4))


def test_export_records_its_estimate(run_dir, tmp_path):
    out = tmp_path / "export"
    result = CliRunner().invoke(main, ["export", str(run_dir), "--target", "rtl", "--tb-samples", "2", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "estimate for xc7a100tcsg324-1 (xc7): LUT" in result.output
    assert "within 80% of every resource" in result.output
    manifest = json.loads((out / "rtl" / "top.json").read_text())
    recorded = manifest["estimate"]
    assert recorded["fits"] is True and recorded["total"] == stream_estimate.estimate_manifest(manifest)["total"]
    table = stream_estimate.load_stream_table()
    by_module = {op.module: op for op in STREAM_OPS.values() if op.has_core}
    dsp = sum(by_module[c["module"]].dsp(c["params"]) for c in manifest["cores"])
    bram = sum((rom_resources(m.width, m.depth, table.memory, m.tail) if m.tail else
                fpga.memory_resources(m.width, m.depth, table.memory, m.rom)).bram
               for c in manifest["cores"] for m in by_module[c["module"]].memories(c["params"]))
    bram += sum(fpga.memory_resources(q["width"] + 1, q["depth"], table.memory).bram for q in manifest["fifos"])
    assert recorded["total"]["dsp"] == dsp and recorded["total"]["bram"] == pytest.approx(bram)
    # the ROMs just past a block's depth keep their last lines in LUTs, from a file of their own
    tails = {c["params"]["ROM_TAIL_FILE"].strip('"'): c["params"]["ROM_TAIL"] for c in manifest["cores"]
             if c["params"].get("ROM_TAIL")}
    assert tails, "no ROM tail in this export: the co-simulations below would not cover one"
    for file, tail in tails.items():
        assert len((out / "rtl" / file).read_text().splitlines()) == tail


def test_plan_to_fit_returns_the_fastest_folding_that_fits(run_dir):
    cfg, model, _ = load_checkpoint(run_dir)
    graph = lower(model, cfg)
    lanes = lambda s: sum(c.lanes for c in s.cores)  # noqa: E731  (a stand-in for a device's capacity)
    fastest = stream.plan_stream(graph, 64, files=False)
    slowest = stream.plan_stream(graph, 1, files=False)
    assert lanes(slowest) < lanes(fastest)
    budget = (lanes(slowest) + lanes(fastest)) // 2
    schedule, fits = stream.plan_to_fit(graph, 64, None, None, lambda s: (frozenset(), lanes(s) <= budget))
    assert fits and lanes(schedule) <= budget and schedule.target_interval > fastest.target_interval
    assert schedule.cores[0].files  # the chosen schedule is rendered with its memory files
    # the foldings change only at the cycle counts of lane choices: one cycle faster is the faster candidate's
    assert lanes(stream.plan_stream(graph, 64, schedule.target_interval - 1, files=False)) > budget
    nothing, fits = stream.plan_to_fit(graph, 64, None, None, lambda s: (frozenset(), False))  # slower would not help
    assert fits is False and nothing.target_interval == fastest.target_interval


# (depth, width) -> (BRAM36, URAM288) as Yosys 0.23 `synth_xilinx -family xcup -uram` mapped a simple
# dual-port RAM of that shape (one write, one registered read port; measured)
YOSYS_XCUP_RAMS = {(4096, 16): (2, 0), (16384, 16): (0, 1), (16384, 17): (0, 1), (16384, 33): (0, 2),
                   (16384, 48): (0, 3), (16384, 49): (0, 3), (65536, 16): (0, 4), (4096, 240): (0, 4),
                   (1024, 240): (7, 0), (256, 1792): (25, 0)}


def test_ultraram_mapping_follows_yosys():
    table = fpga.load_fpga_table()
    for (depth, width), expected in YOSYS_XCUP_RAMS.items():
        r = fpga.memory_resources(width, depth, table, uram=True)
        assert (r.bram, r.uram) == expected, (depth, width)
    assert fpga.memory_resources(16, 16384, table, rom=True, uram=True).uram == 0  # a ROM has contents
    assert fpga.memory_resources(16, 16384, table).uram == 0  # no UltraRAM outside UltraScale+


def test_ultra_memories_take_uram():
    table = fpga.load_fpga_table()
    assert fpga.memory_resources(16, 4096, table, uram=True) == fpga.Resources(bram=2)  # Yosys' own choice
    assert fpga.memory_resources(16, 4096, table, uram=True, ultra=True) == fpga.Resources(uram=1)
    assert fpga.memory_resources(240, 1024, table, uram=True, ultra=True) == fpga.Resources(uram=4)  # 72 bits a row
    with pytest.raises(ValueError, match="ROM"):
        fpga.memory_resources(16, 4096, table, rom=True, ultra=True)
    # measured: Yosys 0.23 synth_xilinx -family xcup -uram of hqflow_stream_pool at the paper's first pool
    # (128 x 128 x 32, T 16): ULTRA 0 took 10 RAMB36E2, ULTRA 1 five URAM288 (one per 4096 x 16 row bank)
    stream_table = stream_estimate.load_stream_table()
    pool = {"H": 128, "W": 128, "C": 32, "K": 3, "S": 2, "PAD": 1, "T": 16}
    for ultra, bram, uram in ((0, 10, 0), (1, 0, 5)):
        r = stream_estimate.core_resources("hqflow_stream_pool", {**pool, "ULTRA": ultra}, stream_table, "xcup")
        assert (r.bram, r.uram) == (bram, uram)


def _paper_graph(steps: int = 16):
    from hqflow.config import load_config
    from hqflow.search.supernet import random_quantized_model

    cfg = load_config(ROOT / "configs" / "paper.yaml").replace("model", num_classes=10)
    cfg = cfg.replace("data", time_steps=steps)
    with torch.no_grad():
        return lower(random_quantized_model(cfg.model, (Candidate.parse("uniform-4"),), seed=0), cfg)


@pytest.fixture(scope="module")
def paper_graph():
    return _paper_graph()


def test_attention_kv_split_takes_the_fewest_block_rams_within_the_target(paper_graph):
    node = paper_graph.node("blocks.0.attn.attn")  # HD 16, T 16, N 64: kv rows of 1,792 bits
    op = STREAM_OPS["ssa"]
    whole = op.build(paper_graph, node, [], 1)["params"]
    assert "SPLIT" not in whole and op.fold_fixed(paper_graph, node, 16, op.cycles(whole, 16)) == 1
    table = fpga.load_fpga_table()
    kv = {split: next(m for m in op.memories({**whole, "SPLIT": split}) if m.name == "kv") for split in (1, 2, 4)}
    assert [(kv[s].width, kv[s].depth) for s in (1, 2, 4)] == [(1792, 256), (896, 512), (448, 1024)]
    assert [fpga.memory_resources(kv[s].width, kv[s].depth, table).bram for s in (1, 2, 4)] == [25, 12.5, 12.5]
    assert op.fold_fixed(paper_graph, node, 16, 10 ** 9) == 2  # 12.5 BRAM36 from split 2 on: the fastest of those
    split2 = op.build(paper_graph, node, [], 2)["params"]
    assert op.cycles(split2, 16) - op.cycles(whole, 16) == 2 * 64 * 256  # N D more in each phase


def test_placement_moves_large_rams_to_ultraram_where_block_ram_runs_short(monkeypatch, paper_graph):
    graph = paper_graph
    schedule = stream.plan_stream(graph, 16, files=False)
    part = "xczu7ev-ffvc1156-2-e"
    zu7ev = devices.find_device(part)
    bram = stream_project.part_fit(project.RtlOptions(part=part))[1](schedule)["total"]["bram"]
    tight = dataclasses.replace(zu7ev, bram36=(bram - 30) / stream_project.FIT_SHARE)  # 30 BRAM36 too many
    monkeypatch.setattr(stream_project, "find_device", lambda *a, **k: tight)
    place, estimate = stream_project.part_fit(project.RtlOptions(part=part))
    ultra, fits = place(schedule)
    assert fits and ultra and all(stream.STREAM_OPS[graph.node(n).op].ultra_ram for n in ultra)
    assert {graph.node(n).op for n in ultra} >= {"maxpool"}  # the pools' row banks: 2 BRAM36 freed per URAM
    placed = stream.plan_stream(graph, 16, files=False, ultra=ultra)
    total = estimate(placed)["total"]
    assert total["bram"] <= bram - 30 and total["uram"] > estimate(schedule)["total"]["uram"]
    assert all(bool(c.params.get("ULTRA")) == (c.node in ultra) for c in placed.cores)
    monkeypatch.setattr(stream_project, "find_device", lambda *a, **k: dataclasses.replace(tight, uram=0))
    assert stream_project.part_fit(project.RtlOptions(part=part))[0](schedule) == (frozenset(), False)
    with pytest.raises(UserError, match="no RAM to put in UltraRAM"):
        stream.plan_stream(graph, 16, files=False, ultra=frozenset({"sps.add"}))


@pytest.mark.slow
@needs_verilator
def test_ultraram_cores_and_the_finest_kv_split_are_bit_exact(run_dir, tmp_path, monkeypatch):
    def everything(options):  # every core that can puts its large RAMs in UltraRAM
        place, estimate = real(options)
        return (lambda s: (frozenset(c.node for c in s.cores if stream.STREAM_OPS[c.op].ultra_ram), True)), estimate

    real = stream_project.part_fit
    monkeypatch.setattr(stream_project, "part_fit", everything)
    ssa = type(STREAM_OPS["ssa"])  # the kv rows one lane a slice (HD 16)
    monkeypatch.setattr(ssa, "fold_fixed", lambda self, graph, node, steps, target: 16)
    out = tmp_path / "export"
    result = CliRunner().invoke(main, ["export", str(run_dir), "--target", "rtl", "--tb-samples", "2",
                                       "--part", "xczu7ev-ffvc1156-2-e", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert result.output.count("  URAM") >= 3  # the folding table marks the placed cores
    assert (out / "rtl" / "hqflow_top.v").read_text().count(".ULTRA(1)") >= 3
    assert "kv/16" in result.output
    assert re.search(r"\.ROM_TAIL\([1-9]", (out / "rtl" / "hqflow_top.v").read_text())  # a ROM's tail in LUTs
    result = CliRunner().invoke(main, ["rtlsim", str(out)])
    assert result.exit_code == 0 and result.output.splitlines()[-1] == "mismatches: 0", result.output
    assert "interval_cycles: n/a (no two samples back to back" in result.output  # 2 samples, both run alone
    cycles = json.loads((out / "rtl" / "cycles.json").read_text())["nodes"]
    assert all(item["formula_equal"] for item in cycles.values()), cycles  # kv/16: the split's formula


@pytest.mark.slow
@needs_yosys
def test_estimate_beside_the_synthesis_of_a_small_top(run_dir, tmp_path):
    out = tmp_path / "export"
    result = CliRunner().invoke(main, ["export", str(run_dir), "--target", "rtl", "--tb-samples", "2", "-o", str(out)])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(main, ["synth", str(out)])  # about 5 minutes on 2 cores
    assert result.exit_code == 0, result.output
    assert "## Estimate / synthesis" in (out / "rtl" / "resources.md").read_text()
    _, errors = stream_estimate.compare(out, stream_estimate.load_stream_table())
    assert errors["dsp"] == 0.0 and errors["uram"] == 0.0
    assert abs(errors["bram"]) <= 10.0 and abs(errors["lut"]) <= 20.0 and abs(errors["ff"]) <= 20.0, errors
