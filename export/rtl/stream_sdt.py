"""The Spike-driven Transformer's ops in the streaming schedule: conv_bn / linear_bn (the weighted core with a
requantization in place of its LIF), lif (a LIF alone) and sdsa (spike-driven self-attention). Each gives
the schedule its parameters, cycle formula, memories and logic terms; both renderers read them
(hqflow_stream_wbn.v, hqflow_stream_lif.v, hqflow_stream_sdsa.v; their logic coefficients in
tables/stream_cores.yaml).
"""

from __future__ import annotations

import math

from hqflow import numerics
from hqflow.export.rtl import memfiles
from hqflow.export.rtl.stream_base import StreamOp, ident, lane_dsp, value_bits
from hqflow.export.rtl.stream_memories import Memory, window_memories
from hqflow.export.rtl.stream_weighted import ConvLif, LinearLif, rom_order
from hqflow.export.rtl.top import SCHEME_CODE

__all__ = ["SDT_OPS", "ConvBn", "LinearBn", "LifCore", "SdsaCore"]


class _Requantized:
    """conv_bn / linear_bn (hqflow_stream_wbn.v): the weighted core's geometry, ROM, folding and cycles, with
    the requantization (acc * m_int + b_int) >> SHIFT of each of the T accumulators in place of the LIF
    (hqflow_requant_unit.v, LIF_LANES lanes a cycle, the LIF unit's timing)."""

    module = "hqflow_stream_wbn"
    helpers = ("hqflow_requant_unit.v", "hqflow_stream_wlif.v")
    lut_terms = ff_terms = None  # every term of its own (not the LIF core's)

    def params(self, graph, node, inputs, lanes, lut_memories: bool = True):
        fmt = numerics.Candidate.parse(node.attrs["format"])
        x_max = int(node.attrs["x_max"])
        lanes = lanes[0] if isinstance(lanes, tuple) else lanes
        name = ident(node.name)
        params = {**self._geometry(graph, node), "P": lanes, "BITS": numerics.rom_code_bits(fmt),
                  "SCHEME": SCHEME_CODE[fmt.scheme], "ZERO_LEVEL": int(fmt.zero_level),
                  "ZP": int(node.attrs.get("zero_point", 0)), "X_BITS": value_bits(x_max), "X_MAX": x_max,
                  "ACC_BITS": int(node.attrs["acc_bits"]), "T": graph.time_steps, "LIF_LANES": lanes,
                  "OUT_BITS": value_bits(node.value_max) + 1, "SHIFT": int(node.attrs["shift"]),
                  "ROM_FILE": f'"mem/{name}_weights.mem"', "REQ_FILE": f'"mem/{name}_requant.mem"',
                  "LIST_LUTRAM": int(lut_memories)}
        params["MUL_TREE"] = int(lane_dsp(params["SCHEME"], params["BITS"], params["X_BITS"], x_max) == 0)
        return params

    def build(self, graph, node, inputs, lanes, lut_memories: bool = True):
        params = self.params(graph, node, inputs, lanes, lut_memories)
        name = ident(node.name)
        lines = memfiles.group_lines(graph, node, params["P"])[0].splitlines(keepends=True)
        files = {f"{name}_weights.mem": "".join(lines[k] for k in rom_order(params)),
                 f"{name}_requant.mem": memfiles.requant_table(graph, node, params["LIF_LANES"])}
        return {"params": params, "files": files, "lanes": params["P"], "bits": params["OUT_BITS"]}

    def lif_lanes(self, params, time_steps, nnz, target):
        return None

    def memories(self, params):
        p = params
        groups, rows = -(-p["O"] // p["P"]), p["K"] * p["K"] * p["C"]
        return [Memory("weights", p["P"] * p["BITS"], rows * groups, True),
                Memory("requant", p["LIF_LANES"] * 96, groups * (p["P"] // p["LIF_LANES"]), True),
                *window_memories(p, p["K"] + 1, p["T"] * p["X_BITS"], lists=True)]

    def dsp(self, params):
        """The requantization's multipliers, ACC_BITS x 32 signed a lane: two DSP48s each up to 18 accumulator
        bits (measured: 2 a lane at ACC_BITS 8 to 12, Yosys synth_xilinx); the products of multi-bit inputs
        (the weighted core's)."""
        lanes = min(params["LIF_LANES"], params["O"])
        return lanes * 2 * -(-params["ACC_BITS"] // 18) + super().dsp(params)

    def terms(self, params):
        """accumulators (P x T x ACC), the output words (P x T x OUT_BITS), the products (LIF_LANES x ACC)."""
        p = params
        lanes = min(p["P"], p["O"])
        return {"fixed": 1.0, "acc": lanes * p["T"] * p["ACC_BITS"], "words": lanes * p["T"] * p["OUT_BITS"],
                "products": min(p["LIF_LANES"], lanes) * p["ACC_BITS"]}


class ConvBn(_Requantized, ConvLif):
    """conv_bn: 3x3, stride 1, padding 1, requantized (no LIF)."""


class LinearBn(_Requantized, LinearLif):
    """linear_bn: a 1x1 window over the tokens, requantized (no LIF)."""


def _one_channel(graph, node) -> dict:
    """A one-channel LIF's constants as Verilog parameters: BIAS, THR (64-bit two's complement), SIGN."""
    tensors = graph.node_tensors(node.name)
    bias, thr, sign = (int(tensors[field][0]) for field in ("bias_int", "thr_int", "sign"))
    return {"BIAS": f"64'h{bias % (1 << 64):x}", "THR": f"64'h{thr % (1 << 64):x}",
            "SIGN": {1: "2'b01", -1: "2'b11", 0: "2'b00"}[sign]}


class LifCore(StreamOp):
    """lif: a LIF alone on a (signed) stream (hqflow_stream_lif.v): an element taken, its T steps, handed out."""

    module = "hqflow_stream_lif"
    last_ports = ("s",)

    def build(self, graph, node, inputs, lanes):
        params = {"SIZE": math.prod(node.shape), "T": graph.time_steps,
                  "IN_BITS": inputs[0].bits if inputs else value_bits(node.attrs["x_max"]) + 1,
                  "IN_SIGNED": int(inputs[0].signed) if inputs else 1, "V_BITS": int(node.attrs["v_bits"]),
                  "F": int(node.attrs["frac_bits"]), **_one_channel(graph, node)}
        return {"params": params, "bits": 1}

    def cycles(self, params, time_steps, nnz=None):
        """The header's: SIZE (T + 2)."""
        return params["SIZE"] * (time_steps + 2)

    def terms(self, params):
        return {"fixed": 1.0, "lif": params["T"] * params["V_BITS"]}


class SdsaCore(StreamOp):
    """sdsa (hqflow_stream_sdsa.v): q, k, v token by token; the T x D counts of k AND v and q of every token
    kept; after the last token the LIF over t of each channel's count (the mask), then q AND the mask."""

    module = "hqflow_stream_sdsa"
    in_ports = ("q", "k", "v")
    barrier = True

    def build(self, graph, node, inputs, lanes):
        tokens, dim = node.shape
        return {"params": {"N": tokens, "D": dim, "T": graph.time_steps, "COUNT_BITS": value_bits(tokens),
                           "V_BITS": int(node.attrs["v_bits"]), "F": int(node.attrs["frac_bits"]),
                           **_one_channel(graph, node)}, "bits": 1}

    def cycles(self, params, time_steps, nnz=None):
        """The header's: 2 N D + D T (LOAD, MASK, EMIT)."""
        p = params
        return 2 * p["N"] * p["D"] + p["D"] * time_steps

    def memories(self, params):
        p = params
        return [Memory("q", p["T"], p["N"] * p["D"]),
                Memory("count", p["T"] * p["COUNT_BITS"], p["D"]), Memory("mask", p["T"], p["D"])]

    def terms(self, params):
        return {"fixed": 1.0, "count": params["T"] * params["COUNT_BITS"], "lif": params["V_BITS"]}


SDT_OPS: dict[str, StreamOp] = {"conv_bn": ConvBn(), "linear_bn": LinearBn(), "lif": LifCore(), "sdsa": SdsaCore()}
