"""FPGA resource counts (LUT, FF, DSP48, BRAM36, URAM) and how one memory maps to them.

`Resources` is what every model and synthesis report counts; `resources_from_cells` reads a Yosys
netlist's cell counts in the same convention; `memory_resources` maps one RAM / ROM as Yosys 0.23
memory_libmap does (registers, LUT RAM, RAMB18 / RAMB36, URAM288), from the memory section of an
FPGA table (hqflow.fpga). The per-core models (hqflow.fpga for the layer-sequential cores,
export/rtl/stream_estimate.py for the streaming ones) build on these. NumPy-free, torch-free.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["LUTRAM_LUTS", "RESOURCE_KEYS", "ROM_BLOCK_LINES", "Resources", "memory_resources", "resources_from_cells",
           "rom_resources", "rom_tail", "total"]

RESOURCE_KEYS = ("lut", "ff", "dsp", "bram", "uram")


@dataclass(frozen=True)
class Resources:
    """FPGA resources: LUTs (logic and LUT RAM), flip-flops, DSP48 slices, BRAM in RAMB36 equivalents,
    UltraRAM blocks (URAM288, UltraScale+ only)."""

    lut: float = 0.0
    ff: float = 0.0
    dsp: float = 0.0
    bram: float = 0.0
    uram: float = 0.0

    def __add__(self, other: Resources) -> Resources:
        return Resources(*(getattr(self, k) + getattr(other, k) for k in RESOURCE_KEYS))

    def __radd__(self, other):  # sum() starts from 0
        if other == 0:
            return self
        return NotImplemented

    def scaled(self, k: float) -> Resources:
        return Resources(*(getattr(self, key) * k for key in RESOURCE_KEYS))

    def to_dict(self) -> dict:
        return {k: float(getattr(self, k)) for k in RESOURCE_KEYS}


# LUTs of each LUT RAM / shift register primitive (Vivado's "LUT as Memory" counts them among the LUTs)
LUTRAM_LUTS = {"RAM32M": 4, "RAM64M": 4, "RAM32M16": 8, "RAM64M8": 8, "RAM32X1D": 2, "RAM64X1D": 2, "RAM128X1D": 4,
               "RAM256X1D": 8, "RAM32X1S": 1, "RAM64X1S": 1, "RAM128X1S": 2, "RAM256X1S": 4, "RAM512X1S": 8,
               "SRL16E": 1, "SRLC16E": 1, "SRLC32E": 1}


def resources_from_cells(cells) -> Resources:
    """Resources of a synthesized netlist's {cell type: count} (Yosys `stat`): lut = LUT1..LUT6 plus the
    LUTs of LUT RAM / SRL cells (LUTRAM_LUTS), ff = FD*E, dsp = DSP48E1/E2, bram = RAMB36 + RAMB18 / 2,
    uram = URAM288.
    The same convention as this model's figures, so that a synthesis and an estimate compare."""
    res = dict.fromkeys(RESOURCE_KEYS, 0.0)
    for kind, n in dict(cells).items():
        kind, n = str(kind), float(n)
        if kind.startswith("LUT") and kind[3:].isdigit():
            res["lut"] += n
        elif kind in LUTRAM_LUTS:
            res["lut"] += LUTRAM_LUTS[kind] * n
        elif kind[:2] == "FD" and kind.rstrip("_1")[-1] == "E":
            res["ff"] += n
        elif kind.startswith("DSP48E"):
            res["dsp"] += n
        elif kind.startswith("RAMB36"):
            res["bram"] += n
        elif kind.startswith("RAMB18"):
            res["bram"] += n / 2
        elif kind.startswith("URAM288"):
            res["uram"] += n
    return Resources(**res)


def total(resources) -> Resources:
    """The sum of an iterable (or a dict's values) of Resources."""
    values = resources.values() if isinstance(resources, dict) else resources
    return sum(values, Resources())


# ---------------------------------------------------------------------------------------------- memories

def _prims(width_bits: int, depth: int, configs) -> list[tuple[int, int, int]]:
    return [(math.ceil(width_bits / w) * math.ceil(depth / d), w, d) for w, d in configs]


URAM_WIDTH, URAM_DEPTH, URAM_COST = 72, 4096, 1024.0  # Yosys 0.23 xilinx/urams.txt: URAM288, 4096 x 72, cost 1024


def _urams(width_bits: int, depth: int) -> int:
    """URAM288s of a RAM: Yosys packs narrow words side by side in a 72-bit row (about the bits' share)."""
    return max(math.ceil(width_bits * depth / (URAM_WIDTH * URAM_DEPTH)), math.ceil(width_bits / URAM_WIDTH))


