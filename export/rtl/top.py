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
  of the last step; no back-pressure (K values).

`plan_top` decides every core's parameters, buffer and wiring from the graph (Python chooses
numbers and names only; the arithmetic is the cores'). `hqflow_top.v.j2` renders it.
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

__all__ = ["Buffer", "Core", "TopPlan", "choose_pack_lanes", "layout", "plan_top", "RTL_OPS"]

SCHEME_CODE = {"uniform": 0, "po2": 1, "fp32": 2}
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


def _ident(name: str) -> str:
    return "n_" + re.sub(r"[^A-Za-z0-9_]", "_", name)


def _bits(value_max: int) -> int:
    return max(1, int(value_max).bit_length())


def layout(graph: DeployGraph, node: Node, values: np.ndarray) -> np.ndarray:
    """A node's output [..., *node.shape] in the RTL layout, flattened per step: feature maps
    [C, H, W] channels last ([H, W, C]); tokens [N, C] and the rest as they are."""
    if len(node.shape) == 3:
        values = np.moveaxis(values, -3, -1)
    return values.reshape(*values.shape[: values.ndim - len(node.shape)], math.prod(node.shape))


def choose_pack_lanes(bits: int, outputs: int, requested: int) -> int:
    """P for a weighted node feeding a buffer: the largest power of two <= `requested` that its ROM
    word allows (memfiles.allowed_lanes) and that divides `outputs`."""
    return max(p for p in memfiles.allowed_lanes(bits) if p <= requested and p & (p - 1) == 0 and outputs % p == 0)


def _check_window(node: Node, kernel: int, stride: int, padding: int, what: str) -> None:
    got = tuple(int(node.attrs.get(key, default)) for key, default in
                (("kernel_size", kernel), ("stride", stride), ("padding", padding)))
    if got != (kernel, stride, padding):
        raise UserError(f"node {node.name}: {node.op} with kernel {got[0]}, stride {got[1]}, padding {got[2]}; "
                        f"the RTL {what} core implements kernel {kernel}, stride {stride}, padding {padding}")


def _hex(value: int, width: int) -> str:
    return f"{width}'h{int(value) % (1 << width):x}"


# ---- one builder per op: (graph, node, buffers of its inputs, lanes) -> Core fields ------------------


def _weighted(graph: DeployGraph, node: Node, reads: list[Buffer], lanes: int) -> dict:
    fmt = numerics.Candidate.parse(node.attrs["format"])
    bits = numerics.rom_code_bits(fmt)
    outputs = node.shape[0] if node.op == "conv_lif" else node.shape[1]
    parallel = choose_pack_lanes(bits, outputs, lanes)
    ident = _ident(node.name)
    x_bits = _bits(node.attrs["x_max"])
    if reads[0].bits > x_bits:
        raise UserError(f"node {node.name}: its input holds {reads[0].bits}-bit values, attrs.x_max "
                        f"{node.attrs['x_max']} only {x_bits} bits; export the run again")
    params = {"P": parallel, "BITS": bits, "SCHEME": SCHEME_CODE[fmt.scheme], "ZERO_LEVEL": int(fmt.zero_level),
              "ZP": int(node.attrs.get("zero_point", 0)), "X_BITS": x_bits, "ACC_BITS": int(node.attrs["acc_bits"]),
              "V_BITS": int(node.attrs["v_bits"]), "F": int(node.attrs["frac_bits"]),
              "T": int(node.attrs["frac_bits"]) - int(node.attrs["bias_frac_bits"])}
    source = graph.node(node.inputs[0])
    if node.op == "conv_lif":
        _check_window(node, 3, 1, 1, "conv")
        c, h, w = source.shape
        params.update(C=c, H=h, W=w, O=outputs)
    else:
        n, c = source.shape
        params.update(N=n, C=c, O=outputs)
    files = {f"{ident}_weights.mem": memfiles.rom_lines(graph, node, parallel)[0]}
    for key, text in memfiles.lif_tables(graph, node, parallel).items():
        files[f"{ident}_{key}.mem"] = text
    for key in ("ROM", "BIAS", "THR", "SIGN"):
        params[f"{key}_FILE"] = f'"mem/{ident}_{ {"ROM": "weights"}.get(key, key.lower()) }.mem"'
    module = "hqflow_conv_lif" if node.op == "conv_lif" else "hqflow_linear_lif"
    return {"module": module, "params": params, "lanes": parallel, "files": files, "pack": parallel, "bits": 1}


