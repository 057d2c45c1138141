"""Memory files of the RTL cores ($readmemh hex, one word a line, most significant digit first).

    weight ROM  the words of hqflow.numerics.rom (rom_encode + pack_rom, rows as export.hls.rom_codes
                orders them: conv (c, i, j) taps, linear input channels), KW = max(1, P / lanes)
                64-bit words to a line (word k in bits [64k, 64k + 64)), each row padded with zero
                words to ROW_WIDE = ceil(O / (lanes * KW)) lines; lanes = 64 // code bits
    group ROM   the streaming cores' (group_lines): one lane group a line, its P codes side by side
                (output g*P + p in bits [p*BITS, (p+1)*BITS)), G = ceil(O / P) lines a row, the padding
                lanes 0: a line is exactly what a cycle reads (no word to select from, any P); the
                streaming weighted core writes these lines channel-innermost (stream_weighted.rom_order)
    LIF tables  bias_int, thr_int ([O] each, V_BITS two's complement) and sign (2 bits: 01 = +1,
                11 = -1, 00 = 0), P channels to a line (channel g*P + p in lane p), G = ceil(O / P)
                lines, the padding lanes 0
    LIF step    the streaming LIF unit's constants (lif_step_tables, hqflow_lif_unit.v): charge
    tables      (bias_int << T, V_BITS), fire (the threshold folded into an offset, V_BITS + 3) and
                neg (1 bit), laid out as the LIF tables
No arithmetic of the model happens here: codes and tables are written as the graph holds them (the LIF
step tables are those same constants, rearranged exactly: lif_step_constants).
"""

from __future__ import annotations

import numpy as np

from hqflow import numerics
from hqflow.errors import UserError
from hqflow.export.hls.rom import rom_codes
from hqflow.ir import DeployGraph, Node
from hqflow.ops import common

__all__ = ["MAX_LANES", "allowed_lanes", "check_lanes", "choose_lanes", "group_lines", "group_text",
           "hex_lines", "lif_step_constants", "lif_step_tables", "lif_tables", "rom_lines", "rom_shape", "rom_text"]


def check_lanes(bits: int, parallel: int, what: str) -> None:
    """P must divide the 64 // bits codes of a ROM word or be a multiple of them (UserError otherwise)."""
    lanes = numerics.ROM_WORD_BITS // bits
    if parallel < 1 or (lanes % parallel and parallel % lanes):
        raise UserError(f"{what}: lanes P = {parallel} with {bits}-bit codes ({lanes} to a 64-bit word); "
                        f"expected a divisor or a multiple of {lanes}")


MAX_LANES = 64  # the most output channels a core computes per cycle


def allowed_lanes(bits: int, limit: int = MAX_LANES) -> list[int]:
    """Values of P a ROM word of `bits`-bit codes allows (check_lanes), up to `limit`: the divisors of
    the 64 // bits codes of a word, and its multiples."""
    per_word = numerics.ROM_WORD_BITS // bits
    divisors = [d for d in range(1, per_word + 1) if per_word % d == 0]
    multiples = list(range(2 * per_word, limit + 1, per_word))
    return [p for p in divisors + multiples if p <= limit]


def choose_lanes(bits: int, requested: int) -> int:
    """The allowed P nearest `requested` (the smaller one on a tie)."""
    return min(allowed_lanes(bits), key=lambda p: (abs(p - requested), p))


