"""The weight ROMs: a weighted node's codes, rows as the kernels read them, packed 64 bits to a word.

The code and word layout (uniform-b: w_int; po2(z)-b: [negative : 1][shift : b - 1], the all-ones
shift being zero for po2z; fp32: the 32-bit two's complement fixed point; 64 // BITS codes to a
64-bit word) is defined once, in hqflow.numerics.rom (rom_encode, rom_decode, pack_rom,
unpack_rom). Here only the row order: row r holds input r's codes for all outputs: conv rows are
(c, i, j) taps, linear and head rows input channels.
"""

from __future__ import annotations

import numpy as np

from hqflow import numerics
from hqflow.ir import DeployGraph, Node
from hqflow.numerics import pack_rom  # noqa: F401  (the writer packs with it)


def rom_codes(graph: DeployGraph, node: Node) -> tuple[np.ndarray, int]:
    """(codes uint64 [rows, outputs], code bits) of a weighted node, rows as the kernels read them."""
    fmt = numerics.Candidate.parse(node.attrs["format"])
    codes = numerics.rom_encode(fmt, graph.w_eff(node), int(node.attrs.get("zero_point", 0)), f"node {node.name}")
    outputs = codes.shape[0]
    return codes.reshape(outputs, -1).T.copy(), numerics.rom_code_bits(fmt)  # [O, C(, 3, 3)] -> rows [C(*9), O]
