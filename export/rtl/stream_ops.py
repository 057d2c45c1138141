"""The streaming top's cores, one `StreamOp` per DeployGraph op: the Verilog module, its parameters
and memory files, the bits of its output values, its cycle formula (active cycles per image, as the
core's Verilog header documents it and `hqflow rtlsim` checks), the lane counts the folding may give
it, the work an input trace costs it, and its hardware: the memories it declares (`memories`), the
logic terms of its LUT / FF model (`terms`, coefficients fitted by stream_estimate.py) and its DSP48s
(`dsp`). `export/rtl/stream.py` folds and wires them; no code branches on an op's name (`STREAM_OPS`,
this module's cores and those of stream_weighted.py and stream_sdt.py, each module's table beside its
classes, is checked against hqflow.ops.OPS at import).
"""

from __future__ import annotations

import math

from hqflow import numerics
from hqflow.export.rtl import memfiles
from hqflow.export.rtl.stream_base import StreamOp, ident, lane_dsp, lanes_for, mul_latency, value_bits
from hqflow.export.rtl.stream_memories import Memory, memory_table, rom_geometry, window_memories
from hqflow.export.rtl.stream_sdt import SDT_OPS
from hqflow.export.rtl.stream_weighted import WEIGHTED_OPS
from hqflow.export.rtl.top import SCHEME_CODE, _check_window, ssa_lif_consts
from hqflow.ops import check_backend
from hqflow.resources import memory_resources

__all__ = ["FIFO", "STREAM_OPS"]


class MaxPool(StreamOp):
    module = "hqflow_stream_pool"
    ultra_ram = True

    def build(self, graph, node, inputs, lanes):
        """Spikes (the Verilog core's, and an OR), or multi-bit values (BITS, SIGNED: the Spike-driven
        Transformer's BN outputs; a per-value max, in HLS only)."""
        _check_window(node, 3, 2, 1, "maxpool")
        c, h, w = graph.node(node.inputs[0]).shape
        params = {"H": h, "W": w, "C": c, "K": 3, "S": 2, "PAD": 1, "T": graph.time_steps}
        if inputs and inputs[0].bits > 1:
            params.update(BITS=inputs[0].bits, SIGNED=int(inputs[0].signed))
        return {"params": params, "bits": params.get("BITS", 1)}

    def rtl_refusal(self, params):
        bits = params.get("BITS", 1)
        return None if bits == 1 else f"the Verilog pool takes spikes, not {bits}-bit values (the HLS export pools them)"

    def cycles(self, params, time_steps, nnz=None):
        p = params
        ho = (p["H"] + 2 * p["PAD"] - p["K"]) // p["S"] + 1
        wo = (p["W"] + 2 * p["PAD"] - p["K"]) // p["S"] + 1
        return ho * (1 + wo * p["C"] * (p["K"] + 1))

    def memories(self, params):
        return window_memories(params, params["K"] + params["S"], params["T"] * params.get("BITS", 1), lists=False)

    def terms(self, params):
        return {"fixed": 1.0, "words": params["T"] * params.get("BITS", 1)}


class Add(StreamOp):
    module = "hqflow_stream_add"
    in_ports, last_ports = ("a", "b"), ("a",)
    joins = True

    def build(self, graph, node, inputs, lanes):
        """Signed inputs (the membrane shortcut's) add A_SIGNED / B_SIGNED and the sum's sign bit."""
        is_signed = [bool(getattr(stream, "signed", False)) for stream in inputs]
        out_bits = value_bits(node.value_max) + any(is_signed)
        params = {"T": graph.time_steps, "A_BITS": inputs[0].bits if inputs else 1,
                  "B_BITS": inputs[1].bits if inputs else 1, "OUT_BITS": out_bits, "SIZE": math.prod(node.shape)}
        params.update({f"{port}_SIGNED": 1 for port, signed in zip("AB", is_signed) if signed})
        return {"params": params, "bits": out_bits}

    def cycles(self, params, time_steps, nnz=None):
        return params["SIZE"]

    def terms(self, params):
        return {"fixed": 1.0, "sums": params["T"] * params["OUT_BITS"]}


