"""The streaming top's resource estimate (export/rtl/stream_estimate.py) and folding to fit --part.

Every core has its op's hardware model: memories mapped as Yosys maps them, logic terms with the
shipped table's non-negative coefficients, DSP48s counted; the estimate an export records equals the
one recomputed from its manifest; a table with a negative or missing coefficient is an error naming
the file and key. `plan_to_fit` returns the fastest folding a predicate accepts: the next faster one
it tried is rejected. Estimates against synthesis are measured by `python -m
hqflow.export.rtl.stream_estimate check OUT` on synthesized exports (README); under `slow`, a small
mixed-format top (fp32 layers included, outside the fit's data) is synthesized and its estimate
checked: DSP48 exact, BRAM36 within 10 %, LUT and FF within 20 %.
"""

from __future__ import annotations

import json

import pytest
import yaml
from click.testing import CliRunner

from hqflow import fpga
from hqflow.cli import main
from hqflow.errors import UserError
from hqflow.export.lower import load_checkpoint, lower
from hqflow.export.rtl import stream, stream_estimate
from hqflow.export.rtl.stream_ops import FIFO, STREAM_OPS
from test_rtl_stream import _cfg, make_run
from test_rtl_synth import needs_yosys

pytestmark = pytest.mark.rtl


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
    bram = sum(fpga.memory_resources(m.width, m.depth, table.memory, m.rom).bram
               for c in manifest["cores"] for m in by_module[c["module"]].memories(c["params"]))
    bram += sum(fpga.memory_resources(q["width"] + 1, q["depth"], table.memory).bram for q in manifest["fifos"])
    assert recorded["total"]["dsp"] == dsp and recorded["total"]["bram"] == pytest.approx(bram)


def test_plan_to_fit_returns_the_fastest_folding_that_fits(run_dir):
    cfg, model, _ = load_checkpoint(run_dir)
    graph = lower(model, cfg)
    lanes = lambda s: sum(c.lanes for c in s.cores)  # noqa: E731  (a stand-in for a device's capacity)
    fastest = stream.plan_stream(graph, 64, files=False)
    slowest = stream.plan_stream(graph, 1, files=False)
    assert lanes(slowest) < lanes(fastest)
    budget = (lanes(slowest) + lanes(fastest)) // 2
    schedule, fits = stream.plan_to_fit(graph, 64, None, None, lambda s: lanes(s) <= budget)
    assert fits and lanes(schedule) <= budget and schedule.target_interval > fastest.target_interval
    assert schedule.cores[0].files  # the chosen schedule is rendered with its memory files
    # the foldings change only at the cycle counts of lane choices: one cycle faster is the faster candidate's
    assert lanes(stream.plan_stream(graph, 64, schedule.target_interval - 1, files=False)) > budget
    nothing, fits = stream.plan_to_fit(graph, 64, None, None, lambda s: False)  # slower would not help
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
