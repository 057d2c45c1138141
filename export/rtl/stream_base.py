"""What every streaming core shares: the `StreamOp` interface (module, parameters, cycle formula,
folding hooks, memories, LUT / FF terms, DSP48s), a node's output `Stream`, and the lane and DSP48 rules
of the weighted datapaths. stream_ops.py and stream_weighted.py define one StreamOp per DeployGraph op.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hqflow.export.rtl import memfiles
from hqflow.numerics import value_bits
from hqflow.export.rtl.stream_memories import Memory
from hqflow.export.rtl.top import SCHEME_CODE, _ident
from hqflow.ir import DeployGraph, Node

__all__ = ["DSP_MIN_PRODUCT_BITS", "MAX_LIF_CHUNKS", "MAX_STREAM_LANES", "Stream", "StreamOp", "ident",
           "lane_dsp", "lanes_for", "selects", "value_bits"]

MAX_STREAM_LANES = 256  # the most output channels a streaming weighted core computes per cycle
MAX_LIF_CHUNKS = 64  # a weighted core's LIF takes at most this many passes over its lanes per step
ident = _ident  # a node's Verilog identifier, the same in both architectures
# Yosys maps a multi-bit input's product w_eff x x (hqflow_lanes.v) to a DSP48 when its operands are
# wide enough for mul2dsp after word-size reduction: measured, a uniform-b weight times an X-bit input
# takes one when b + X >= DSP_MIN_PRODUCT_BITS (uniform-4 x 3-bit sums and x 15-bit event counts do;
# uniform-4 x 2-bit sums and 2-bit weights x 3-bit sums stay in LUTs); a po2 weight is a shift (no
# multiplier); an fp32 weight (32 bits, more than a DSP48's 25-bit port) takes two
DSP_MIN_PRODUCT_BITS = 7


def lane_dsp(scheme: int, bits: int, x_bits: int, x_max: int | None = None) -> int:
    """DSP48s of one lane's product of a `bits`-bit code of `scheme` (SCHEME_CODE) and an x_bits input
    of at most x_max (None: 2^x_bits - 1)."""
    if x_bits <= 1 or scheme == SCHEME_CODE["po2"] or selects(x_bits, x_max):
        return 0  # a spike gates the weight; a power of two shifts the input; 0 / w / 2 w is a select
    if scheme == SCHEME_CODE["fp32"]:
        return 2
    return 1 if bits + x_bits >= DSP_MIN_PRODUCT_BITS else 0


def mul_latency(x_bits: int, x_max: int | None) -> int:
    """Cycles a weighted core's products of multi-bit inputs take (hqflow_lanes_piped: w_eff registered, then
    ceil(clog2(x_bits) / 2) registers in the product): 0 for spikes and 0 / w / 2 w selects."""
    if x_bits <= 1 or selects(x_bits, x_max):
        return 0
    return 1 + ((x_bits - 1).bit_length() + 1) // 2


def selects(x_bits: int, x_max: int | None) -> bool:
    """Inputs in {0, 1, 2} (a residual sum of two spike maps): hqflow_stream_wlif.v selects 0, w or 2 w."""
    return x_bits == 2 and x_max is not None and x_max <= 2


@dataclass(frozen=True)
class Stream:
    """The output of one node: `size` elements an image, each T values of `bits` bits (two's complement
    where `signed`: the membrane shortcut's fixed-point values)."""
    ident: str
    node: str
    bits: int
    width: int
    size: int
    signed: bool = False


# ---- one StreamOp per op: parameters, files, output bits, cycle formula, hardware --------------------


class StreamOp:
    """An op's streaming core. `build` returns the core's module, params, files, lanes and output bits;
    `cycles(params, T, nnz)` its active cycles per image (the formula in its Verilog header; nnz: the
    event-driven cores' nonzero input elements in each output pixel's window, None: every element); a
    weighted op also gives `lane_choices` (the P its ROM allows) for the folding and `nnz` (its count
    from an input trace)."""

    module = ""
    has_core = True  # input and tokens have none (the top's input stream; the identity)
    barrier = False  # it emits its whole output only after its whole input (a FIFO decouples its consumer)
    joins = False  # it joins two streams that a whole map may separate (a fork branch into it gets a FIFO)
    ultra_ram = False  # its Verilog takes ULTRA: 1 puts its large RAMs (the `ultra` memories) in UltraRAM
    lut_memories = False  # its build and params take lut_memories (its small memories in LUTs: plan_stream)
    frame = False  # the top's input: its stream is in_tvalid / in_tdata, [C, H, W] frames
    alias = False  # no core and no stream of its own: its stream is its input's (the identity)
    logits = False  # the top's output: the last core, streaming the logits, no node stream
    helpers: tuple[str, ...] = ()  # the core files its module instantiates beyond the shared library
    in_ports = ("s",)  # its AXI-Stream input ports' prefixes, in the op's input order (output: m)
    last_ports: tuple[str, ...] = ()  # the input ports that take tlast too

    def build(self, graph: DeployGraph, node: Node, inputs: list[Stream], lanes: int) -> dict:
        raise NotImplementedError

    def rtl_refusal(self, params: dict) -> str | None:
        """Why the RTL export cannot render this core with `params` (None: it can); the HLS export renders
        every core of the schedule."""
        return None

    def cycles(self, params: dict, time_steps: int, nnz: float | None = None) -> float:
        raise NotImplementedError

    def lane_choices(self, graph: DeployGraph, node: Node, lanes: int) -> list[int]:
        return [0]

    def nnz(self, graph: DeployGraph, node: Node, x: np.ndarray) -> np.ndarray | None:
        """Per sample, the nonzero input elements the core visits in an image (its cycles' `nnz`, e.g. per output
        pixel [B, HO WO]); x: its input [T, B, ...]."""
        return None

    def params(self, graph: DeployGraph, node: Node, inputs: list[Stream], lanes) -> dict:
        """Its Verilog parameters at `lanes`, without its memory files (for folding and estimates)."""
        return self.build(graph, node, inputs, lanes)["params"]

    def cycle_params(self, graph: DeployGraph, node: Node, inputs: list[Stream], lanes: int) -> dict:
        """The parameters its cycle formula reads, without writing memory files."""
        return self.build(graph, node, inputs, lanes)["params"]

    def lif_lanes(self, params: dict, time_steps: int, nnz: float | None, target: int) -> int | None:
        """The fewest LIF lanes that keep its cycles within `target` (None: it has no weighted LIF)."""
        return None

    def fold_fixed(self, graph: DeployGraph, node: Node, time_steps: int, target: int) -> int | None:
        """A core without lanes: the folding of its datapath within `target` (passed to `build` as its
        `lanes`), None: it has none."""
        return None

    def memories(self, params: dict) -> list[Memory]:
        """The RAMs and ROMs its Verilog declares (the estimate maps each as Yosys does)."""
        return []

    def terms(self, params: dict) -> dict[str, float]:
        """The logic terms of its LUT / FF model, LUT = sum_k c_k term_k (coefficients fitted per module
        on synthesized cores, the memories' own LUTs / FFs apart): "fixed" 1, then what scales."""
        return {"fixed": 1.0}

    def dsp(self, params: dict) -> int:
        """Its DSP48 slices (multipliers Yosys maps to one)."""
        return 0

    lut_terms: tuple[str, ...] | None = None  # the terms of the LUT model (None: all of `terms`)
    ff_terms: tuple[str, ...] | None = None  # the terms that hold registers (the FF model's; None: all)


def lanes_for(bits: int, outputs: int, lanes: int) -> list[int]:
    """The P a ROM of `bits`-bit codes allows, up to `lanes`, and none beyond the first that covers
    every output in one group (more lanes would idle)."""
    allowed = [p for p in memfiles.allowed_lanes(bits, MAX_STREAM_LANES) if p <= lanes]
    covering = [p for p in allowed if p >= outputs]
    return [p for p in allowed if p < outputs] + covering[:1]
