"""The streaming top's cores, one `StreamOp` per DeployGraph op: the Verilog module, its parameters
and memory files, the bits of its output values, its cycle formula (active cycles per image, as the
core's Verilog header documents it and `hqflow rtlsim` checks), the lane counts the folding may give
it, the work an input trace costs it, and its hardware: the memories it declares (`memories`), the
logic terms of its LUT / FF model (`terms`, coefficients fitted by stream_estimate.py) and its DSP48s
(`dsp`). `export/rtl/stream.py` folds and wires them; no code branches on an op's name (`STREAM_OPS`
is checked against hqflow.ops.OPS at import).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from hqflow import numerics
from hqflow.errors import UserError
from hqflow.export.rtl import memfiles
from hqflow.export.rtl.top import SCHEME_CODE, _check_window, _ident, ssa_lif_consts
from hqflow.ir import DeployGraph, Node
from hqflow.export.rtl.stream_memories import Memory, memory_table, rom_geometry, window_memories
from hqflow.ops import check_backend
from hqflow.resources import memory_resources

__all__ = ["DSP_MIN_PRODUCT_BITS", "FIFO", "MAX_LIF_CHUNKS", "MAX_STREAM_LANES", "Memory", "STREAM_OPS", "Stream",
           "StreamOp", "ident", "lane_dsp", "selects", "value_bits"]

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


def selects(x_bits: int, x_max: int | None) -> bool:
    """Inputs in {0, 1, 2} (a residual sum of two spike maps): hqflow_stream_wlif.v selects 0, w or 2 w."""
    return x_bits == 2 and x_max is not None and x_max <= 2


def value_bits(value_max: int) -> int:
    """Bits of the unsigned values 0..value_max (at least 1)."""
    return max(1, int(value_max).bit_length())


@dataclass(frozen=True)
class Stream:
    """The output of one node: `size` elements an image, each T values of `bits` bits."""
    ident: str
    node: str
    bits: int
    width: int
    size: int


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
    frame = False  # the top's input: its stream is in_tvalid / in_tdata, [C, H, W] frames
    alias = False  # no core and no stream of its own: its stream is its input's (the identity)
    logits = False  # the top's output: the last core, streaming the logits, no node stream

    def build(self, graph: DeployGraph, node: Node, inputs: list[Stream], lanes: int) -> dict:
        raise NotImplementedError

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


def _lanes_for(bits: int, outputs: int, lanes: int) -> list[int]:
    """The P a ROM of `bits`-bit codes allows, up to `lanes`, and none beyond the first that covers
    every output in one group (more lanes would idle)."""
    allowed = [p for p in memfiles.allowed_lanes(bits, MAX_STREAM_LANES) if p <= lanes]
    covering = [p for p in allowed if p >= outputs]
    return [p for p in allowed if p < outputs] + covering[:1]


class MaxPool(StreamOp):
    module = "hqflow_stream_pool"
    ultra_ram = True

    def build(self, graph, node, inputs, lanes):
        _check_window(node, 3, 2, 1, "maxpool")
        if inputs[0].bits != 1:
            raise UserError(f"node {node.name}: maxpool of {inputs[0].bits}-bit values; the RTL core pools spikes")
        c, h, w = graph.node(node.inputs[0]).shape
        return {"params": {"H": h, "W": w, "C": c, "K": 3, "S": 2, "PAD": 1, "T": graph.time_steps}, "bits": 1}

    def cycles(self, params, time_steps, nnz=None):
        p = params
        ho = (p["H"] + 2 * p["PAD"] - p["K"]) // p["S"] + 1
        wo = (p["W"] + 2 * p["PAD"] - p["K"]) // p["S"] + 1
        return ho * (1 + wo * p["C"] * (p["K"] + 1))

    def memories(self, params):
        return window_memories(params, params["K"] + params["S"], params["T"], masks=False)

    def terms(self, params):
        return {"fixed": 1.0, "words": params["T"]}


class Add(StreamOp):
    module = "hqflow_stream_add"
    joins = True

    def build(self, graph, node, inputs, lanes):
        out_bits = value_bits(node.value_max)
        return {"params": {"T": graph.time_steps, "A_BITS": inputs[0].bits, "B_BITS": inputs[1].bits,
                           "OUT_BITS": out_bits, "SIZE": math.prod(node.shape)}, "bits": out_bits}

    def cycles(self, params, time_steps, nnz=None):
        return params["SIZE"]

    def terms(self, params):
        return {"fixed": 1.0, "sums": params["T"] * params["OUT_BITS"]}


class Ssa(StreamOp):
    module = "hqflow_stream_ssa"
    ff_terms = ("fixed", "acc", "lif")  # y and the membranes; the kv rows are in RAM
    barrier = True
    ultra_ram = True  # q, k and v (the kv rows are wide and shallow: block RAM)

    def build(self, graph, node, inputs, lanes):
        """lanes: the kv rows' SPLIT (0 or 1: whole rows; fold_fixed chooses it)."""
        tokens, dim = node.shape
        consts = ssa_lif_consts(graph, node)
        v_bits = int(node.attrs["v_bits"])
        params = {"N": tokens, "D": dim, "HEADS": int(node.attrs["num_heads"]), "T": graph.time_steps,
                  "ACC_BITS": int(node.attrs["acc_bits"]), "V_BITS": v_bits, "F": int(node.attrs["frac_bits"]),
                  "BIAS": f"64'h{int(consts.bias_int[0]) % (1 << 64):x}",
                  "THR": f"64'h{int(consts.thr_int[0]) % (1 << 64):x}", "SIGN": int(consts.sign[0])}
        if lanes > 1:
            params["SPLIT"] = int(lanes)
        return {"bits": 1, "params": params}

    def cycles(self, params, time_steps, nnz=None):
        p = params
        split, hd = p.get("SPLIT", 1), p["D"] // p["HEADS"]
        return p["N"] * (1 + p["D"] + split * p["D"]) + 1 + p["N"] * p["HEADS"] * (split * hd + time_steps + 2)

    def fold_fixed(self, graph, node, time_steps, target):
        """The kv rows' SPLIT: of the splits (divisors of HD) whose cycles meet `target`, the one with
        the fewest block RAMs for the kv words (then LUTs), the smallest of those (the fastest)."""
        params = self.build(graph, node, [], 1)["params"]
        hd = params["D"] // params["HEADS"]
        table = memory_table()

        def cost(split: int) -> tuple:
            kv = next(m for m in self.memories({**params, "SPLIT": split}) if m.name == "kv")
            mapped = memory_resources(kv.width, kv.depth, table)
            return mapped.bram, mapped.lut, split

        meeting = [s for s in range(1, hd + 1) if hd % s == 0 and self.cycles({**params, "SPLIT": s}, time_steps) <= target]
        return min(meeting or [1], key=cost)

    def memories(self, params):
        p = params
        hs, kv_bits = p["D"] // p["HEADS"] // p.get("SPLIT", 1), value_bits(p["N"])
        nd, ring = p["N"] * p["D"], 1 << (2 * p["D"] - 1).bit_length()  # k and v: rings of two tokens
        return [Memory("q", p["T"], nd, ultra=bool(p.get("ULTRA"))),
                *(Memory(name, p["T"], min(ring, nd)) for name in ("k", "v")),
                Memory("kv", hs * p["T"] * kv_bits, p["D"] * p.get("SPLIT", 1))]

    def terms(self, params):
        """y (HD x T x ACC: AND-gated adds and registers), kv slice updates (HD / SPLIT x T x KV bits),
        the LIF (HD x V)."""
        p = params
        hd = p["D"] // p["HEADS"]
        return {"fixed": 1.0, "acc": hd * p["T"] * p["ACC_BITS"],
                "kv": hd // p.get("SPLIT", 1) * p["T"] * value_bits(p["N"]), "lif": hd * p["V_BITS"]}


class Head(StreamOp):
    module = "hqflow_stream_head"
    logits = True

    def lane_choices(self, graph, node, lanes):
        bits = numerics.rom_code_bits(numerics.Candidate.parse(node.attrs["format"]))
        return _lanes_for(bits, node.shape[0], lanes)

    def cycle_params(self, graph, node, inputs, lanes):
        tokens, channels = graph.node(node.inputs[0]).shape
        return {"N": tokens, "C": channels, "K": node.shape[0], "P": lanes}

    def params(self, graph, node, inputs, lanes):
        fmt = numerics.Candidate.parse(node.attrs["format"])
        name = ident(node.name)
        tokens, channels = graph.node(node.inputs[0]).shape
        in_bits = inputs[0].bits if inputs else value_bits(graph.node(node.inputs[0]).value_max)
        return {"N": tokens, "C": channels, "K": node.shape[0], "P": lanes, "BITS": numerics.rom_code_bits(fmt),
                "SCHEME": SCHEME_CODE[fmt.scheme], "ZERO_LEVEL": int(fmt.zero_level),
                "ZP": int(node.attrs.get("zero_point", 0)), "T": graph.time_steps, "IN_BITS": in_bits,
                "SUM_BITS": value_bits(node.attrs["x_max"]), "ACC_BITS": int(node.attrs["acc_bits"]),
                "LOGIT_BITS": int(node.attrs["logit_bits"]), "BF": int(node.attrs["bias_frac_bits"]),
                "ROM_FILE": f'"mem/{name}_weights.mem"', "BIAS_FILE": f'"mem/{name}_bias.mem"'}

    def build(self, graph, node, inputs, lanes):
        params = self.params(graph, node, inputs, lanes)
        name = ident(node.name)
        logit_bits = params["LOGIT_BITS"]
        bias = [int(b) % (1 << logit_bits) for b in graph.tensor(node.name, "bias_int")]
        classes = node.shape[0]
        groups = -(-classes // lanes)
        bias += [0] * (groups * lanes - classes)
        lines = [sum(bias[g * lanes + p] << (p * logit_bits) for p in range(lanes)) for g in range(groups)]
        files = {f"{name}_weights.mem": memfiles.rom_lines(graph, node, lanes)[0],
                 f"{name}_bias.mem": memfiles.hex_lines(lines, lanes * logit_bits)}
        return {"params": params, "files": files, "lanes": lanes, "bits": None}

    def cycles(self, params, time_steps, nnz=None):
        p = params
        return p["N"] * p["C"] + -(-p["K"] // p["P"]) * (p["C"] + 2)

    def memories(self, params):
        p = params
        width, depth = rom_geometry(p, p["K"], p["C"])
        return [Memory("weights", width, depth, True),
                Memory("bias", p["P"] * p["LOGIT_BITS"], -(-p["K"] // p["P"]), True)]

    def terms(self, params):
        """the channel sums' ring (C x SUM_BITS), the accumulators and logits (P x ACC, P x LOGIT_BITS)."""
        p = params
        lanes = min(p["P"], p["K"])
        return {"fixed": 1.0, "ring": p["C"] * p["SUM_BITS"], "acc": lanes * p["ACC_BITS"],
                "logits": lanes * p["LOGIT_BITS"]}

    def dsp(self, params):
        return min(params["P"], params["K"]) * lane_dsp(params["SCHEME"], params["BITS"], params["SUM_BITS"])


class FifoCore(StreamOp):
    """hqflow_fifo.v (no DeployGraph op: the schedule puts it on a residual add's skip input and after a
    barrier core); params WIDTH, DEPTH (its words: an image's elements; tlast is counted, not stored)."""

    module = "hqflow_fifo"

    def memories(self, params):
        return [Memory("words", params["WIDTH"], params["DEPTH"])]

    def terms(self, params):
        return {"fixed": 1.0, "width": params["WIDTH"]}


FIFO = FifoCore()


class Frame(StreamOp):
    """input: the top's input stream (in_tvalid ...), [C, H, W] frames, no core."""

    has_core = False
    frame = True


class Alias(StreamOp):
    """tokens: the identity, no core: its stream is its input's."""

    has_core = False
    alias = True


# the weighted ops live in stream_weighted.py (they build on StreamOp, defined above)
from hqflow.export.rtl.stream_weighted import ConvLif, LinearLif  # noqa: E402

STREAM_OPS: dict[str, StreamOp] = {"input": Frame(), "conv_lif": ConvLif(), "linear_lif": LinearLif(),
                                   "maxpool": MaxPool(), "add": Add(), "tokens": Alias(), "ssa": Ssa(),
                                   "head": Head()}
check_backend(STREAM_OPS, "the streaming RTL top (export/rtl/stream_ops.py STREAM_OPS)")