def memory_resources(width_bits: int, depth: int, table, rom: bool = False,
                     uram: bool = False, ultra: bool = False, distributed: bool = False,
                     block: bool = False) -> Resources:
    """Resources of one memory of `depth` words of `width_bits` bits, with one synchronous read port and
    (RAM) one write port, or a ROM (`rom`: initialized, never written); `table`: an FPGA table
    (hqflow.fpga.FpgaTable), its `memory` section.

    The mapping follows Yosys 0.23 memory_libmap for xc7: every option's cost is computed and the
    cheapest wins: soft logic (bits * logic_cost_rom or logic_cost_ram per bit), LUT RAM (RAMs: primitives
    cascaded in depth, `cost` per primitive scaled by the share of its width used, as Yosys'
    `widthscale`) or block RAM (RAMB18 / RAMB36 aspect ratios,
    `cost` per primitive). Resources of each: logic ROM width * ceil(depth / rom_lut_depth) LUTs (a LUT6
    per output bit and 64 words) and `width` FFs (the output register); logic RAM `width * (depth + 1)`
    FFs (the words and the output register) and `ram_lut_per_bit` LUTs per bit; LUT RAM `luts` LUTs per
    primitive and `width` FFs; block RAM its primitives (RAMB18 = 0.5 RAMB36). With `uram` (UltraScale+,
    synthesized with -uram) a RAM may also take URAM288s (4096 x 72 each, narrow words packed several to a
    row: max(bits / 294,912, width / 72) of them, as measured; a ROM cannot: no initial contents).
    `ultra`: a RAM placed in UltraRAM by its Verilog (ram_style "ultra"): those URAM288s, whatever the cost;
    `distributed` (ram_style "distributed"): in LUT RAM, whatever the cost; `block` (ram_style "block"): in
    block RAM, whatever the cost."""
    if width_bits <= 0 or depth <= 0:
        return Resources()
    if ultra and rom:
        raise ValueError("memory_resources: a ROM cannot be UltraRAM (no initial contents)")
    m = table.memory
    bits = width_bits * depth
    if ultra:
        return Resources(uram=_urams(width_bits, depth))
    options = [(bits * (m["rom_logic_cost"] if rom else m["ram_logic_cost"]), "logic", 0)]
    if not rom:  # LUT RAM primitives, deeper ones cascaded; the cost scales with the width used (widthscale)
        n, w, d = min(_prims(width_bits, depth, m["lutram"]["configs"]))
        options.append((math.ceil(depth / d) * width_bits / w * m["lutram"]["cost"], "lutram", n))
        if distributed:
            return Resources(lut=n * m["lutram"]["luts"], ff=width_bits)
    for key, scale in (("bram18", 0.5), ("bram36", 1.0)):
        n = min(p[0] for p in _prims(width_bits, depth, m[key]["configs"]))
        options.append((n * m[key]["cost"], key, n * scale))
    if uram and not rom:  # Yosys packs narrow words side by side in a 72-bit row: about the bits' share
        n = _urams(width_bits, depth)
        options.append((n * URAM_COST, "uram", n))
    if block:
        options = [o for o in options if o[1].startswith("bram")]
    _, kind, n = min(options, key=lambda o: o[0])
    if kind == "uram":
        return Resources(uram=n)
    if kind == "logic":
        if rom:
            return Resources(lut=width_bits * math.ceil(depth / m["rom_lut_depth"]), ff=width_bits)
        return Resources(lut=bits * m["ram_lut_per_bit"], ff=bits + width_bits)
    if kind == "lutram":
        return Resources(lut=n * m["lutram"]["luts"], ff=width_bits)
    return Resources(bram=n)


# ------------------------------------------------------------------------------------- a ROM's tail in LUTs

ROM_BLOCK_LINES = 512  # the shallowest block RAM aspect (RAMB18 / DP16KD 512 x 36): a split ROM's head is a multiple


def rom_resources(width_bits: int, depth: int, table, tail: int = 0) -> Resources:
    """A ROM of `depth` lines whose last `tail` lines are forced into LUTs (hqflow_weight_rom.v's TAIL,
    rom_style "logic"): the head mapped as memory_resources maps it; the tail a LUT ROM, width *
    ceil(tail / rom_lut_depth) LUTs and `width` FFs (its output register), and `width` LUTs for the select
    between the two outputs."""
    if not tail:
        return memory_resources(width_bits, depth, table, rom=True)
    logic = Resources(lut=width_bits * (math.ceil(tail / table.memory["rom_lut_depth"]) + 1), ff=width_bits)
    return memory_resources(width_bits, depth - tail, table, rom=True) + logic


def rom_tail(width_bits: int, depth: int, table) -> int:
    """The lines of a ROM better held in LUTs than in a block RAM they would mostly leave empty: over the
    splits whose head is a multiple of ROM_BLOCK_LINES and of the tail's power-of-two span (the tail is
    addressed by the low address bits), the one of the least LUT-equivalent cost (the table's `weights`:
    LUT + 0.5 FF + 470 BRAM36 for the xc7 table), 0 (no split) unless one costs less than the whole ROM.
    E.g. 1,152 lines of 64 bits: 3 BRAM36, or 2 and 128 lines in 192 LUTs and 64 FFs (0 on a tie)."""
    weights = table.weights

    def cost(tail: int) -> float:
        r = rom_resources(width_bits, depth, table, tail)
        return sum(weights.get(k, 0.0) * getattr(r, k) for k in RESOURCE_KEYS)

    tails = [depth - head for head in range(ROM_BLOCK_LINES, depth, ROM_BLOCK_LINES)
             if head % (1 << (depth - head - 1).bit_length()) == 0]
    return min([0, *tails], key=lambda tail: (cost(tail), tail != 0))  # a tie keeps the ROM whole


def ultra_moves(moves, bram36: float, uram: float, bram_limit: float, uram_limit: float
                ) -> tuple[list, float, float]:
    """Where block RAM runs short, which memories move to UltraRAM: `moves` [(BRAM36 freed, URAM288 taken,
    key)], the most BRAM36 freed per URAM288 taken first (then the most freed, then the key), each taken
    while block RAM is over bram_limit and if URAM stays within uram_limit. Returns (the keys moved, the
    BRAM36 and URAM288 after). The RTL folding's placement (its cores) and the HLS memory account's (its
    arrays and FIFOs) both choose by it."""
    moved = []
    for freed, taken, key in sorted(moves, key=lambda m: (-m[0] / m[1], -m[0], m[2])):
        if bram36 <= bram_limit:
            break
        if uram + taken <= uram_limit:
            bram36, uram = bram36 - freed, uram + taken
            moved.append(key)
    return moved, bram36, uram
