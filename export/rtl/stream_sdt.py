"""The Spike-driven Transformer's ops in the streaming schedule: conv_bn / linear_bn (the weighted core with a
requantization in place of its LIF), lif (a LIF alone) and sdsa (spike-driven self-attention). Each gives
the schedule its parameters, cycle formula, memories and logic terms; both renderers read them. Their
Verilog cores are not written yet (`rtl_core` False): the HLS export renders them, the RTL export
refuses them by name, and the resource estimate counts their memories only (no logic coefficients).
"""

from __future__ import annotations

import math

from hqflow import numerics
from hqflow.export.rtl.stream_base import StreamOp, value_bits
from hqflow.export.rtl.stream_memories import Memory, window_memories
from hqflow.export.rtl.stream_weighted import ConvLif, LinearLif
from hqflow.export.rtl.top import SCHEME_CODE

__all__ = ["ConvBn", "LinearBn", "LifCore", "SdsaCore"]


class _Requantized:
    """conv_bn / linear_bn: the weighted core's geometry, ROM and cycles; its output stage, in place of
    the LIF, the requantization (acc * m_int + b_int) >> SHIFT of each of the T accumulators."""

    module = "hqflow_stream_wbn"
    rtl_core = False

    def params(self, graph, node, inputs, lanes, lut_memories: bool = True):
        fmt = numerics.Candidate.parse(node.attrs["format"])
        x_max = int(node.attrs["x_max"])
        lanes = lanes[0] if isinstance(lanes, tuple) else lanes
        return {**self._geometry(graph, node), "P": lanes, "LIF_LANES": lanes, "BITS": numerics.rom_code_bits(fmt),
                "SCHEME": SCHEME_CODE[fmt.scheme], "ZERO_LEVEL": int(fmt.zero_level),
                "ZP": int(node.attrs.get("zero_point", 0)), "X_BITS": value_bits(x_max), "X_MAX": x_max,
                "ACC_BITS": int(node.attrs["acc_bits"]), "OUT_BITS": value_bits(node.value_max) + 1,
                "SHIFT": int(node.attrs["shift"]), "T": graph.time_steps}

    def build(self, graph, node, inputs, lanes, lut_memories: bool = True):
        params = self.params(graph, node, inputs, lanes, lut_memories)
        return {"params": params, "files": {}, "lanes": params["P"], "bits": params["OUT_BITS"]}

    def lif_lanes(self, params, time_steps, nnz, target):
        return None

    def memories(self, params):
        p = params
        groups, rows = -(-p["O"] // p["P"]), p["K"] * p["K"] * p["C"]
        return [Memory("weights", p["P"] * p["BITS"], rows * groups, True),
                Memory("requant", 64 + 32, p["O"], True),  # m_int and b_int of each output channel
                *window_memories(p, p["K"] + 1, p["T"] * p["X_BITS"], lists=True)]

    def terms(self, params):
        p = params
        lanes = min(p["P"], p["O"])
        return {"fixed": 1.0, "acc": lanes * p["T"] * p["ACC_BITS"], "words": lanes * p["T"] * p["OUT_BITS"]}


class ConvBn(_Requantized, ConvLif):
    """conv_bn: 3x3, stride 1, padding 1, requantized (no LIF)."""


class LinearBn(_Requantized, LinearLif):
    """linear_bn: a 1x1 window over the tokens, requantized (no LIF)."""


class LifCore(StreamOp):
    """lif: a LIF alone on a signed fixed-point stream, one element a cycle (the T steps unrolled)."""

    module = "hqflow_stream_lif"
    rtl_core = False

    def build(self, graph, node, inputs, lanes):
        return {"params": {"SIZE": math.prod(node.shape), "T": graph.time_steps, "IN_BITS": inputs[0].bits,
                           "V_BITS": int(node.attrs["v_bits"]), "F": int(node.attrs["frac_bits"])}, "bits": 1}

    def cycles(self, params, time_steps, nnz=None):
        return params["SIZE"]

    def terms(self, params):
        return {"fixed": 1.0, "lif": params["T"] * params["V_BITS"]}


class SdsaCore(StreamOp):
    """sdsa: q, k, v token by token; the T x D counts of k AND v and q of every token kept; after the last
    token the LIF over t of each channel's count (the mask), then q AND the mask, token by token."""

    module = "hqflow_stream_sdsa"
    rtl_core = False
    in_ports = ("q", "k", "v")
    barrier = True
    ultra_ram = True  # q of every token

    def build(self, graph, node, inputs, lanes):
        tokens, dim = node.shape
        return {"params": {"N": tokens, "D": dim, "T": graph.time_steps, "COUNT_BITS": value_bits(tokens),
                           "V_BITS": int(node.attrs["v_bits"]), "F": int(node.attrs["frac_bits"])}, "bits": 1}

    def cycles(self, params, time_steps, nnz=None):
        p = params
        return 2 * p["N"] * p["D"] + p["D"]

    def memories(self, params):
        p = params
        return [Memory("q", p["T"], p["N"] * p["D"], ultra=bool(p.get("ULTRA"))),
                Memory("count", p["T"] * p["COUNT_BITS"], p["D"]), Memory("mask", p["T"], p["D"])]

    def terms(self, params):
        return {"fixed": 1.0, "count": params["T"] * params["COUNT_BITS"], "lif": params["V_BITS"]}
