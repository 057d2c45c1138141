"""A weight ROM's tail in LUTs (hqflow_weight_rom.v's TAIL, hqflow.resources.rom_tail).

The split ROM reads every line as the whole one does (Verilator, each address); the rule splits where
the tail's LUTs cost less than the block RAM it frees (and never a ROM that fills its blocks); the
estimate counts the head's block RAM and the tail's LUTs; an export with `--memory-style block` has none.
"""

from __future__ import annotations

import numpy as np
import pytest

from hqflow.export.rtl import verilator
from hqflow.export.rtl.paths import CORES
from hqflow.export.rtl.stream_memories import memory_table
from hqflow.resources import rom_resources, rom_tail
from test_rtl_stream import needs_verilator

pytestmark = pytest.mark.rtl

HARNESS = r"""
#include "Vhqflow_weight_rom.h"
#include "verilated.h"
#include <cstdio>
#include <cstdlib>
// reads address a at one rising edge, prints q (the line) after it: one hex line per address
int main(int argc, char **argv) {
    Verilated::commandArgs(argc, argv);
    const int depth = std::atoi(argv[1]);
    Vhqflow_weight_rom *rom = new Vhqflow_weight_rom;
    for (int a = 0; a < depth; ++a) {
        rom->addr = a;
        rom->clk = 0; rom->eval();
        rom->clk = 1; rom->eval();
        std::printf("%llx\n", (unsigned long long)rom->q);
    }
    rom->final();
    delete rom;
    return 0;
}
"""


@needs_verilator
@pytest.mark.parametrize("width, depth, tail", [(64, 1152, 128), (16, 2592, 544), (24, 600, 0)])
def test_split_rom_reads_every_line(tmp_path, width, depth, tail):
    rng = np.random.default_rng(depth)
    lines = [int(rng.integers(0, 1 << 62)) % (1 << width) for _ in range(depth)]
    digits = -(-width // 4)
    text = [f"{v:0{digits}x}\n" for v in lines]
    (tmp_path / "weights.mem").write_text("".join(text[:depth - tail]))
    if tail:
        (tmp_path / "weights_tail.mem").write_text("".join(text[depth - tail:]))
    (tmp_path / "tb.cpp").write_text(HARNESS)
    aw = max(1, (depth - 1).bit_length())
    exe = verilator.build("hqflow_weight_rom", [CORES / "hqflow_weight_rom.v"], tmp_path / "tb.cpp", tmp_path,
                          parameters={"WIDTH": width, "DEPTH": depth, "AW": aw, "TAIL": tail})
    proc = verilator.run(exe, [str(depth)], tmp_path, timeout=60)
    assert proc.returncode == 0, proc.stderr
    read = [int(v, 16) for v in proc.stdout.split()]
    np.testing.assert_array_equal(np.array(read, dtype=object), np.array(lines, dtype=object))


def test_rule_splits_only_what_a_block_would_mostly_waste():
    table = memory_table()
    # fc1 of the demo at P 32 (uniform-2): 1,152 lines of 64 bits: 3 BRAM36, or 2 and a 128-line tail
    assert rom_tail(64, 1152, table) == 128
    whole, split = rom_resources(64, 1152, table), rom_resources(64, 1152, table, 128)
    assert (whole.bram, split.bram) == (3.0, 2.0)
    assert (split.lut, split.ff) == (64 * (2 + 1), 64)  # two LUT6 a bit for 128 lines, the select; the register
    # a tail past 512 lines: the head a multiple of its 1,024-line span (conv2 at P 4, 4-bit codes)
    assert rom_tail(16, 2592, table) == 544
    # ROMs that fill their blocks, or are small enough for LUTs whole, are never split
    for width, depth in [(64, 1024), (32, 512), (32, 324), (8, 100), (64, 4096)]:
        assert rom_tail(width, depth, table) == 0
    # a split never costs more LUT-equivalents than the whole ROM
    weights = table.weights
    for width in (8, 16, 32, 64, 128):
        for depth in range(600, 5000, 97):
            cost = [sum(weights[k] * getattr(rom_resources(width, depth, table, t), k) for k in weights)
                    for t in (0, rom_tail(width, depth, table))]
            assert cost[1] <= cost[0]
