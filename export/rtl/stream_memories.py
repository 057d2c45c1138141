"""The memories the streaming cores declare (stream_ops.py's `StreamOp.memories`): their shapes as the
Verilog lays them out, for the resource estimate (hqflow.resources.memory_resources maps each as Yosys
does) and the folding's choices; and the windows' geometry (`window_counts`: the work of a window core).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

__all__ = ["Memory", "memory_table", "rom_geometry", "window_counts", "window_memories"]


@dataclass(frozen=True)
class Memory:
    """One memory a core declares: `depth` words of `width` bits (rom: read-only, from a file; ultra: a
    RAM the core's ULTRA parameter puts in UltraRAM; tail: a ROM's last lines, held in LUTs; distributed:
    a RAM in LUT RAM, ram_style "distributed"; block: in block RAM, ram_style "block")."""
    name: str
    width: int
    depth: int
    rom: bool = False
    ultra: bool = False
    tail: int = 0
    distributed: bool = False
    block: bool = False


def window_memories(p: dict, slots: int, element_bits: int, lists: bool) -> list[Memory]:
    """hqflow_window.v's RAMs: a bank of W*C elements per row slot, and with `lists` (LIST 1) per slot
    the lists of nonzero channels (W*C entries of clog2(C) bits) and their counts (W of clog2(C + 1)
    bits), in LUT RAM where LIST_LUTRAM is 1 (else the lists and the element banks in block RAM). ULTRA puts
    the element banks in UltraRAM."""
    lutram = bool(p.get("LIST_LUTRAM"))
    ultra, block = bool(p.get("ULTRA")), lists and not lutram
    banks = [Memory(f"row{b}", element_bits, p["W"] * p["C"], ultra=ultra, block=block and not ultra)
             for b in range(slots)]
    if not lists:
        return banks
    entry, count = max(1, (p["C"] - 1).bit_length()), p["C"].bit_length()
    return banks + [m for b in range(slots) for m in (Memory(f"list{b}", entry, p["W"] * p["C"], distributed=lutram,
                                                              block=not lutram),
                                                       Memory(f"count{b}", count, p["W"], distributed=lutram))]


@functools.lru_cache(maxsize=1)
def memory_table():
    """The FPGA table whose memory rules map a RAM (hqflow.fpga; the folding's block RAM counts)."""
    from hqflow.fpga import load_fpga_table

    return load_fpga_table()


def rom_geometry(p: dict, outputs: int, rows: int) -> tuple[int, int]:
    """(width, depth) of a weight ROM of 64-bit words (hqflow_weight_rom.v as hqflow_stream_head addresses it):
    64-bit words of 64 / BITS codes, KW words a line, ceil(G / GPW) lines a row of the weight matrix."""
    codes = 64 // p["BITS"]
    kw = p["P"] // codes if p["P"] > codes else 1
    per_line = codes * kw // p["P"]
    groups = -(-outputs // p["P"])
    return 64 * kw, rows * -(-groups // per_line)


def window_counts(per_pixel: np.ndarray, kernel: int, padding: int) -> np.ndarray:
    """[B, HO, WO]: the sum of `per_pixel` [B, H, W] over each K x K window (stride 1, zero padding)."""
    b, h, w = per_pixel.shape
    padded = np.zeros((b, h + 2 * padding, w + 2 * padding), per_pixel.dtype)
    padded[:, padding:padding + h, padding:padding + w] = per_pixel
    ho, wo = h + 2 * padding - kernel + 1, w + 2 * padding - kernel + 1
    return sum(padded[:, i:i + ho, j:j + wo] for i in range(kernel) for j in range(kernel))
