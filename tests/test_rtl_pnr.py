"""`hqflow pnr`: the nextpnr report read right (Fmax, utilization, the critical path), a design that does
not fit named by its resource, bad options refused; and (slow) a small streaming top synthesized with
synth_ecp5 and placed and routed for real, then behind the UART bridge with a board's pins, to a bitstream."""

from __future__ import annotations

import json
import sys

import pytest
from click.testing import CliRunner

from hqflow.cli import main
from hqflow.errors import UserError
from hqflow.export.rtl import pnr
from test_rtl_stream import _cfg, make_run
from test_rtl_synth import needs_yosys

pytestmark = pytest.mark.rtl


def _step(kind: str, delay: float, cell_from: str, cell_to: str, source: str = "") -> dict:
    step = {"type": kind, "delay": delay, "from": {"cell": cell_from, "port": "Q"}, "to": {"cell": cell_to, "port": "D"}}
    if source:
        step["sources"] = [source]
    return step


REPORT = {
    "fmax": {"clk": {"achieved": 123.456, "constraint": 150}},
    "utilization": {"TRELLIS_COMB": {"used": 900, "available": 83640}, "TRELLIS_FF": {"used": 500, "available": 83640},
                    "DP16KD": {"used": 4, "available": 208}, "DCCA": {"used": 1, "available": 56}},
    "critical_paths": [
        {"from": "<async>", "to": "posedge clk", "path": [_step("routing", 9.0, "in", "a")]},
        {"from": "posedge clk", "to": "posedge clk", "path": [
            _step("clk-to-q", 0.5, "a", "a"), _step("routing", 1.5, "a", "b", "/some/where/hqflow_x.v:10.1-10.5"),
            _step("logic", 0.5, "b", "b"), _step("routing", 2.0, "b", "c", "/else/hqflow_y.v:20.3-20.9"),
            _step("logic", 0.5, "c", "c"), _step("setup", 0.0, "c", "c")]},
        {"from": "posedge clk", "to": "posedge clk", "path": [_step("clk-to-q", 0.5, "d", "d"),
                                                               _step("routing", 1.0, "d", "e")]},
    ],
}


def test_report_read_right():
    path = pnr.critical_path(REPORT)
    assert path == {"delay_ns": 5.0, "from": "a", "to": "c", "from_source": "hqflow_x.v:10.1-10.5",
                    "to_source": "hqflow_y.v:20.3-20.9", "logic_levels": 2, "routing_share": 0.7}
    use = pnr.utilization(REPORT)
    assert list(use) == ["TRELLIS_COMB", "TRELLIS_FF", "DP16KD"]  # DCCA is not reported
    assert use["DP16KD"] == {"used": 4, "available": 208}
    text = pnr.pnr_markdown({"top": "t", "device": "um5g-85k", "package": "CABGA381", "speed": 8, "target_mhz": 150,
                             "fmax_mhz": 123.46, "meets_target": False, "utilization": use, "critical_path": path,
                             "synth_s": 1, "pnr_s": 2})
    assert "**123.46 MHz**" in text and "FAILS the 150 MHz target" in text and "| DP16KD | 4 | 208 | 1.9% |" in text
    assert "/some/where" not in text


def test_a_design_that_does_not_fit_names_the_resource(tmp_path):
    log = ("Info: Device utilisation:\nInfo: \t          TRELLIS_IO:      27/    365     7%\n"
           "Info: \t              DP16KD:     250/    208   120%\nERROR: Failed to pack\n")
    with pytest.raises(UserError, match=r"does not fit: DP16KD 250 of 208 \(42 over, 120%\)"):
        pnr._check_fit(log, tmp_path / "nextpnr.log")
    with pytest.raises(UserError, match="nextpnr-ecp5 failed: Failed to pack"):
        pnr._check_fit("ERROR: Failed to pack\n", tmp_path / "nextpnr.log")


def test_long_runs_print_their_phase(tmp_path, capsys):
    """A tool's phases, read from its log while it runs, are printed on stderr (a line each, off a terminal)."""
    log = tmp_path / "tool.log"
    script = ("import sys, time; f = open(sys.argv[1], 'w'); f.write('Info: Packing design\\n'); f.flush(); "
              "time.sleep(0.8); f.write('Info: Routing 12 arcs.\\n'); f.flush(); time.sleep(0.8)")
    proc = pnr._watched([sys.executable, "-c", script, str(log)], tmp_path, log, "tool", None, every=0.2, quiet=0)
    assert proc.returncode == 0
    err = capsys.readouterr().err.splitlines()
    assert [line.split(" (")[0] for line in err] == ["tool: packing", "tool: routing 12 arcs"]


def test_ultraram_exports_are_refused(tmp_path):
    manifest = {"part": "xczu7ev-ffvc1156-2-e", "cores": [{"node": "a", "params": {"ULTRA": 1}},
                                                         {"node": "b", "params": {"P": 4}}]}
    with pytest.raises(UserError, match=r"1 core\(s\) keep memories in UltraRAM \(a: the export's --part xczu7ev"):
        pnr.check_ecp5(manifest, tmp_path)
    pnr.check_ecp5({"part": "x", "cores": [{"node": "b", "params": {"P": 4}}]}, tmp_path)


