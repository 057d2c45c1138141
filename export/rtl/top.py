"""The whole DeployGraph as one Verilog top: cores in graph order, buffers between them, one sequencer.

Architecture (layer-sequential, the default and for now the only one):

    frames --in_valid/in_ready--> [input buffer] -> core 0 -> [buffer] -> core 1 -> ... -> head --out_valid--> logits
                                  (one time step)      ^ the sequencer starts one core at a time, T steps per inference

* One core per node (tokens excepted, see below), one buffer per node output holding one time
  step ([positions][channels], channels last: hqflow's RTL layout), written by its node's core and
  read by every consumer through one read port (only one core runs at a time, so the port's
  address is a multiplexer over the consumers, selected by the running node).
* A weighted core (conv_lif, linear_lif) computes P output channels a cycle and writes them as one
  P-value word; P is a power of two that divides the node's channels, so that the readers find
  element i in word i / P (hqflow_buffer.v). Every other core writes one value a word.
* tokens ([C][H][W] -> [H*W][C]) is the identity in the channels-last layout: it has no core, and
  its readers read its input's buffer (the alias costs no cycle and no memory).
* The input: an AXI-Stream-like port (in_valid / in_ready / in_data), one frame value a beat in
  channels-last order ((y*W + x)*C + c), one frame per time step, the frame of step t + 1 accepted
  after step t's last core is done. Why a stream and not a memory-mapped frame buffer: an
  inference needs T frames, which the host produces one at a time (a DVS binning pipeline); the
  top buffers one frame, which is all a layer-sequential schedule can use.
* The output: the head's logits, one a cycle (out_valid, out_index, out_data, out_last), at the end
  of the last step; no back-pressure (CLASSES values).

`plan_top` decides every core's parameters, buffer and wiring from the graph (Python chooses
numbers and names only; the arithmetic is the cores'). Each op's part (its module, parameters,
memory files, buffer and cycle formula) is its SeqOp in seq_ops.py; this module branches on no op's
name. `hqflow_top.v.j2` renders the plan.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from hqflow.errors import UserError
from hqflow.export.rtl import seq_ops
from hqflow.ir import DeployGraph, Node

__all__ = ["Buffer", "Core", "TopPlan", "choose_pack_lanes", "core_cycles", "expected_cycles", "layout", "plan_top",
           "RTL_OPS"]

NO_NODE = 255  # dbg_node while no core runs (the sequencer loads a frame)


@dataclass(frozen=True)
class Buffer:
    """One node's output for one step: `size` values of `bits` bits, `pack` to a RAM word."""
    ident: str
    node: str
    size: int
    pack: int
    bits: int

    @property
    def words(self) -> int:
        return -(-self.size // self.pack)


@dataclass(frozen=True)
class Core:
    """One core of the top: node, Verilog module and parameters, the buffers it reads and writes.
    index: its place in the sequencer's order (dbg_node); lanes: P (weighted nodes and the head)."""
    index: int
    node: str
    op: str
    module: str
    ident: str
    params: dict
    reads: tuple[str, ...]        # buffer idents, in the op's input order
    writes: str | None            # its buffer's ident (None: the head streams its logits)
    lanes: int = 0
    consts: dict = field(default_factory=dict)   # ssa: the LIF constants as Verilog literals
    files: dict = field(default_factory=dict)    # memory file name -> text


@dataclass(frozen=True)
class TopPlan:
    cores: tuple[Core, ...]
    buffers: tuple[Buffer, ...]
    aliases: dict                 # node -> the buffer it reads as its output (tokens)
    frame: tuple[int, int, int]   # C, H, W of the input
    in_bits: int
    classes: int
    logit_bits: int
    time_steps: int
    head_lanes: int

    def buffer_of(self, node: str) -> Buffer:
        ident = self.aliases.get(node, _ident(node))
        return next(b for b in self.buffers if b.ident == ident)

    def readers(self, buffer: str) -> list[Core]:
        return [core for core in self.cores if buffer in core.reads]


# the helpers both architectures share (export/rtl/seq_ops.py), by the names the stream cores import
SCHEME_CODE, _ident, _bits, _check_window = seq_ops.SCHEME_CODE, seq_ops.ident, seq_ops.value_bits, seq_ops.check_window
ssa_lif_consts, choose_pack_lanes = seq_ops.ssa_lif_consts, seq_ops.choose_pack_lanes
RTL_OPS = seq_ops.SEQ_OPS  # op -> its core (SeqOp); the template of each op's instance is project/top_ops/<op>.v.j2


def layout(graph: DeployGraph, node: Node, values: np.ndarray) -> np.ndarray:
    """A node's output [..., *node.shape] in the RTL layout, flattened per step: feature maps
    [C, H, W] channels last ([H, W, C]); tokens [N, C] and the rest as they are."""
    if len(node.shape) == 3:
        values = np.moveaxis(values, -3, -1)
    return values.reshape(*values.shape[: values.ndim - len(node.shape)], math.prod(node.shape))


def plan_top(graph: DeployGraph, lanes: int = 8) -> TopPlan:
    """Cores, buffers and wiring of `graph` with at most `lanes` output channels a cycle per core: each
    node's SeqOp (seq_ops.SEQ_OPS; UserError naming the node for an unknown op) checks it and says
    what it places: a core, the buffer it writes (bits, pack), or an alias of its input's buffer."""
    buffers: dict[str, Buffer] = {}
    aliases: dict[str, str] = {}
    cores: list[Core] = []
    for node in graph.nodes:
        op = seq_ops.seq_op(node)
        reads = [buffers[aliases.get(src, src)] for src in node.inputs]
        built = op.build(graph, node, reads, lanes)
        if op.alias:
            aliases[node.name] = aliases.get(node.inputs[0], node.inputs[0])
            continue
        writes = None
        if built.get("bits") is not None:
            buffers[node.name] = Buffer(_ident(node.name), node.name, math.prod(node.shape),
                                        built.get("pack", 1), built["bits"])
            writes = buffers[node.name].ident
        if op.has_core:
            cores.append(Core(len(cores), node.name, node.op, built["module"], _ident(node.name), built["params"],
                              tuple(b.ident for b in reads), writes, built.get("lanes", 0), built.get("consts", {}),
                              built.get("files", {})))
    if not cores or not seq_ops.SEQ_OPS[cores[-1].op].logits:
        raise UserError("the graph does not end in a head: the RTL top streams the head's logits")
    head = graph.node(cores[-1].node)
    source = next(n for n in graph.nodes if seq_ops.SEQ_OPS[n.op].frame)
    return TopPlan(tuple(cores), tuple(buffers.values()),
                   {name: _ident(target) for name, target in aliases.items()}, tuple(source.shape),
                   _bits(source.value_max), int(head.shape[0]), int(head.attrs["logit_bits"]), graph.time_steps,
                   cores[-1].lanes)


SEQUENCER_CYCLES = 1  # the top's start cycle before each core, counted with the core by rtlsim


def core_cycles(op: str, params: dict, nonzero: int, last: bool) -> int:
    """Cycles of one core in one time step, as its header documents them (start edge to done edge):
    the op's SeqOp.cycles (seq_ops.py, the one home of the cores' cycle formulas; the top, the core
    tests and the estimate use it). params: the core's Verilog parameters; nonzero: the nonzero values
    of its input in the step (the event-driven weighted cores); last: the last step (the head's logits).
    ValueError for an op without a formula."""
    if op not in seq_ops.SEQ_OPS:
        raise ValueError(f"no cycle formula for op {op!r}")
    return seq_ops.SEQ_OPS[op].cycles(params, nonzero, last)


def expected_cycles(plan: TopPlan, graph: DeployGraph, trace: dict[str, np.ndarray], samples: int) -> dict:
    """{node: [[cycles of each step] of each of the first `samples`]} by core_cycles, the nonzero input
    counts taken from the simulator's trace ({node: [T, B, ...]})."""
    out = {}
    for core in plan.cores:
        x = trace[graph.node(core.node).inputs[0]][:, :samples]
        nonzero = (x.reshape(*x.shape[:2], math.prod(x.shape[2:])) != 0).sum(axis=2)  # [T, samples]
        out[core.node] = [[SEQUENCER_CYCLES + core_cycles(core.op, core.params, int(nonzero[t, b]),
                                                          t == plan.time_steps - 1)
                           for t in range(plan.time_steps)] for b in range(samples)]
    return out