def rom_shape(bits: int, parallel: int, outputs: int) -> tuple[int, int]:
    """(KW 64-bit words per ROM line, ROW_WIDE lines per row) for P lanes over `outputs` codes."""
    lanes = numerics.ROM_WORD_BITS // bits
    kw = max(1, parallel // lanes)
    return kw, -(-outputs // (lanes * kw))


def hex_lines(values, width: int) -> str:
    """Non-negative ints < 2^width (Python ints) as $readmemh lines of ceil(width / 4) hex digits."""
    digits = -(-width // 4)
    return "".join(f"{int(v):0{digits}x}\n" for v in values)


def rom_text(codes: np.ndarray, bits: int, parallel: int, what: str = "rom") -> tuple[str, int, int]:
    """(ROM file text, line width in bits, lines) of codes uint64 [rows, outputs] for P lanes: the
    `numerics.pack_rom` words, KW to a line, every row padded to ROW_WIDE lines."""
    check_lanes(bits, parallel, what)
    kw, row_wide = rom_shape(bits, parallel, codes.shape[1])
    words = numerics.pack_rom(codes, bits)  # [rows, ceil(outputs / lanes)] uint64
    padded = np.zeros((len(words), row_wide * kw), np.uint64)
    padded[:, : words.shape[1]] = words
    lines = [sum(int(w) << (64 * k) for k, w in enumerate(wide))
             for row in padded.reshape(len(words), row_wide, kw) for wide in row]
    return hex_lines(lines, 64 * kw), 64 * kw, len(lines)


def rom_lines(graph: DeployGraph, node: Node, parallel: int) -> tuple[str, int, int]:
    """(ROM file text, line width in bits, lines) of a weighted node for P lanes."""
    codes, bits = rom_codes(graph, node)
    return rom_text(codes, bits, parallel, f"node {node.name}")


def group_text(codes: np.ndarray, bits: int, parallel: int) -> tuple[str, int, int]:
    """(ROM file text, line width P * bits, lines rows * G) of codes uint64 (or Python ints) [rows, outputs]: line
    r * G + g holds outputs g*P .. g*P + P - 1 of row r (output g*P + p in bits [p*bits, +bits))."""
    rows, outputs = codes.shape
    groups = -(-outputs // parallel)
    padded = np.zeros((rows, groups * parallel), object if codes.dtype == object else np.uint64)  # (object: > 64 bits)
    padded[:, :outputs] = codes
    lines = [sum(int(code) << (p * bits) for p, code in enumerate(group))
             for group in padded.reshape(rows * groups, parallel)]
    return hex_lines(lines, parallel * bits), parallel * bits, len(lines)


def group_lines(graph: DeployGraph, node: Node, parallel: int) -> tuple[str, int, int]:
    """(ROM file text, line width in bits, lines) of a weighted node, one lane group a line (group_text)."""
    codes, bits = rom_codes(graph, node)
    return group_text(codes, bits, parallel)


def lif_tables(graph: DeployGraph, node: Node, parallel: int) -> dict[str, str]:
    """{"bias", "thr", "sign"} -> file text, P channels to a line (V_BITS = the node's v_bits)."""
    consts = common.lif_consts(node.attrs, graph.node_tensors(node.name))
    v_bits = int(node.attrs["v_bits"])

    def packed(values, width: int) -> str:  # one row of [O] values, two's complement in `width` bits
        return group_text(np.array([[int(v) % (1 << width) for v in values]], np.uint64), width, parallel)[0]

    sign = [{1: 1, -1: 3, 0: 0}[int(s)] for s in consts.sign]
    return {"bias": packed(consts.bias_int, v_bits), "thr": packed(consts.thr_int, v_bits), "sign": packed(sign, 2)}


def requant_table(graph: DeployGraph, node: Node, parallel: int) -> str:
    """The requantization's table of hqflow_requant_unit.v (REQ_FILE): `parallel` channels a line, each
    {b_int (64 bits), m_int (32 bits)} in two's complement (common.requant_consts)."""
    consts = common.requant_consts(node.attrs, graph.node_tensors(node.name))
    values = [(int(b) % (1 << 64)) << 32 | int(m) % (1 << 32) for m, b in zip(consts.m_int, consts.b_int)]
    return group_text(np.array([values], object), 96, parallel)[0]


def lif_step_constants(bias_int, thr_int, sign, time_steps: int, v_bits: int) -> tuple[list, list, list]:
    """(charge, fire, neg) per channel, Python ints, of hqflow_lif_unit.v's form of lif_step: with
    x = v + (acc << F) + charge the membrane's sum (h = x >>> 1) and e = v + (acc << F) + fire,
    the neuron fires iff (e < 0 if neg else e >= 0):
        charge = bias_int << T
        fire   = charge - 2 thr       (sign +1: h >= thr  <=> x >= 2 thr)
                 charge + 2 thr - 2   (sign -1: h <= -thr <=> x < 2 - 2 thr)
                 charge + 2^(V + 1)   (sign 0 and thr <= 0: always; |x| < 2^(V - 1))
                 charge - 2^(V + 1)   (sign 0 and thr > 0: never)
        neg    = sign < 0
    Exact integers (the hardware takes them modulo 2^V and 2^(V + 3): every value it forms fits)."""
    charge = [int(b) << time_steps for b in bias_int]
    fire, neg = [], []
    for c, t, s in zip(charge, thr_int, sign):
        t, s = int(t), int(s)
        offset = -2 * t if s > 0 else 2 * t - 2 if s < 0 else (1 if t <= 0 else -1) << (v_bits + 1)
        fire.append(c + offset)
        neg.append(int(s < 0))
    return charge, fire, neg


def lif_step_tables(graph: DeployGraph, node: Node, parallel: int) -> dict[str, str]:
    """{"charge", "fire", "neg"} -> file text (lif_step_constants), P channels to a line: charge in
    V_BITS, fire in V_BITS + 3 (two's complement), neg one bit."""
    consts = common.lif_consts(node.attrs, graph.node_tensors(node.name))
    v_bits = int(node.attrs["v_bits"])
    charge, fire, neg = lif_step_constants(consts.bias_int, consts.thr_int, consts.sign, graph.time_steps, v_bits)

    def packed(values, width: int) -> str:  # one row of [O] values, two's complement in `width` bits
        return group_text(np.array([[v % (1 << width) for v in values]], object), width, parallel)[0]

    return {"charge": packed(charge, v_bits), "fire": packed(fire, v_bits + 3), "neg": packed(neg, 1)}