def test_an_unknown_core_is_named(tmp_path):
    from hqflow.export.rtl import pnr_cores

    rtl = tmp_path / "rtl"
    (rtl / "tb").mkdir(parents=True)
    (rtl / "tb" / "t.cpp").write_text("")
    for name in ("tb", "frames", "logits", "trace"):
        (rtl / "data").mkdir(exist_ok=True)
        (rtl / "data" / f"{name}.txt").write_text("")
    (rtl / "top.json").write_text(json.dumps({
        "schema": 2, "arch": "stream", "top": "hqflow_top", "part": "x", "family": "xc7", "clock_mhz": 100,
        "time_steps": 2, "streams": [], "interval_formula": 1, "sources": [], "testbench": "tb/t.cpp",
        "cores": [{"index": 0, "node": "sps.conv0", "op": "conv_lif", "module": "m", "params": {}}]}))
    with pytest.raises(UserError, match=r"--core fc9: no such core in .*top.json \(sps.conv0\)"):
        pnr_cores.route_core(tmp_path, "fc9")


def test_latencies_name_their_clock(tmp_path):
    """A latency in us says whether its clock is the target or the post-route Fmax of a routed part."""
    assert pnr.routed_clock(tmp_path) is None
    assert pnr.latency_phrase(85000, 100, None) == ("850.0 us at the 100 MHz target clock (a target, not a routed "
                                                    "clock: `hqflow pnr` measures one)")
    (tmp_path / "pnr.json").write_text(json.dumps({"fmax_mhz": 50.0, "device": "um5g-85k", "package": "CABGA381",
                                                   "speed": 8, "utilization": {}}))
    routed = pnr.routed_clock(tmp_path)
    assert routed == {"fmax_mhz": 50.0, "device": "um5g-85k", "package": "CABGA381", "speed": 8}
    assert pnr.latency_phrase(85000, 100, routed) == ("850.0 us at the 100 MHz target clock, 1700.0 us at the "
                                                      "post-route 50.00 MHz (ECP5 um5g-85k, speed 8)")


@pytest.mark.parametrize("option, value, message", [("--device", "99k", "expected one of"),
                                                    ("--speed", "5", "speed grades are 6, 7 and 8"),
                                                    ("--clock-mhz", "0", "positive frequency"),
                                                    ("--router", "router3", "'router3' is not one of")])
def test_bad_options_refused(tmp_path, option, value, message):
    result = CliRunner().invoke(main, ["pnr", str(tmp_path), option, value])
    assert result.exit_code == 2 and message in result.output


def test_an_unknown_router_is_refused_by_the_library(tmp_path):
    with pytest.raises(UserError, match="--router 'router9': expected one of router1, router2"):
        pnr.route(tmp_path, tmp_path / "pnr", "top", [], "85k", "CABGA381", 8, 100.0, router="router9")


@pytest.mark.slow
@needs_yosys
def test_small_top_placed_and_routed(tmp_path):
    try:
        pnr.find_nextpnr()
    except UserError as err:
        pytest.skip(str(err))
    run = make_run(tmp_path / "run", _cfg(img=8, dim=8, heads=1, steps=2))
    out = tmp_path / "export"
    result = CliRunner().invoke(main, ["export", str(run), "--target", "rtl", "--lanes", "2", "--tb-samples", "2",
                                       "-o", str(out)])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(main, ["pnr", str(out), "--device", "25k", "--package", "CABGA256",
                                       "--clock-mhz", "50"])
    assert result.exit_code == 0, result.output
    saved = json.loads((out / "rtl" / "pnr.json").read_text())
    assert result.output.splitlines()[-1] == f"fmax_mhz: {saved['fmax_mhz']:.2f}"
    assert saved["fmax_mhz"] > 0 and saved["utilization"]["TRELLIS_COMB"]["used"] > 0
    assert saved["critical_path"]["logic_levels"] >= 1
    assert (out / "rtl" / "pnr.md").read_text().startswith("# Place and route of hqflow_top")
    # one core alone: its parameters from top.json, the Fmax inside it
    result = CliRunner().invoke(main, ["pnr", str(out), "--core", "head", "--device", "25k", "--package", "CABGA256",
                                       "--seed", "7", "--no-tmg-ripup"])
    assert result.exit_code == 0, result.output
    alone = json.loads((out / "rtl" / "pnr_cores" / "head" / "result.json").read_text())
    assert alone["module"] == "hqflow_stream_head" and alone["fmax_mhz"] > 0 and alone["seed"] == 7
    assert saved["tmg_ripup"] is True and alone["tmg_ripup"] is False
    assert result.output.splitlines()[-1] == f"fmax_mhz: {alone['fmax_mhz']:.2f}"
    assert any(line.startswith("head ") and "MHz" in line for line in result.output.splitlines())
    # the same top behind the UART bridge, for a board: its pins, ecppack's bitstream for its part
    result = CliRunner().invoke(main, ["bitstream", str(out), "--board", "ulx3s-25f"])
    assert result.exit_code == 0, result.output
    board = json.loads((out / "rtl" / "board" / "ulx3s-25f.json").read_text())
    assert result.output.splitlines()[-1] == f"fmax_mhz: {board['fmax_mhz']:.2f}"
    assert board["top"] == "hqflow_board" and board["target_mhz"] == 25 and board["utilization"]["TRELLIS_IO"]["used"] == 12
    bit = (out / "rtl" / board["bitstream"]).read_bytes()
    assert len(bit) == board["bitstream_bytes"] > 100_000 and b"LFE5U-25F" in bit[:256]
    lpf = (out / "rtl" / "board" / "ulx3s-25f" / "top.lpf").read_text()
    assert 'LOCATE COMP "uart_tx" SITE "L4";' in lpf
