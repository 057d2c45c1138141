"""The RTL top's estimate (export/rtl/estimate.py) against the co-simulation and a full synthesis.

Cycles: the estimate's formula with the simulator's measured input rates equals the co-simulated
mean of the same samples (up to the rounding of rate x size). Resources: a random mixed-format tiny
model's top, synthesized with Yosys (slow, about 2.5 minutes), against the calibrated estimate:
DSP48 exact, BRAM36 within 10 % or 3 blocks, LUT within 20 %, FF within 35 %. Measured (the README
says so): on this model LUT +1.9 %, FF +4.7 %, DSP exact, BRAM36 14.5 against 11.5 (small memories:
Yosys' choice between LUT RAM and block RAM); on the demo's top LUT -13 %, FF -30 %, DSP exact,
BRAM36 +2.5 %.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from hqflow import fpga
from hqflow.cli import main
from hqflow.export.rtl import estimate, yosys
from hqflow.ir import load_graph
from hqflow.sim.run import run as sim_run

from test_rtl_cli import make_run, needs_verilator, needs_yosys

pytestmark = pytest.mark.rtl


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("rtl_estimate")
    out = root / "export"
    result = CliRunner().invoke(main, ["export", str(make_run(root / "run")), "--target", "rtl", "--arch", "sequential", "--tb-samples", "4",
                                       "--trace-samples", "0", "-o", str(out)])
    assert result.exit_code == 0, result.output
    return out


@needs_verilator
def test_cycle_estimate_equals_the_cosimulation(exported):
    result = CliRunner().invoke(main, ["rtlsim", str(exported)])
    assert result.exit_code == 0, result.output
    graph = load_graph(exported)
    frames = np.loadtxt(exported / "rtl" / "data" / "frames.txt", dtype=np.int64)
    c, h, w = graph.nodes[0].shape
    x = frames.reshape(4, graph.time_steps, h, w, c).transpose(0, 1, 4, 2, 3)  # channels last -> [C, H, W]
    _, trace = sim_run(graph, x.astype(np.int16), trace=True)
    measured = json.loads((exported / "rtl" / "cycles.json").read_text())
    est = estimate.estimate_top(graph, 8, estimate.input_rates(graph, trace))
    for name, item in est["nodes"].items():  # each core: its formula at the mean nonzero count
        assert item["cycles_per_inference"] == pytest.approx(measured["nodes"][name]["cycles_per_inference"],
                                                             abs=graph.time_steps * 20), name
    assert est["cycles_per_inference"] == pytest.approx(measured["latency_cycles"]["mean"], rel=1e-3)
    # a negative control: other rates, another figure
    slow = estimate.estimate_top(graph, 8, {k: min(1.0, 2 * v + 0.1) for k, v in estimate.input_rates(graph, trace).items()})
    assert slow["cycles_per_inference"] > 1.05 * measured["latency_cycles"]["mean"]


@needs_yosys
@pytest.mark.slow
def test_resource_estimate_against_full_synthesis(exported):
    result = CliRunner().invoke(main, ["synth", str(exported)])
    assert result.exit_code == 0, result.output
    stat = (exported / "rtl" / "synth" / "stat.json").read_text()
    synth = fpga.resources_from_cells(yosys.hierarchy_totals(yosys._stat_modules(stat))["hqflow_top"])
    est = fpga.Resources(**estimate.estimate_top(load_graph(exported), 8)["total"])
    print(f"estimate {est}\nsynthesis {synth}")
    assert est.dsp == synth.dsp
    assert abs(est.bram - synth.bram) <= max(0.10 * synth.bram, 3.0)
    assert est.lut == pytest.approx(synth.lut, rel=0.20)
    assert est.ff == pytest.approx(synth.ff, rel=0.35)
