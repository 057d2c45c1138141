"""The time-batched streaming architecture: one schedule of the whole DeployGraph as a pipeline.

    frames --in (AXI-Stream)--> conv0 -> pool0 -> conv1 -> ... -> rpe -+-> add -> q/k/v -> ssa -> proj -> add1 ...
                                                        \\--- FIFO ----/      (a fork: lockstep broadcast)

* **All T steps of a neuron together.** Every stream carries one element a beat: the T values of one
  position and channel (spikes as T-bit words, bit t = step t; multi-bit values, the input's event
  counts and the residual sums, as T values), pixel-major and channels last ((y*W + x)*C + c, tokens
  n*C + c). A weighted core reads a weight once per output pixel and applies it to all T steps (T x P
  accumulators), then runs the LIF over t = 0..T-1 with the membrane in a register: no membrane or
  accumulator memory.
* **A streaming pipeline.** One core per node (tokens is the identity: its stream is its input's),
  valid/ready streams between them (tvalid / tready / tdata / tlast). Window cores (conv 3x3, max pool,
  and linear as a 1x1 window over the tokens) read through line buffers of K + S rows. A stream with
  several consumers goes through a lockstep fork; the skip input of a residual add through a FIFO that
  holds the whole feature map (its other path may need every token first: the attention). The
  attention buffers q, k and v of all tokens as T-bit words and multiplies spikes by ANDs.
* **Folding.** Each weighted core computes P output channels a cycle (x T steps). `fold` picks, per
  core, the smallest P whose cycles per image meet a target interval (FINN's SetFolding): the
  interval the slowest core reaches at the largest P allowed (`lanes`), or the one a target frame
  rate asks (`target_fps` at `clock_mhz`).

Each op's stream core is one `StreamOp` here: its module, parameters, memory files, output value
bits and its cycle formula (active cycles per image, the core's documented formula, checked against
the co-simulation). `plan_stream` builds the `Schedule` that the Verilog renderer (stream_top.v.j2),
the testbench vectors, the README and the cycle report read.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np

from hqflow import numerics
from hqflow.errors import UserError
from hqflow.export.rtl import memfiles
from hqflow.ir import DeployGraph, Node
from hqflow.ops import check_backend, common

__all__ = ["MAX_STREAM_LANES", "Schedule", "StreamCore", "STREAM_OPS", "fold", "plan_stream"]

SCHEME_CODE = {"uniform": 0, "po2": 1, "fp32": 2}
MAX_STREAM_LANES = 256  # the most output channels a streaming weighted core computes per cycle
DEFAULT_LANES = 64  # the folding's upper bound when none is given
MAX_LIF_CHUNKS = 8  # a weighted core's LIF takes at most this many passes over its lanes per step


def ident(name: str) -> str:
    return "n_" + re.sub(r"[^A-Za-z0-9_]", "_", name)


def value_bits(value_max: int) -> int:
    return max(1, int(value_max).bit_length())


@dataclass(frozen=True)
class Stream:
    """The output of one node: `size` elements an image, each T values of `bits` bits."""
    ident: str
    node: str
    bits: int
    width: int
    size: int


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


# ---- one StreamOp per op: parameters, files, output bits, cycle formula ------------------------------


class StreamOp:
    """An op's streaming core. `build` returns the core's module, params, files, lanes and output bits;
    `cycles(params, T, nnz)` its active cycles per image (the formula in its Verilog header; nnz: the
    event-driven cores' nonzero input elements over all output windows, None: every element); a
    weighted op also gives `lane_choices` (the P its ROM allows) for the folding and `nnz` (its count
    from an input trace)."""

    module = ""
    barrier = False  # it emits its whole output only after its whole input (a FIFO decouples its consumer)

    def build(self, graph: DeployGraph, node: Node, inputs: list[Stream], lanes: int) -> dict:
        raise NotImplementedError

    def cycles(self, params: dict, time_steps: int, nnz: float | None = None) -> float:
        raise NotImplementedError

    def lane_choices(self, graph: DeployGraph, node: Node, lanes: int) -> list[int]:
        return [0]

    def nnz(self, graph: DeployGraph, node: Node, x: np.ndarray) -> np.ndarray | None:
        """Per sample, the nonzero input elements the core visits in an image; x: its input [T, B, ...]."""
        return None


def _check_window(node: Node, kernel: int, stride: int, padding: int, what: str) -> None:
    got = tuple(int(node.attrs.get(key, default)) for key, default in
                (("kernel_size", kernel), ("stride", stride), ("padding", padding)))
    if got != (kernel, stride, padding):
        raise UserError(f"node {node.name}: {node.op} with kernel {got[0]}, stride {got[1]}, padding {got[2]}; "
                        f"the RTL {what} core implements kernel {kernel}, stride {stride}, padding {padding}")


def _lanes_for(bits: int, outputs: int, lanes: int) -> list[int]:
    """The P a ROM of `bits`-bit codes allows, up to `lanes`, and none beyond the first that covers
    every output in one group (more lanes would idle)."""
    allowed = [p for p in memfiles.allowed_lanes(bits, MAX_STREAM_LANES) if p <= lanes]
    covering = [p for p in allowed if p >= outputs]
    return [p for p in allowed if p < outputs] + covering[:1]


class WeightedLif(StreamOp):
    """conv_lif (3x3, stride 1, padding 1) and linear_lif (a 1x1 window over the tokens as an N x 1
    image): hqflow_stream_wlif.v."""

    module = "hqflow_stream_wlif"

    def _geometry(self, graph: DeployGraph, node: Node) -> dict:
        source = graph.node(node.inputs[0])
        if node.op == "conv_lif":
            _check_window(node, 3, 1, 1, "conv")
            c, h, w = source.shape
            return {"H": h, "W": w, "C": c, "O": node.shape[0], "K": 3, "PAD": 1}
        n, c = source.shape
        return {"H": n, "W": 1, "C": c, "O": node.shape[1], "K": 1, "PAD": 0}

    def lane_choices(self, graph, node, lanes):
        bits = numerics.rom_code_bits(numerics.Candidate.parse(node.attrs["format"]))
        return _lanes_for(bits, self._geometry(graph, node)["O"], lanes)

    def build(self, graph, node, inputs, lanes):
        fmt = numerics.Candidate.parse(node.attrs["format"])
        x_bits = value_bits(node.attrs["x_max"])
        if inputs[0].bits > x_bits:
            raise UserError(f"node {node.name}: its input holds {inputs[0].bits}-bit values, attrs.x_max "
                            f"{node.attrs['x_max']} only {x_bits} bits; export the run again")
        name = ident(node.name)
        lanes, lif_lanes = lanes if isinstance(lanes, tuple) else (lanes, lanes)
        params = {**self._geometry(graph, node), "P": lanes, "LIF_LANES": lif_lanes,
                  "BITS": numerics.rom_code_bits(fmt),
                  "SCHEME": SCHEME_CODE[fmt.scheme], "ZERO_LEVEL": int(fmt.zero_level),
                  "ZP": int(node.attrs.get("zero_point", 0)), "X_BITS": x_bits,
                  "ACC_BITS": int(node.attrs["acc_bits"]), "V_BITS": int(node.attrs["v_bits"]),
                  "F": int(node.attrs["frac_bits"]), "T": graph.time_steps}
        files = {f"{name}_weights.mem": memfiles.rom_lines(graph, node, lanes)[0]}
        for key, text in memfiles.lif_tables(graph, node, lif_lanes).items():
            files[f"{name}_{key}.mem"] = text
        for key, file in (("ROM", "weights"), ("BIAS", "bias"), ("THR", "thr"), ("SIGN", "sign")):
            params[f"{key}_FILE"] = f'"mem/{name}_{file}.mem"'
        return {"params": params, "files": files, "lanes": lanes, "bits": 1}

    def cycles(self, params, time_steps, nnz=None):
        p = params
        ho, wo = p["H"] + 2 * p["PAD"] - p["K"] + 1, p["W"] + 2 * p["PAD"] - p["K"] + 1
        groups = -(-p["O"] // p["P"])
        chunks = p["P"] // p.get("LIF_LANES", p["P"])  # the LIF's passes over the lanes, per step
        if nnz is None:  # every element nonzero: each window's taps inside the image, C elements each
            nnz = p["C"] * sum(_cover(p["H"], p["K"], p["PAD"])) * sum(_cover(p["W"], p["K"], p["PAD"]))
        return ho * (1 + wo * groups * (2 * p["K"] + time_steps * chunks + 2)) + groups * nnz

    def nnz(self, graph, node, x):
        g = self._geometry(graph, node)
        words = np.asarray(x != 0).any(axis=0)  # [B, ...]: an element nonzero at some step
        if node.op == "conv_lif":
            per_pixel = words.sum(axis=1)  # [B, H, W]
        else:
            per_pixel = words.sum(axis=2)[:, :, None]  # [B, N, 1]: a token is a pixel of an N x 1 image
        rows = np.array(_cover(g["H"], g["K"], g["PAD"]))
        cols = np.array(_cover(g["W"], g["K"], g["PAD"]))
        return np.einsum("byx,y,x->b", per_pixel.astype(np.int64), rows, cols)


def _cover(side: int, kernel: int, padding: int) -> list[int]:
    """For each input position along a side, how many output windows (stride 1) contain it."""
    out = side + 2 * padding - kernel + 1
    return [sum(1 for o in range(out) if o - padding <= y <= o - padding + kernel - 1) for y in range(side)]


class MaxPool(StreamOp):
    module = "hqflow_stream_pool"

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


class Add(StreamOp):
    module = "hqflow_stream_add"

    def build(self, graph, node, inputs, lanes):
        out_bits = value_bits(node.value_max)
        return {"params": {"T": graph.time_steps, "A_BITS": inputs[0].bits, "B_BITS": inputs[1].bits,
                           "OUT_BITS": out_bits, "SIZE": math.prod(node.shape)}, "bits": out_bits}

    def cycles(self, params, time_steps, nnz=None):
        return params["SIZE"]


class Ssa(StreamOp):
    module = "hqflow_stream_ssa"
    barrier = True

    def build(self, graph, node, inputs, lanes):
        tokens, dim = node.shape
        consts = common.lif_consts(node.attrs, graph.node_tensors(node.name))
        if len({int(v) for v in consts.bias_int}) > 1 or len({int(v) for v in consts.thr_int}) > 1 \
                or len({int(v) for v in consts.sign}) > 1:
            raise UserError(f"node {node.name}: the attention LIF has per-channel constants; the RTL ssa core has one")
        v_bits = int(node.attrs["v_bits"])
        return {"bits": 1, "params": {
            "N": tokens, "D": dim, "HEADS": int(node.attrs["num_heads"]), "T": graph.time_steps,
            "ACC_BITS": int(node.attrs["acc_bits"]), "V_BITS": v_bits, "F": int(node.attrs["frac_bits"]),
            "BIAS": f"64'h{int(consts.bias_int[0]) % (1 << 64):x}", "THR": f"64'h{int(consts.thr_int[0]) % (1 << 64):x}",
            "SIGN": int(consts.sign[0])}}

    def cycles(self, params, time_steps, nnz=None):
        p = params
        return p["N"] * (1 + 2 * p["D"]) + 1 + p["N"] * p["HEADS"] * (p["D"] // p["HEADS"] + time_steps + 2)


class Head(StreamOp):
    module = "hqflow_stream_head"

    def lane_choices(self, graph, node, lanes):
        bits = numerics.rom_code_bits(numerics.Candidate.parse(node.attrs["format"]))
        return _lanes_for(bits, node.shape[0], lanes)

    def build(self, graph, node, inputs, lanes):
        fmt = numerics.Candidate.parse(node.attrs["format"])
        name = ident(node.name)
        tokens, channels = graph.node(node.inputs[0]).shape
        logit_bits = int(node.attrs["logit_bits"])
        bias = [int(b) % (1 << logit_bits) for b in graph.tensor(node.name, "bias_int")]
        classes = node.shape[0]
        groups = -(-classes // lanes)
        bias += [0] * (groups * lanes - classes)
        lines = [sum(bias[g * lanes + p] << (p * logit_bits) for p in range(lanes)) for g in range(groups)]
        files = {f"{name}_weights.mem": memfiles.rom_lines(graph, node, lanes)[0],
                 f"{name}_bias.mem": memfiles.hex_lines(lines, lanes * logit_bits)}
        params = {"N": tokens, "C": channels, "K": classes, "P": lanes, "BITS": numerics.rom_code_bits(fmt),
                  "SCHEME": SCHEME_CODE[fmt.scheme], "ZERO_LEVEL": int(fmt.zero_level),
                  "ZP": int(node.attrs.get("zero_point", 0)), "T": graph.time_steps, "IN_BITS": inputs[0].bits,
                  "SUM_BITS": value_bits(node.attrs["x_max"]), "ACC_BITS": int(node.attrs["acc_bits"]),
                  "LOGIT_BITS": logit_bits, "BF": int(node.attrs["bias_frac_bits"]),
                  "ROM_FILE": f'"mem/{name}_weights.mem"', "BIAS_FILE": f'"mem/{name}_bias.mem"'}
        return {"params": params, "files": files, "lanes": lanes, "bits": None}

    def cycles(self, params, time_steps, nnz=None):
        p = params
        return p["N"] * p["C"] + -(-p["K"] // p["P"]) * (p["C"] + 2)


class NoCore(StreamOp):
    """input (the top's input stream) and tokens (the identity: its stream is its input's)."""


STREAM_OPS: dict[str, StreamOp] = {"input": NoCore(), "conv_lif": WeightedLif(), "linear_lif": WeightedLif(),
                                   "maxpool": MaxPool(), "add": Add(), "tokens": NoCore(), "ssa": Ssa(),
                                   "head": Head()}
check_backend(STREAM_OPS, "the streaming RTL top (export/rtl/stream.py STREAM_OPS)")


# ---- folding --------------------------------------------------------------------------------------


def _node_streams(graph: DeployGraph) -> tuple[dict[str, Stream], dict[str, str]]:
    """Every node's output stream (tokens share their input's) and node -> stream ident."""
    streams: dict[str, Stream] = {}
    of: dict[str, str] = {}
    steps = graph.time_steps
    for node in graph.nodes:
        if node.op == "tokens":
            if len(graph.node(node.inputs[0]).shape) != 3:
                raise UserError(f"node {node.name}: tokens of a {graph.node(node.inputs[0]).shape} input")
            of[node.name] = of[node.inputs[0]]
            continue
        if node.op == "head":
            continue
        if node.op == "input" and len(node.shape) != 3:
            raise UserError(f"node {node.name}: input of shape {node.shape}; the RTL top reads [C, H, W] frames")
        bits = value_bits(node.value_max)
        stream = Stream(ident(node.name), node.name, bits, bits * steps, math.prod(node.shape))
        streams[stream.ident] = stream
        of[node.name] = stream.ident
    return streams, of


def fold(graph: DeployGraph, lanes: int, target_interval: int | None = None,
         nnz: dict[str, float] | None = None) -> tuple[dict[str, int | tuple[int, int]], int]:
    """P per weighted node (and the head): the smallest allowed P whose cycles per image meet the
    target interval. The target: `target_interval` if given, else the largest cycles per image any core
    has at its largest P (<= lanes): the fastest pipeline the lane bound allows, every core folded as
    far as that interval lets it. `nnz`: per event-driven node its nonzero input elements per image
    (the mean of a trace: the folding is for those input rates), absent: every element (the worst
    case). A weighted core then gets the fewest LIF lanes (P / chunks, up to MAX_LIF_CHUNKS passes a
    step) that still meet the target: its LIF is the widest adder of the core and works T steps of a
    group only. Returns ({node: P, or (P, LIF lanes) for conv_lif / linear_lif}, the target)."""
    nnz = nnz or {}
    streams, of = _node_streams(graph)
    steps = graph.time_steps
    choices: dict[str, list[tuple[int, int]]] = {}  # node -> [(P, cycles)]
    fixed: list[int] = []
    for node in graph.nodes:
        op = STREAM_OPS[node.op]
        if isinstance(op, NoCore):
            continue
        inputs = [streams[of[src]] for src in node.inputs]
        options = op.lane_choices(graph, node, lanes)
        if options == [0]:
            fixed.append(math.ceil(op.cycles(op.build(graph, node, inputs, 0)["params"], steps)))
            continue
        if not options:
            raise UserError(f"node {node.name}: no lane count <= {lanes} fits its ROM word")
        choices[node.name] = [(p, math.ceil(op.cycles(_params_only(op, graph, node, inputs, p), steps,
                                                      nnz.get(node.name)))) for p in options]
    if target_interval is None:
        target_interval = max([min(c for _, c in opts) for opts in choices.values()] + fixed)
    chosen = {}
    for name, opts in choices.items():
        meeting = [p for p, c in opts if c <= target_interval]
        chosen[name] = min(meeting) if meeting else min(opts, key=lambda pc: (pc[1], pc[0]))[0]
        node = graph.node(name)
        if isinstance(STREAM_OPS[node.op], WeightedLif):  # then the fewest LIF lanes that still meet it
            op, lanes_p = STREAM_OPS[node.op], chosen[name]
            params = _params_only(op, graph, node, [], lanes_p)
            lif = lanes_p
            for chunks in range(2, MAX_LIF_CHUNKS + 1):
                if lanes_p % chunks == 0 and math.ceil(op.cycles({**params, "LIF_LANES": lanes_p // chunks}, steps,
                                                                nnz.get(name))) <= target_interval:
                    lif = lanes_p // chunks
            chosen[name] = (lanes_p, lif)
    return chosen, int(target_interval)


def _params_only(op: StreamOp, graph: DeployGraph, node: Node, inputs: list[Stream], lanes: int) -> dict:
    """The parameters the cycle formula reads, without writing memory files."""
    if isinstance(op, WeightedLif):
        return {**op._geometry(graph, node), "P": lanes}
    if isinstance(op, Head):
        tokens, channels = graph.node(node.inputs[0]).shape
        return {"N": tokens, "C": channels, "K": node.shape[0], "P": lanes}
    return op.build(graph, node, inputs, lanes)["params"]


# ---- the schedule ------------------------------------------------------------------------------------


def plan_stream(graph: DeployGraph, lanes: int = 64, target_interval: int | None = None,
                nnz: dict[str, float] | None = None) -> Schedule:
    """The streaming pipeline of `graph`: cores (folded: `fold`, for the input rates `nnz`), streams,
    forks and FIFOs. A core's `cycles`: its formula at those rates (rounded up), the worst case without."""
    streams, of = _node_streams(graph)
    nnz = nnz or {}
    folding, target = fold(graph, lanes, target_interval, nnz)
    consumers: dict[str, list[tuple[str, int]]] = {}  # stream -> [(consumer node, input port)]
    for node in graph.nodes:
        if isinstance(STREAM_OPS[node.op], NoCore):
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
            if graph.node(user).op == "add":
                fifo = Fifo(f"{branch}_q", branch, f"{branch}_q", stream.width, stream.size)
                fifos.append(fifo)
                port_stream[(user, port)] = fifo.output
            else:
                port_stream[(user, port)] = branch
    cores = []
    head = None
    for node in graph.nodes:
        op = STREAM_OPS[node.op]
        if isinstance(op, NoCore):
            continue
        inputs = [streams[of[src]] for src in node.inputs]
        built = op.build(graph, node, inputs, folding.get(node.name, 0))
        cores.append(StreamCore(len(cores), node.name, node.op, op.module, ident(node.name), built["params"],
                                tuple(port_stream[(node.name, k)] for k in range(len(node.inputs))),
                                of.get(node.name, "out"),
                                math.ceil(op.cycles(built["params"], graph.time_steps, nnz.get(node.name))),
                                built.get("lanes", 0), built.get("files", {})))
        if node.op == "head":
            head = node
    if head is None or cores[-1].op != "head":
        raise UserError("the graph does not end in a head: the RTL top streams the head's logits")
    source = graph.nodes[0]
    return Schedule(tuple(cores), tuple(streams.values()), of, tuple(forks), tuple(fifos), tuple(source.shape),
                    value_bits(source.value_max), int(head.shape[0]), int(head.attrs["logit_bits"]),
                    graph.time_steps, target)
