"""Yosys synthesis (export/rtl/yosys.py): finding the tool, reading `stat`, and the cells of real cores.

The parsing tests run everywhere (captured Yosys 0.23 output); the synthesis tests need Yosys and skip
with the way to install it where it is missing; the reference layers of benchmarks/core_resources.py
run under `slow`.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hqflow.errors import UserError
from hqflow.export.rtl import yosys
from hqflow.export.rtl.yosys import Resources, markdown_table, parse_stat_json, parse_stat_text

ROOT = Path(__file__).resolve().parents[1]
HAVE_YOSYS = shutil.which("yosys") is not None
needs_yosys = pytest.mark.skipif(not HAVE_YOSYS, reason=f"yosys not found: {yosys.INSTALL_HINT}")

# `stat` of a flattened synth_xilinx of a block RAM (36 x 1024), a RAMB18 (18 x 512), an SRL, a LUT RAM
# (8 x 64) and a counter with an asynchronous reset, as Yosys 0.23 printed it
STAT_FLAT = """
4. Printing statistics.

=== mtop ===

   Number of wires:                 48
   Number of wire bits:            573
   Number of memories:               0
   Number of processes:              0
   Number of cells:                 30
     CARRY4                          2
     FDCE                            8
     INV                             1
     LUT2                            8
     RAM64X1S                        8
     RAMB18E1                        1
     RAMB36E1                        1
     SRLC32E                         1
Warning: Resizing cell port mtop.m2.0.0.DIADI from 64 bits to 16 bits.
"""

# `stat` of a hierarchical design (two 8 x 8 multiplier submodules), as Yosys 0.23 printed it
STAT_HIER = """
=== htop ===

   Number of wires:                 13
   Number of cells:                 10
     LUT2                            8
     sub                             2

=== sub ===

   Number of wires:                  5
   Number of cells:                  1
     DSP48E1                         1

=== design hierarchy ===

   htop                              1
     sub                             2

   Number of wires:                 23
   Number of cells:                 10
     DSP48E1                         2
     LUT2                            8