class Ssa(StreamOp):
    module = "hqflow_stream_ssa"
    in_ports = ("q", "k", "v")
    ff_terms = ("fixed", "acc", "lif")  # y and the membranes; the kv rows are in RAM
    barrier = True
    ultra_ram = True  # q, k and v (the kv rows are wide and shallow: block RAM)

    def build(self, graph, node, inputs, lanes):
        """lanes: the kv rows' SPLIT (0 or 1: whole rows; fold_fixed chooses it)."""
        tokens, dim = node.shape
        consts = ssa_lif_consts(graph, node)
        v_bits = int(node.attrs["v_bits"])
        (charge,), (fire,), (neg,) = memfiles.lif_step_constants(consts.bias_int[:1], consts.thr_int[:1], consts.sign[:1],
                                                                 graph.time_steps, v_bits)
        params = {"N": tokens, "D": dim, "HEADS": int(node.attrs["num_heads"]), "T": graph.time_steps,
                  "ACC_BITS": int(node.attrs["acc_bits"]), "V_BITS": v_bits, "F": int(node.attrs["frac_bits"]),
                  "CHARGE": f"64'h{charge % (1 << v_bits):x}", "FIRE": f"128'h{fire % (1 << (v_bits + 3)):x}",
                  "NEG": neg}
        if lanes > 1:
            params["SPLIT"] = int(lanes)
        return {"bits": 1, "params": params}

    def cycles(self, params, time_steps, nnz=None):
        p = params
        split, hd = p.get("SPLIT", 1), p["D"] // p["HEADS"]
        return p["N"] * (2 + p["D"] + split * p["D"]) + p["N"] * p["HEADS"] * (split * hd + time_steps + 4)

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
        return lanes_for(bits, node.shape[0], lanes)

    def cycle_params(self, graph, node, inputs, lanes):
        tokens, channels = graph.node(node.inputs[0]).shape
        return {"N": tokens, "C": channels, "CLASSES": node.shape[0], "P": lanes,
                "SUM_BITS": value_bits(node.attrs["x_max"])}

    def params(self, graph, node, inputs, lanes):
        fmt = numerics.Candidate.parse(node.attrs["format"])
        name = ident(node.name)
        tokens, channels = graph.node(node.inputs[0]).shape
        in_bits = inputs[0].bits if inputs else value_bits(graph.node(node.inputs[0]).value_max)
        return {"N": tokens, "C": channels, "CLASSES": node.shape[0], "P": lanes, "BITS": numerics.rom_code_bits(fmt),
                "SCHEME": SCHEME_CODE[fmt.scheme], "ZERO_LEVEL": int(fmt.zero_level),
                "ZP": int(node.attrs.get("zero_point", 0)), "T": graph.time_steps, "IN_BITS": in_bits,
                "SUM_BITS": value_bits(node.attrs["x_max"]), "ACC_BITS": int(node.attrs["acc_bits"]),
                "LOGIT_BITS": int(node.attrs["logit_bits"]), "BF": int(node.attrs["bias_frac_bits"]),
                "ROM_FILE": f'"mem/{name}_weights.mem"', "BIAS_FILE": f'"mem/{name}_bias.mem"',
                # products a DSP multiplier would not take: a pipelined tree in LUTs (hqflow_mul)
                "MUL_TREE": int(lane_dsp(SCHEME_CODE[fmt.scheme], numerics.rom_code_bits(fmt),
                                         value_bits(node.attrs["x_max"])) == 0)}

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
        """N C (the sums) + per lane group C + 3 + mul_latency (the codes read registered, the products pipelined)."""
        p = params
        latency = mul_latency(p.get("SUM_BITS", 1), None)
        return p["N"] * p["C"] + -(-p["CLASSES"] // p["P"]) * (p["C"] + 3 + latency)

    def memories(self, params):
        p = params
        width, depth = rom_geometry(p, p["CLASSES"], p["C"])
        return [Memory("weights", width, depth, True),
                Memory("bias", p["P"] * p["LOGIT_BITS"], -(-p["CLASSES"] // p["P"]), True)]

    def terms(self, params):
        """the channel sums' ring (C x SUM_BITS), the accumulators and logits (P x ACC, P x LOGIT_BITS)."""
        p = params
        lanes = min(p["P"], p["CLASSES"])
        return {"fixed": 1.0, "ring": p["C"] * p["SUM_BITS"], "acc": lanes * p["ACC_BITS"],
                "logits": lanes * p["LOGIT_BITS"]}

    def dsp(self, params):
        return min(params["P"], params["CLASSES"]) * lane_dsp(params["SCHEME"], params["BITS"], params["SUM_BITS"])


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


# op name -> its core: this module's, and each op module's own table (stream_weighted, stream_sdt), where a
# new op's StreamOp goes with its entry
STREAM_OPS: dict[str, StreamOp] = {"input": Frame(), **WEIGHTED_OPS, "maxpool": MaxPool(), "add": Add(),
                                   "tokens": Alias(), "ssa": Ssa(), "head": Head(), **SDT_OPS}
check_backend(STREAM_OPS, "the streaming RTL top (export/rtl/stream_ops.py STREAM_OPS)")