def _maxpool(graph: DeployGraph, node: Node, reads: list[Buffer], lanes: int) -> dict:
    _check_window(node, 3, 2, 1, "maxpool")
    if reads[0].bits != 1:
        raise UserError(f"node {node.name}: maxpool of {reads[0].bits}-bit values; the RTL core pools spikes")
    c, h, w = graph.node(node.inputs[0]).shape
    return {"module": "hqflow_maxpool", "params": {"CHANNELS": c, "HEIGHT": h, "WIDTH": w}, "bits": 1}


def _add(graph: DeployGraph, node: Node, reads: list[Buffer], lanes: int) -> dict:
    return {"module": "hqflow_add", "bits": _bits(node.value_max),
            "params": {"SIZE": math.prod(node.shape), "A_BITS": reads[0].bits, "B_BITS": reads[1].bits,
                       "OUT_BITS": _bits(node.value_max)}}


def ssa_lif_consts(graph: DeployGraph, node: Node) -> numerics.LifConsts:
    """The attention LIF's constants, checked to be one channel's (both architectures' ssa cores have one)."""
    consts = common.lif_consts(node.attrs, graph.node_tensors(node.name))
    if len({int(v) for v in consts.bias_int}) > 1 or len({int(v) for v in consts.thr_int}) > 1 \
            or len({int(v) for v in consts.sign}) > 1:
        raise UserError(f"node {node.name}: the attention LIF has per-channel constants; the RTL ssa core has one")
    return consts


def _ssa(graph: DeployGraph, node: Node, reads: list[Buffer], lanes: int) -> dict:
    tokens, dim = node.shape
    consts = ssa_lif_consts(graph, node)
    v_bits = int(node.attrs["v_bits"])
    sign = {1: "2'b01", -1: "2'b11", 0: "2'b00"}[int(consts.sign[0])]
    return {"module": "hqflow_ssa", "bits": 1,
            "params": {"TOKENS": tokens, "DIM": dim, "HEADS": int(node.attrs["num_heads"]),
                       "ACC_BITS": int(node.attrs["acc_bits"]), "V_BITS": v_bits, "F": int(node.attrs["frac_bits"]),
                       "T": int(node.attrs["frac_bits"]) - int(node.attrs["bias_frac_bits"])},
            "consts": {"bias": _hex(consts.bias_int[0], v_bits), "thr": _hex(consts.thr_int[0], v_bits), "sign": sign}}


def _head(graph: DeployGraph, node: Node, reads: list[Buffer], lanes: int) -> dict:
    fmt = numerics.Candidate.parse(node.attrs["format"])
    bits = numerics.rom_code_bits(fmt)
    parallel = memfiles.choose_lanes(bits, lanes)
    ident = _ident(node.name)
    tokens, channels = graph.node(node.inputs[0]).shape
    logit_bits = int(node.attrs["logit_bits"])
    bias = graph.tensor(node.name, "bias_int")
    files = {f"{ident}_weights.mem": memfiles.rom_lines(graph, node, parallel)[0],
             f"{ident}_bias.mem": memfiles.hex_lines([int(b) % (1 << logit_bits) for b in bias], logit_bits)}
    params = {"TOKENS": tokens, "CHANNELS": channels, "CLASSES": node.shape[0], "P": parallel, "BITS": bits,
              "SCHEME": SCHEME_CODE[fmt.scheme], "ZERO_LEVEL": int(fmt.zero_level),
              "ZP": int(node.attrs.get("zero_point", 0)), "IN_BITS": reads[0].bits,
              "SUM_BITS": _bits(node.attrs["x_max"]), "ACC_BITS": int(node.attrs["acc_bits"]),
              "LOGIT_BITS": logit_bits, "BF": int(node.attrs["bias_frac_bits"]),
              "ROM_FILE": f'"mem/{ident}_weights.mem"', "BIAS_FILE": f'"mem/{ident}_bias.mem"'}
    return {"module": "hqflow_head", "params": params, "lanes": parallel, "files": files, "bits": None}


def _no_core(graph, node, reads, lanes) -> dict:  # input (the loader writes it), tokens (an alias)
    return {}


