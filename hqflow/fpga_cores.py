"""The FPGA resource model of each op's core in the layer-sequential RTL top: one `CoreModel` per
DeployGraph op in `FPGA_CORES` (checked against hqflow.ops.OPS at import). hqflow/fpga.py evaluates
them and never branches on an op's name; export/rtl/seq_ops.py holds the same cores' Verilog side
(module, parameters, cycle formula).

    weighted   conv_lif, linear_lif, head (`WeightedCore.layer`, a LayerShape in format f, P lanes,
               X-bit inputs, ACC accumulator and V membrane bits; G = ceil(c_out / P) lane groups):
                   LUT = fixed[core] + P * (lane_lut[f, X] + lut_per_acc_bit ACC + lut_per_v_bit V)
                   FF  = fixed[core] + P * (lane_ff[f, X]  + ff_per_acc_bit ACC  + ff_per_v_bit V)
                   DSP = P * lane_dsp[f, X]
               plus the weight ROM (64 KW bits x rows * ceil(G / GPW), KW = max(1, P / codes a word))
               and the core's own memories (`memories`); the head has no membrane (V = 0)
    spike ops  maxpool, add, ssa (`TermsCore`): sum over the table's spike_ops[op] terms of
               coefficient * size (fixed 1, element: output elements, channel: output channels, and
               the SSA's token: N), the SSA plus its memories (`ssa_memories`)
    no core    input (the top's loader fills its buffer), tokens (its readers read its input's
               buffer): 0, by declaration
A plan's weight layer comes as a LayerShape, without its op: `layer_core(shape)` is the one weighted
core whose `computes(shape)` holds. Core module: no torch, no export.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hqflow.cost import LayerShape
from hqflow.errors import UserError
from hqflow.numerics import Candidate
from hqflow.numerics.rom import ROM_WORD_BITS, rom_code_bits
from hqflow.ops import check_backend, implementation, op_for
from hqflow.ops.conv_lif import WINDOW as CONV_WINDOW
from hqflow.ops.head import summed_max
from hqflow.resources import Resources, memory_resources, total

if TYPE_CHECKING:  # hqflow.fpga imports this module; it only names the table's type
    from hqflow.fpga import FpgaTable
    from hqflow.ir import DeployGraph, Node

__all__ = ["CORE_KEYS", "FPGA_CORES", "TABLE_OPS", "CoreModel", "ValueBound", "WeightedCore", "core_model",
           "layer_core", "ssa_memories"]

HEAD_GROUP = "head"  # the LayerShape group of the classifier (hqflow.topology.GROUPS)


@dataclass(frozen=True)
class ValueBound:
    """What an op's value-range rule (hqflow.ops Op.value_max / figures) reads of a node and of its
    sources: name, shape (one sample, one step), value_max (the largest output value) and attrs
    (the input's max_count: the data's saturation)."""
    name: str
    shape: tuple[int, ...]
    value_max: int | None = None
    attrs: dict[str, Any] = field(default_factory=dict)


class CoreModel:
    """The resources of one op's core. `resources(graph, node, table, lanes)`: those of `node`'s core
    at `lanes` lanes (the weighted cores' P; the others have none)."""

    has_core = True  # input and tokens have none in the sequential top
    weighted = False  # a weight layer: its resources from a LayerShape (WeightedCore.layer)
    terms = False  # its logic from the table's spike_ops[op] terms

    def resources(self, graph: DeployGraph, node: Node, table: FpgaTable, lanes: int) -> Resources:
        raise NotImplementedError


class NoCore(CoreModel):
    """input (the top's loader writes its buffer) and tokens (an alias of its input's buffer)."""

    has_core = False

    def resources(self, graph, node, table, lanes):
        return Resources()


class WeightedCore(CoreModel):
    """A weight layer's core: lanes, accumulators, the weight ROM and its own memories (module docstring)."""

    weighted = True
    table_key = ""  # its entry in the table's cores (the fixed LUT / FF of the core)
    membrane = True  # V counts per lane (the head's has no membrane)

    def computes(self, shape: LayerShape) -> bool:
        """Whether this core computes a weight layer of `shape` (exactly one weighted core does)."""
        raise NotImplementedError

    def shape(self, graph: DeployGraph, node: Node) -> LayerShape:
        """The LayerShape of `node` (one step: time_steps 1)."""
        raise NotImplementedError

    def x_max(self, step, sources: Sequence[ValueBound], time_steps: int) -> int:
        """The largest input value the weights multiply (the op's attrs.x_max), from its sources' bounds."""
        raise NotImplementedError

    def memories(self, shape: LayerShape, table: FpgaTable, lanes: int, groups: int, acc: int, v: int,
                 x_bits: int) -> list[Resources]:
        """The core's memories beside the weight ROM, in the order the estimate sums them."""
        raise NotImplementedError

    def layer(self, shape: LayerShape, fmt: Candidate, table: FpgaTable, lanes: int, x_bits: int, acc: int,
              v: int) -> Resources:
        """Resources of the core of a layer of `shape` in format `fmt` (module docstring)."""
        if lanes < 1:
            raise UserError(f"lanes {lanes!r}: expected a positive integer")
        bits = rom_code_bits(fmt)
        per_word = ROM_WORD_BITS // bits
        kw = max(1, lanes // per_word)
        groups = -(-shape.c_out // lanes)
        gpw = max(1, per_word * kw // lanes)
        row_wide = -(-groups // gpw)
        rows = shape.c_in * shape.taps
        lane = table.lane(fmt, x_bits)
        w = table.width
        fixed = table.cores[self.table_key]
        v = v if self.membrane else 0
        logic = Resources(
            lut=fixed["lut"] + lanes * (lane.lut + w["lut_per_acc_bit"] * acc + w["lut_per_v_bit"] * v),
            ff=fixed["ff"] + lanes * (lane.ff + w["ff_per_acc_bit"] * acc + w["ff_per_v_bit"] * v),
            dsp=lanes * lane.dsp)
        rom = memory_resources(ROM_WORD_BITS * kw, rows * row_wide, table, rom=True)
        return total([logic, rom, *self.memories(shape, table, lanes, groups, acc, v, x_bits)])

    def resources(self, graph, node, table, lanes):
        """With the node's real widths: x_bits the bit length of attrs.x_max, acc_bits, v_bits."""
        attrs = node.attrs
        return self.layer(self.shape(graph, node), Candidate.parse(attrs["format"]), table, lanes,
                          max(1, int(attrs["x_max"]).bit_length()), int(attrs["acc_bits"]),
                          int(attrs.get("v_bits", 0)))


class LifCore(WeightedCore):
    """conv_lif / linear_lif (hqflow_conv_lif.v, hqflow_linear_lif.v): accumulators [acc_words] x P*ACC,
    membranes [positions * G] x P*V, the LIF tables [G]: bias and threshold P*V, sign 2P bits (ROMs)."""

    def acc_words(self, shape: LayerShape, groups: int) -> int:
        raise NotImplementedError

    def x_max(self, step, sources, time_steps):
        return op_for(step).figures(step, sources, {}, time_steps)["x_max"]  # its input's value_max

    def memories(self, shape, table, lanes, groups, acc, v, x_bits):
        return [memory_resources(lanes * acc, self.acc_words(shape, groups), table),
                memory_resources(lanes * v, shape.positions * groups, table),
                memory_resources(lanes * v, groups, table, rom=True),
                memory_resources(lanes * v, groups, table, rom=True),
                memory_resources(lanes * 2, groups, table, rom=True)]


class ConvCore(LifCore):
    """conv_lif: every pixel's accumulators (the 3x3 taps scatter into them): positions * G words."""

    table_key = "conv_lif"

    def computes(self, shape):
        return shape.group != HEAD_GROUP and shape.taps > 1

    def shape(self, graph, node):
        c, h, w = graph.node(node.inputs[0]).shape
        return LayerShape(node.name, "tokenizer", c, node.shape[0], CONV_WINDOW.kernel_size ** 2, h * w, 1)

    def acc_words(self, shape, groups):
        return shape.positions * groups


class LinearCore(LifCore):
    """linear_lif: one token's accumulators at a time: G words."""

    table_key = "linear_lif"

    def computes(self, shape):
        return shape.group != HEAD_GROUP and shape.taps == 1

    def shape(self, graph, node):
        tokens, c = graph.node(node.inputs[0]).shape
        return LayerShape(node.name, "mlp", c, node.shape[1], 1, tokens, 1)

    def acc_words(self, shape, groups):
        return groups


class HeadCore(WeightedCore):
    """head (hqflow_head.v): channel sums [C] x X (its x_bits: SUM_BITS), accumulators [G] x P*ACC, the
    bias [CLASSES] x (ACC + 1) (a ROM); no membrane."""

    table_key = "head"
    membrane = False

    def computes(self, shape):
        return shape.group == HEAD_GROUP

    def shape(self, graph, node):
        return LayerShape(node.name, HEAD_GROUP, graph.node(node.inputs[0]).shape[-1], node.shape[0], 1, 1, 1)

    def x_max(self, step, sources, time_steps):
        return summed_max(sources[0], time_steps)  # its input summed over the tokens and the steps

    def memories(self, shape, table, lanes, groups, acc, v, x_bits):
        return [memory_resources(x_bits, shape.c_in, table), memory_resources(lanes * acc, groups, table),
                memory_resources(acc + 1, shape.c_out, table, rom=True)]


def ssa_memories(tokens: int, dim: int, heads: int, v_bits: int, table: FpgaTable) -> Resources:
    """The SSA core's memories: membranes v [N*D] x V_BITS and kv [HD] x HD*KV_BITS (hqflow_ssa.v)."""
    hd = dim // heads
    kv_bits = max(1, tokens.bit_length())  # $clog2(N + 1)
    return memory_resources(v_bits, tokens * dim, table) + memory_resources(hd * kv_bits, hd, table)


class TermsCore(CoreModel):
    """maxpool, add: the table's calibrated terms (module docstring); the op must have an entry."""

    terms = True

    def sizes(self, node: Node) -> dict[str, int]:
        return {"fixed": 1, "element": math.prod(node.shape), "channel": node.shape[-1] if node.shape else 1}

    def memories(self, node: Node, table: FpgaTable) -> list[Resources]:
        return []

    def resources(self, graph, node, table, lanes):
        if node.op not in table.spike_ops:
            raise UserError(f"{table.path}: spike_ops has no entry for op {node.op} (node {node.name!r}); "
                            "calibrate the table (python -m hqflow.export.rtl.dev.calibrate)")
        size = self.sizes(node)
        res = Resources()
        for term, coeff in table.spike_ops[node.op].items():
            if term not in size:
                raise UserError(f"{table.path}: spike_ops.{node.op}.{term}: unknown term; expected one of "
                                f"{', '.join(size)}")
            res = res + coeff.scaled(size[term])
        for memory in self.memories(node, table):
            res = res + memory
        return res


class SsaCore(TermsCore):
    """ssa (hqflow_ssa.v): its terms (with `token`, N) and its memories (ssa_memories)."""

    def sizes(self, node):
        return {**super().sizes(node), "token": node.shape[0]}

    def memories(self, node, table):
        tokens, dim = node.shape
        return [ssa_memories(tokens, dim, int(node.attrs["num_heads"]), int(node.attrs["v_bits"]), table)]


FPGA_CORES: dict[str, CoreModel] = {"input": NoCore(), "conv_lif": ConvCore(), "linear_lif": LinearCore(),
                                    "maxpool": TermsCore(), "add": TermsCore(), "tokens": NoCore(),
                                    "ssa": SsaCore(), "head": HeadCore()}
check_backend(FPGA_CORES, "the sequential FPGA resource model (hqflow/fpga_cores.py FPGA_CORES)", complete=False)
WEIGHTED = tuple(core for core in FPGA_CORES.values() if core.weighted)
CORE_KEYS = tuple(core.table_key for core in WEIGHTED)  # the table's cores section
# the ops the table's spike_ops may name: those with calibrated terms, and those without a core (no terms)
TABLE_OPS = tuple(op for op, core in FPGA_CORES.items() if core.terms or not core.has_core)


def core_model(node) -> CoreModel:
    """The resource model of `node`'s op (anything with .name and .op); UserError naming the node and
    the op for an op hqflow.ops does not define."""
    return implementation(FPGA_CORES, node, "the layer-sequential FPGA resource model (hqflow/fpga_cores.py)")


def layer_core(shape: LayerShape) -> WeightedCore:
    """The weighted core that computes a layer of `shape`: the head's for its group, conv's for a window
    (taps > 1), linear's otherwise."""
    found = [core for core in WEIGHTED if core.computes(shape)]
    if len(found) != 1:
        raise UserError(f"layer {shape.name}: group {shape.group}, taps {shape.taps}: "
                        f"{len(found)} weighted cores compute it, expected one")
    return found[0]