"""


def test_parse_stat_text_flat():
    res = parse_stat_text(STAT_FLAT)
    assert (res.lut, res.ff, res.dsp, res.carry) == (8, 8, 0, 2)
    assert (res.bram36, res.bram18, res.bram) == (1, 1, 1.5)
    assert (res.lutram, res.other) == (9, 1)  # RAM64X1S x 8 + SRLC32E; INV
    assert dict(res.cells)["RAM64X1S"] == 8
    assert sum(n for _, n in res.cells) == 30  # every cell counted once


def test_parse_stat_text_hierarchy_uses_the_totals():
    res = parse_stat_text(STAT_HIER)
    assert (res.lut, res.dsp, res.other) == (8, 2, 0)  # not the "sub" cells of htop's own section
    with pytest.raises(ValueError, match="2 module sections and no design hierarchy"):
        parse_stat_text(STAT_HIER.split("=== design hierarchy ===")[0])


def test_parse_stat_json():
    design = {"num_cells": 7, "num_cells_by_type": {"LUT6": 3, "LUT1": 1, "FDRE": 2, "DSP48E1": 1}}
    res = parse_stat_json(json.dumps({"modules": {"\\top": design}}))
    assert (res.lut, res.ff, res.dsp, res.other) == (4, 2, 1, 0)
    both = {"modules": {"\\top": {"num_cells_by_type": {"sub": 2}}, "\\sub": design}, "design": design}
    assert parse_stat_json(json.dumps(both)) == res
    del both["design"]
    with pytest.raises(ValueError, match="2 modules and no design totals"):
        parse_stat_json(json.dumps(both))


def test_resources_to_dict_and_markdown():
    res = Resources.from_cells({"LUT3": 5, "FDSE": 1, "RAMB18E1": 3, "MUXF7": 2, "URAM288": 4})
    d = res.to_dict()
    assert (d["lut"], d["ff"], d["bram"], d["uram"], d["other"], d["cells"]["MUXF7"]) == (5, 1, 1.5, 4, 2, 2)
    assert json.loads(json.dumps(d)) == d
    table = markdown_table([("a", res), ("b", Resources())], name="core")
    assert table.splitlines()[0] == "| core | LUT | FF | DSP48 | BRAM36 | URAM | CARRY4 | LUTRAM | other |"
    assert table.splitlines()[2] == "| a | 5 | 1 | 0 | 1.5 | 4 | 0 | 0 | 2 |"
    assert len(table.splitlines()) == 4
    per_lane = markdown_table([("a", res)], lanes=[2]).splitlines()
    assert per_lane[0].endswith("| LUT/lane | FF/lane |") and per_lane[2].endswith("| 2.5 | 0.5 |")


def test_missing_yosys_names_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("YOSYS", str(tmp_path / "no-yosys"))
    with pytest.raises(UserError) as err:
        yosys.find_yosys()
    assert "\n" not in str(err.value) and "no-yosys" in str(err.value) and "apt-get install yosys" in str(err.value)
    monkeypatch.delenv("YOSYS")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(UserError, match=r"^yosys not found .*apt-get install yosys.*OSS CAD Suite") as err:
        yosys.synth("top", [tmp_path / "top.v"])
    assert "\n" not in str(err.value)


def test_missing_yosys_on_the_command_line(tmp_path):
    """Through a fresh interpreter with an empty PATH: one line naming the install, no traceback."""
    code = "from hqflow.export.rtl.yosys import find_yosys\ntry:\n find_yosys()\nexcept Exception as e:\n print(type(e).__name__, e)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={"PATH": str(tmp_path)}, check=True).stdout
    assert out.startswith("UserError yosys not found") and out.count("\n") == 1


def test_bad_parameters_are_user_errors(tmp_path):
    source = tmp_path / "top.v"
    source.write_text("module top; endmodule\n")
    with pytest.raises(UserError, match=r"parameter MEM='a\"b'"):
        yosys.script("top", [source], {"MEM": 'a"b'})
    with pytest.raises(UserError, match="no such Verilog source"):
        yosys.script("top", [tmp_path / "missing.v"])
    assert 'chparam -set N 3 -set MEM "w.mem" top' in yosys.script("top", [source], {"N": 3, "MEM": "w.mem"})


# a lane of the multiplier-against-shifter kind, to check the flow itself: a `*` on a multi-bit operand
# maps to a DSP48, shifts do not; the ROM of random codes keeps the weights from folding into constants
LANE_V = """
module tlane #(parameter PO2 = 0, parameter B = 4, parameter MEM = "")
  (input clk, input rst, input en, input [5:0] addr, input [7:0] x, output reg [23:0] acc);
  reg [B-1:0] rom [0:63];
  initial $readmemh(MEM, rom);
  reg [B-1:0] code;
  always @(posedge clk) code <= rom[addr];
  wire signed [23:0] xs = {16'd0, x};
  wire signed [23:0] sh = xs << code[B-2:0];
  wire signed [B:0] w = $signed({1'b0, code}) - (1 << (B - 1));
  wire signed [23:0] term = PO2 ? (code[B-1] ? -sh : sh) : xs * w;
  always @(posedge clk) if (rst) acc <= 0; else if (en) acc <= acc + term;
endmodule
"""


@pytest.mark.rtl
@needs_yosys
def test_synth_flow_multiplier_against_shifter(tmp_path):
    (tmp_path / "lane.v").write_text(LANE_V)
    (tmp_path / "rom.mem").write_text("".join(f"{(i * 7 + 3) % 16:x}\n" for i in range(64)))
    mul = yosys.synth("tlane", [tmp_path / "lane.v"], {"PO2": 0, "MEM": "rom.mem"}, workdir=tmp_path / "mul")
    shift = yosys.synth("tlane", [tmp_path / "lane.v"], {"PO2": 1, "MEM": "rom.mem"}, workdir=tmp_path / "shift")
    assert mul.dsp == 1 and shift.dsp == 0
    assert shift.lut > 0 and shift.ff > 0
    for name in ("synth.ys", "yosys.log", "stat.json", "stat.txt"):
        assert (tmp_path / "shift" / name).is_file()
    assert parse_stat_text((tmp_path / "shift" / "stat.txt").read_text()) == shift  # text and JSON agree


@pytest.mark.rtl
@needs_yosys
def test_synth_error_quotes_yosys(tmp_path):
    (tmp_path / "lane.v").write_text(LANE_V)
    with pytest.raises(UserError, match=r"yosys synthesis of tlane failed: .*ERROR: .*missing\.mem"):
        yosys.synth("tlane", [tmp_path / "lane.v"], {"MEM": "missing.mem"}, workdir=tmp_path)


# ---- the real cores ----------------------------------------------------------------------------------


def _tiny_linear(folder: Path, fmt: str, x_bits: int) -> dict:
    """Memory files and parameters of a tiny hqflow_linear_lif (2 tokens, 8 -> 4, 4 lanes), random codes."""
    from hqflow import numerics
    from hqflow.export.rtl import memfiles
    from hqflow.numerics import Candidate

    cand, rng = Candidate.parse(fmt), np.random.default_rng(3)
    bits, zp = numerics.rom_code_bits(cand), (1 << (cand.bits - 1) if cand.scheme == "uniform" else 0)
    codes = rng.integers(0, 1 << bits, (8, 4)).astype(np.uint64)  # [C, O]
    words = numerics.pack_rom(codes, bits)  # 4 lanes fit one 64-bit word: KW 1, ROW_WIDE 1
    assert memfiles.rom_shape(bits, 4, 4) == (1, 1)
    (folder / "w.mem").write_text(memfiles.hex_lines(words[:, 0], 64))
    v_bits = 24
    (folder / "bias.mem").write_text(memfiles.hex_lines([0x000003_ffff00_000002_000001], 4 * v_bits))
    (folder / "thr.mem").write_text(memfiles.hex_lines([0x000040_000030_000020_000010], 4 * v_bits))
    (folder / "sign.mem").write_text(memfiles.hex_lines([0b01_11_01_01], 8))
    return {"N": 2, "C": 8, "O": 4, "P": 4, "BITS": bits, "SCHEME": {"uniform": 0, "po2": 1}[cand.scheme],
            "ZERO_LEVEL": int(cand.zero_level), "ZP": zp, "X_BITS": x_bits, "ACC_BITS": 16, "V_BITS": v_bits,
            "F": 2, "T": 2, "ROM_FILE": "w.mem", "BIAS_FILE": "bias.mem", "THR_FILE": "thr.mem",
            "SIGN_FILE": "sign.mem"}


@pytest.mark.rtl
@needs_yosys
def test_tiny_linear_core_po2_lanes_use_no_dsp(tmp_path):
    """A uniform-8 and a po2-4 lane group of hqflow_linear_lif with 4-bit inputs: the uniform lanes'
    multiply takes DSP48s (the positive control), the po2 lanes' shifts none."""
    from hqflow.export.rtl.paths import CORES

    sources = [CORES / f for f in ("hqflow_weight_rom.v", "hqflow_lanes.v", "hqflow_lif.v", "hqflow_linear_lif.v")]
    found = {}
    for fmt in ("uniform-8", "po2-4"):
        work = tmp_path / fmt
        work.mkdir()
        found[fmt] = yosys.synth("hqflow_linear_lif", sources, _tiny_linear(work, fmt, x_bits=4), workdir=work)
    assert found["uniform-8"].dsp > 0, found["uniform-8"]
    assert found["po2-4"].dsp == 0, found["po2-4"]
    assert found["po2-4"].lut > 0 and found["po2-4"].ff > 0


@pytest.mark.rtl
@pytest.mark.slow
@needs_yosys
def test_reference_layers(tmp_path, capsys):
    """benchmarks/core_resources.py on the reference layers (spike inputs): no po2 / po2z core uses a
    DSP48 (addresses are running offsets, po2 lanes shift), and with spikes no core multiplies at all
    (a spike gates the weight), so uniform is 0 too; fp32 likewise."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import core_resources
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    assert core_resources.main(["--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[-1].startswith("po2_dsp_total: ")
    records = json.loads((tmp_path / "core_resources.json").read_text())
    assert len(records) == 2 * len(core_resources.FORMATS)
    assert out.splitlines()[-1] == "po2_dsp_total: 0"
    for core in ("linear_lif", "conv_lif"):
        by = {r["format"]: r for r in records if r["core"] == core}
        assert all(by[f]["dsp"] == 0 for f in core_resources.FORMATS), by
    table = [line for line in (tmp_path / "core_resources.md").read_text().splitlines() if line.startswith("| ")]
    assert table[0].startswith("| core |") and len(table) == 1 + 2 * len(core_resources.FORMATS)  # head, rows


def test_ultrascale_plus_may_map_ultraram():
    from hqflow.export.rtl.yosys import synth_command

    assert synth_command("xcup", "top") == "synth_xilinx -family xcup -uram -top top -flatten -noiopad -noclkbuf"
    assert "-uram" not in synth_command("xc7", "top") and "-uram" not in synth_command("xcu", "top")


def _cell(kind: str, inputs: dict, outputs: dict) -> dict:
    return {"type": kind, "connections": {**inputs, **outputs},
            "port_directions": {**{p: "input" for p in inputs}, **{p: "output" for p in outputs}}}


def test_logic_depth_counts_lut_levels_and_carry_cascades():
    """FF -> LUT -> LUT -> CARRY4 -> CARRY4 -> FF: 2 LUT levels, a chain of 2 CARRY4; a LUT-RAM read is a level
    from its address only; a carry's bits are followed one by one (no false loop through its own cell)."""
    from hqflow.export.rtl.depth import module_depth, netlist_depth

    cells = {
        "q": _cell("FDRE", {"D": [20], "C": [1]}, {"Q": [2]}),
        "l1": _cell("LUT2", {"I0": [2], "I1": [2]}, {"O": [3]}),
        "l2": _cell("LUT3", {"I0": [3], "I1": [2], "I2": [3]}, {"O": [4]}),
        "c1": _cell("CARRY4", {"CI": ["0"], "CYINIT": ["0"], "DI": [4, 4, 4, 4], "S": [4, 2, 2, 2]},
                    {"O": [5, 6, 7, 8], "CO": [9, 10, 11, 12]}),
        "c2": _cell("CARRY4", {"CI": [12], "CYINIT": ["0"], "DI": [5, 2, 2, 2], "S": [5, 2, 2, 2]},
                    {"O": [13, 14, 15, 16], "CO": [17, 18, 19, 20]}),
        "ram": _cell("RAM32M", {"ADDRA": [16, 2], "DIA": [13, 14], "WE": [2]}, {"DOA": [30, 31]}),
        "l3": _cell("LUT1", {"I0": [30]}, {"O": [32]}),
    }
    module = {"cells": cells, "ports": {"y": {"direction": "output", "bits": [32]}}}
    assert module_depth(module) == {"lut_levels": 4, "carry_chain": 2}  # l1, l2, the RAM read, l3
    del cells["ram"], cells["l3"]
    module["ports"] = {}
    assert module_depth(module) == {"lut_levels": 2, "carry_chain": 2}
    lib = {"attributes": {"blackbox": 1}, "cells": {"x": {"type": "$specify2", "connections": {}}}}
    assert netlist_depth({"modules": {"\\m": module, "LUT2": lib}}) == {"m": {"lut_levels": 2, "carry_chain": 2}}


@needs_yosys
def test_logic_depth_of_a_synthesized_adder(tmp_path):
    """A registered 32-bit add: one LUT level before a chain of 8 CARRY4 (synth_xilinx, xc7)."""
    src = tmp_path / "add.v"
    src.write_text("module hqflow_add32(input clk, input [31:0] a, b, output reg [31:0] y);\n"
                   "  reg [31:0] ra, rb;\n  always @(posedge clk) begin ra <= a; rb <= b; y <= ra + rb; end\n"
                   "endmodule\n")
    _, _, _, depths = yosys.synth_hierarchy("hqflow_add32", [src], "xc7", tmp_path / "work", tmp_path)
    assert depths["hqflow_add32"] == {"lut_levels": 1, "carry_chain": 8}