# op -> builder; the template of each op's instance is project/top_ops/<op>.v.j2
RTL_OPS = {"input": _no_core, "conv_lif": _weighted, "linear_lif": _weighted, "maxpool": _maxpool, "add": _add,
           "tokens": _no_core, "ssa": _ssa, "head": _head}
check_backend(RTL_OPS, "the RTL top (export/rtl/top.py RTL_OPS)")


def plan_top(graph: DeployGraph, lanes: int = 8) -> TopPlan:
    """Cores, buffers and wiring of `graph` with at most `lanes` output channels a cycle per core."""
    buffers: dict[str, Buffer] = {}
    aliases: dict[str, str] = {}
    cores: list[Core] = []
    head = None
    for node in graph.nodes:
        if node.op == "input":
            if len(node.shape) != 3:
                raise UserError(f"node {node.name}: input of shape {node.shape}; the RTL top reads [C, H, W] frames")
            buffers[node.name] = Buffer(_ident(node.name), node.name, math.prod(node.shape), 1, _bits(node.value_max))
            continue
        reads = [buffers[aliases.get(src, src)] for src in node.inputs]
        if node.op == "tokens":
            if len(graph.node(node.inputs[0]).shape) != 3:
                raise UserError(f"node {node.name}: tokens of a {graph.node(node.inputs[0]).shape} input")
            aliases[node.name] = aliases.get(node.inputs[0], node.inputs[0])
            continue
        built = RTL_OPS[node.op](graph, node, reads, lanes)
        writes = None
        if built.get("bits") is not None:
            buffers[node.name] = Buffer(_ident(node.name), node.name, math.prod(node.shape),
                                        built.get("pack", 1), built["bits"])
            writes = buffers[node.name].ident
        core = Core(len(cores), node.name, node.op, built["module"], _ident(node.name), built["params"],
                    tuple(b.ident for b in reads), writes, built.get("lanes", 0), built.get("consts", {}),
                    built.get("files", {}))
        cores.append(core)
        if node.op == "head":
            head = node
    if head is None or cores[-1].op != "head":
        raise UserError("the graph does not end in a head: the RTL top streams the head's logits")
    source = next(n for n in graph.nodes if n.op == "input")
    return TopPlan(tuple(cores), tuple(buffers.values()),
                   {name: _ident(target) for name, target in aliases.items()}, tuple(source.shape),
                   _bits(source.value_max), int(head.shape[0]), int(head.attrs["logit_bits"]), graph.time_steps,
                   cores[-1].lanes)


SEQUENCER_CYCLES = 1  # the top's start cycle before each core, counted with the core by rtlsim


def core_cycles(op: str, params: dict, nonzero: int, last: bool) -> int:
    """Cycles of one core in one time step, as its header documents them (start edge to done edge):
    the one home of the cores' cycle formulas (the top, the core tests and the estimate use it).
    params: the core's Verilog parameters; nonzero: the nonzero values of its input in the step (the
    event-driven weighted cores); last: the last step (the head's logits)."""
    p = params
    if op == "tokens":
        return p["CHANNELS"] * p["HEIGHT"] * p["WIDTH"] + 2
    if op == "conv_lif":
        groups = -(-p["O"] // p["P"])
        core = p["C"] * p["H"] * p["W"] + nonzero * (9 * groups + 1) + p["H"] * p["W"] * groups + 4
    elif op == "linear_lif":
        groups = -(-p["O"] // p["P"])
        core = p["N"] * (p["C"] + groups + 2) + nonzero * (groups + 1) + 2
    elif op == "maxpool":
        core = p["CHANNELS"] * p["HEIGHT"] * p["WIDTH"] + (p["WIDTH"] - 1) // 2 + 1 + 1
    elif op == "add":
        core = p["SIZE"] + 2
    elif op == "ssa":
        core = 4 * p["TOKENS"] * p["DIM"] + p["HEADS"] + 2
    elif op == "head":
        groups = -(-p["CLASSES"] // p["P"])
        core = p["TOKENS"] * p["CHANNELS"] + (p["CHANNELS"] * groups + p["CLASSES"] + 2 if last else 1)
    else:
        raise ValueError(f"no cycle formula for op {op!r}")
    return core


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
