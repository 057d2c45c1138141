"""The time-batched streaming architecture: one schedule of the whole DeployGraph as a pipeline.

    frames --in (AXI-Stream)--> conv0 -> pool0 -> conv1 -> ... -> rpe -+-> add -> q/k/v -> ssa -> proj -> add1 ...
                                                        \\--- FIFO ----/      (a fork: a broadcast)

* **All T steps of a neuron together.** Every stream carries one element a beat: the T values of one
  position and channel (spikes as T-bit words, bit t = step t; multi-bit values, the input's event
  counts and the residual sums, as T values), pixel-major and channels last ((y*W + x)*C + c, tokens
  n*C + c). A weighted core reads a weight once per output pixel and applies it to all T steps (T x P
  accumulators), then runs the LIF over t = 0..T-1 with the membrane in a register: no membrane or
  accumulator memory.
* **A streaming pipeline.** One core per node (tokens is the identity: its stream is its input's),
  valid/ready streams between them (tvalid / tready / tdata / tlast). Window cores (conv 3x3, max pool,
  and linear as a 1x1 window over the tokens) read through line buffers of K + S rows. A stream with
  several consumers goes through a fork (each consumer takes a beat at its own pace within it); the skip
  input of a residual add through a FIFO that holds the whole feature map (its other path may need every
  token first: the attention). The
  attention buffers q of all tokens as T-bit words (k and v two tokens each: A takes a token into
  k^T v as it arrives) and multiplies spikes by ANDs.
* **Folding.** Each weighted core computes P output channels a cycle (x T steps). `fold` picks, per
  core, the smallest P whose cycles per image meet a target interval (FINN's SetFolding): the
  interval the slowest core reaches at the largest P allowed (`lanes`), or the one a target frame
  rate asks (`target_fps` at `clock_mhz`); `plan_to_fit` raises that target until a placement (the
  resource estimate against --part, stream_project.part_fit) accepts the folding.
* **Memory placement.** On a part with UltraRAM, the placement may move the large RAMs of some cores
  (line buffers; the attention's q buffer) from block RAM to UltraRAM (their ULTRA parameter) where
  block RAM runs short: the folding changes no memory that lanes do not touch, the placement does.

Each op's stream core is one `StreamOp` (stream_ops.py): its module, parameters, memory files, output value
bits and its cycle formula (active cycles per image, the core's documented formula, checked against
the co-simulation). `plan_stream` builds the `Schedule` that the Verilog renderer (stream_top.v.j2),
the testbench vectors, the README and the cycle report read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from hqflow.errors import UserError
from hqflow.export.rtl.stream_base import MAX_STREAM_LANES, Stream, StreamOp, ident, value_bits
from hqflow.export.rtl.stream_ops import STREAM_OPS
from hqflow.ir import DeployGraph
from hqflow.ops import check_graph, signed_nodes

__all__ = ["DEFAULT_LANES", "MAX_STREAM_LANES", "STREAM_OPS", "Schedule", "StreamCore", "StreamOp", "fold",
           "plan_stream", "plan_to_fit"]

DEFAULT_LANES = 64  # the folding's upper bound when none is given


@dataclass(frozen=True)
class StreamCore:
    """One core: node, Verilog module and parameters, the streams its input ports read (after forks and
    FIFOs, in the op's input order), its cycles per image (the formula) and lanes P (weighted cores)."""
    index: int
    node: str
    op: str
    module: str
    ident: str
    params: dict
    inputs: tuple[str, ...]
    output: str
    cycles: int
    lanes: int = 0
    files: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Fork:
    source: str
    outputs: tuple[str, ...]
    width: int


@dataclass(frozen=True)
class Fifo:
    """A FIFO on a stream: `depth` words, an image's elements (hqflow_fifo.v counts them for tlast)."""

    ident: str
    source: str
    output: str
    width: int
    depth: int


@dataclass(frozen=True)
class Schedule:
    cores: tuple[StreamCore, ...]
    streams: tuple[Stream, ...]        # one per node but the head, graph order (tokens: its input's)
    node_stream: dict                  # node -> ident of the stream that carries its output
    forks: tuple[Fork, ...]
    fifos: tuple[Fifo, ...]
    frame: tuple[int, int, int]        # C, H, W of the input
    in_bits: int
    classes: int
    logit_bits: int
    time_steps: int
    target_interval: int               # the folding's target (cycles per image)

    @property
    def interval(self) -> int:
        """The pipeline's initiation interval by the formulas: its slowest core's cycles per image."""
        return max(core.cycles for core in self.cores)

    def stream(self, ident_: str) -> Stream:
        return next(s for s in self.streams if s.ident == ident_)


# ---- folding --------------------------------------------------------------------------------------


def check_ops(graph: DeployGraph) -> None:
    """UserError naming the first node whose op the streaming architecture does not implement (yet)."""
    check_graph(STREAM_OPS, graph.nodes, "the streaming architecture (its RTL cores and HLS kernels)")


def _node_streams(graph: DeployGraph) -> tuple[dict[str, Stream], dict[str, str]]:
    """Every node's output stream (tokens share their input's) and node -> stream ident."""
    check_ops(graph)
    signed = signed_nodes(graph.nodes)
    streams: dict[str, Stream] = {}
    of: dict[str, str] = {}
    steps = graph.time_steps
    for node in graph.nodes:
        op = STREAM_OPS[node.op]
        if op.alias:
            if len(graph.node(node.inputs[0]).shape) != 3:
                raise UserError(f"node {node.name}: {node.op} of a {graph.node(node.inputs[0]).shape} input")
            of[node.name] = of[node.inputs[0]]
            continue
        if op.logits:
            continue
        if op.frame and len(node.shape) != 3:
            raise UserError(f"node {node.name}: input of shape {node.shape}; the RTL top reads [C, H, W] frames")
        is_signed = node.name in signed
        bits = value_bits(node.value_max) + is_signed  # two's complement: one bit more for [-max, max]
        stream = Stream(ident(node.name), node.name, bits, bits * steps, math.prod(node.shape), is_signed)
        streams[stream.ident] = stream
        of[node.name] = stream.ident
    return streams, of


def lane_cycles(graph: DeployGraph, lanes: int, nnz: dict[str, np.ndarray] | None = None
                ) -> tuple[dict[str, list[tuple[int, int]]], list[int]]:
    """({node: [(P, cycles per image)] for each lane count its ROM allows up to `lanes`}, [the cycles of
    each core without lanes]): what the folding chooses from. `nnz` as in `fold`."""
    nnz = nnz or {}
    streams, of = _node_streams(graph)
    steps = graph.time_steps
    choices: dict[str, list[tuple[int, int]]] = {}  # node -> [(P, cycles)]
    fixed: list[int] = []
    for node in graph.nodes:
        op = STREAM_OPS[node.op]
        if not op.has_core:
            continue
        inputs = [streams[of[src]] for src in node.inputs]
        options = op.lane_choices(graph, node, lanes)
        if options == [0]:
            fixed.append(math.ceil(op.cycles(op.params(graph, node, inputs, 0), steps)))
            continue
        if not options:
            raise UserError(f"node {node.name}: no lane count <= {lanes} fits its ROM word")
        choices[node.name] = [(p, math.ceil(op.cycles(op.cycle_params(graph, node, inputs, p), steps,
                                                      nnz.get(node.name)))) for p in options]
    return choices, fixed


def fold(graph: DeployGraph, lanes: int, target_interval: int | None = None,
         nnz: dict[str, np.ndarray] | None = None) -> tuple[dict[str, int | tuple[int, int]], int]:
    """P per weighted node (and the head): the smallest allowed P whose cycles per image meet the
    target interval. The target: `target_interval` if given, else the largest cycles per image any core
    has at its largest P (<= lanes): the fastest pipeline the lane bound allows, every core folded as
    far as that interval lets it. `nnz`: per event-driven node its nonzero input elements per output
    pixel's window (the mean of a trace: the folding is for those input rates), absent: every element
    (the worst case). A weighted core then gets the fewest LIF lanes (P / chunks, up to MAX_LIF_CHUNKS
    passes a step) that still meet the target: its LIF is the widest adder of the core, and its unit
    works while the next group accumulates; a core without lanes may fold otherwise within the target (`fold_fixed`: the
    attention's kv split). Returns ({node: P, or (P, LIF lanes) for conv_lif / linear_lif, or the
    attention's split}, the target)."""
    nnz = nnz or {}
    choices, fixed = lane_cycles(graph, lanes, nnz)
    steps = graph.time_steps
    if target_interval is None:
        target_interval = max([min(c for _, c in opts) for opts in choices.values()] + fixed)
    chosen = {}
    for name, opts in choices.items():
        meeting = [p for p, c in opts if c <= target_interval]
        chosen[name] = min(meeting) if meeting else min(opts, key=lambda pc: (pc[1], pc[0]))[0]
        node = graph.node(name)
        op = STREAM_OPS[node.op]
        lif = op.lif_lanes(op.cycle_params(graph, node, [], chosen[name]), steps, nnz.get(name), target_interval)
        if lif is not None:
            chosen[name] = (chosen[name], lif)
    for node in graph.nodes:  # the cores without lanes that fold otherwise (the attention's kv split)
        fixed = STREAM_OPS[node.op].fold_fixed(graph, node, steps, target_interval) if node.name not in chosen else None
        if fixed is not None:
            chosen[node.name] = fixed
    return chosen, int(target_interval)


# ---- the schedule ------------------------------------------------------------------------------------


def plan_stream(graph: DeployGraph, lanes: int = 64, target_interval: int | None = None,
                nnz: dict[str, np.ndarray] | None = None, files: bool = True, ultra: frozenset[str] = frozenset(),
                lut_memories: bool = True) -> Schedule:
    """The streaming pipeline of `graph`: cores (folded: `fold`, for the input rates `nnz`), streams,
    forks and FIFOs. A core's `cycles`: its formula at those rates (rounded up), the worst case without.
    files=False leaves the cores' memory files out (a schedule to estimate, not to render). `ultra`: the
    nodes whose large RAMs go to UltraRAM (their ops' ULTRA parameter). lut_memories (the ops that take
    it): a weight ROM's last lines in LUTs where cheaper and the lists of nonzero elements in LUT RAM;
    False: both, and the weighted cores' line buffer rows, in block RAM (LUT4 parts)."""
    streams, of = _node_streams(graph)
    nnz = nnz or {}
    folding, target = fold(graph, lanes, target_interval, nnz)
    consumers: dict[str, list[tuple[str, int]]] = {}  # stream -> [(consumer node, input port)]
    for node in graph.nodes:
        if not STREAM_OPS[node.op].has_core:
            continue
        for port, src in enumerate(node.inputs):
            consumers.setdefault(of[src], []).append((node.name, port))
    # each consumer's input: the stream itself, a fork branch, or (the skip input of an add) a FIFO after it;
    # a barrier core's output (the attention, which emits a whole map at once) first goes through a FIFO of
    # the whole map, so that it can take the next image's inputs while its consumer still drains this one
    port_stream: dict[tuple[str, int], str] = {}
    forks, fifos = [], []
    for sid, users in consumers.items():
        stream = streams[sid]
        if STREAM_OPS[graph.node(stream.node).op].barrier:
            fifo = Fifo(f"{sid}_b", sid, f"{sid}_b", stream.width, stream.size)
            fifos.append(fifo)
            sid = fifo.output
        if len(users) == 1:
            port_stream[users[0]] = sid
            continue
        branches = tuple(f"{sid}_f{k}" for k in range(len(users)))
        forks.append(Fork(sid, branches, stream.width))
        for (user, port), branch in zip(users, branches):
            if STREAM_OPS[graph.node(user).op].joins:
                fifo = Fifo(f"{branch}_q", branch, f"{branch}_q", stream.width, stream.size)
                fifos.append(fifo)
                port_stream[(user, port)] = fifo.output
            else:
                port_stream[(user, port)] = branch
    cores = []
    head = None
    for node in graph.nodes:
        op = STREAM_OPS[node.op]
        if not op.has_core:
            continue
        inputs = [streams[of[src]] for src in node.inputs]
        choices = {"lut_memories": lut_memories} if op.lut_memories else {}
        if files:
            built = op.build(graph, node, inputs, folding.get(node.name, 0), **choices)
        else:
            params = op.params(graph, node, inputs, folding.get(node.name, 0), **choices)
            built = {"params": params, "lanes": params.get("P", 0)}
        if node.name in ultra:
            if not op.ultra_ram:
                raise UserError(f"node {node.name}: its {node.op} core has no RAM to put in UltraRAM")
            built = {**built, "params": {**built["params"], "ULTRA": 1}}
        cores.append(StreamCore(len(cores), node.name, node.op, op.module, ident(node.name), built["params"],
                                tuple(port_stream[(node.name, k)] for k in range(len(node.inputs))),
                                of.get(node.name, "out"),
                                math.ceil(op.cycles(built["params"], graph.time_steps, nnz.get(node.name))),
                                built.get("lanes", 0), built.get("files", {})))
        if op.logits:
            head = node
    if head is None or not STREAM_OPS[cores[-1].op].logits:
        raise UserError("the graph does not end in a head: the RTL top streams the head's logits")
    source = graph.nodes[0]
    return Schedule(tuple(cores), tuple(streams.values()), of, tuple(forks), tuple(fifos), tuple(source.shape),
                    value_bits(source.value_max), int(head.shape[0]), int(head.attrs["logit_bits"]),
                    graph.time_steps, target)


def plan_to_fit(graph: DeployGraph, lanes: int, target_interval: int | None, nnz: dict[str, np.ndarray] | None,
                place, lut_memories: bool = True) -> tuple[Schedule, bool]:
    """The fastest schedule that fits, folded no faster than `target_interval` / `lanes` allow.
    `place(schedule)` (a schedule without files) = (the nodes whose large RAMs go to UltraRAM, whether it
    then fits): the resource estimate against a device. The target interval is raised, by bisection over
    the cycle counts the cores' lane choices give (fewer lanes, fewer resources), until it fits. Returns
    (the schedule with its files and placement, whether it fits). If even the slowest folding does not
    fit (a memory that lanes do not change, such as the weight ROMs, is too large), folding slower gains
    nothing: the first schedule is returned, with its placement, and False."""
    def fits(target: int | None) -> bool:
        return place(plan_stream(graph, lanes, target, nnz, files=False, lut_memories=lut_memories))[1]

    def planned(target: int | None, fitted: bool) -> tuple[Schedule, bool]:
        ultra, _ = place(plan_stream(graph, lanes, target, nnz, files=False, lut_memories=lut_memories))
        return plan_stream(graph, lanes, target, nnz, ultra=ultra, lut_memories=lut_memories), fitted

    first = plan_stream(graph, lanes, target_interval, nnz, files=False, lut_memories=lut_memories)
    if place(first)[1]:
        return planned(target_interval, True)
    choices, _ = lane_cycles(graph, lanes, nnz)
    targets = sorted({c for options in choices.values() for _, c in options if c > first.target_interval})
    if not targets or not fits(targets[-1]):
        return planned(target_interval, False)
    lo, hi = 0, len(targets) - 1  # the first target index that fits lies in [lo, hi]
    while lo < hi:
        mid = (lo + hi) // 2
        if fits(targets[mid]):
            hi = mid
        else:
            lo = mid + 1
    return planned(targets[lo], True)
