"""The HLS top as a dataflow: the schedule's pipeline (export/rtl/stream.py, the one the RTL top renders)
as hls::streams and process calls.

    schedule core          -> one process: its op's kernel call (views: its config), in the schedule's order
    schedule stream        -> an hls::stream of ap_uint<T * bits> words ("in": the top's input port;
                              the head writes the top's output port "out")
    schedule fork          -> a hqflow::fork process into one stream per branch
    schedule FIFO          -> no process: the depth (an image's elements) of the stream it sits on, in block
                              RAM or UltraRAM by size (a small one in shift registers)

Each process call is followed, in a C simulation only, by the trace of the nodes its output carries
(the node and its aliases, tokens): hqflow_stream.h's trace reads the stream back in the node's layout.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hqflow.errors import UserError
from hqflow.export.hls import cpp_types
from hqflow.export.hls.ops import LUTRAM_BITS
from hqflow.export.hls.views import NodeView
from hqflow.ir import DeployGraph

__all__ = ["Dataflow", "HlsStream", "Process", "Trace", "plan_dataflow"]

DEFAULT_DEPTH = 2  # an hls::stream's depth unless the schedule puts a FIFO on it (Vitis' default)
MAX_FORK = 4  # branches of hqflow::fork (hqflow_stream.h)


@dataclass(frozen=True)
class HlsStream:
    """One hls::stream of the dataflow region: `size` words an image of `width` bits (T values of `bits`),
    `depth` words deep, in `storage` ("srl": shift registers, "bram", "uram")."""

    name: str
    word: cpp_types.CType
    width: int
    bits: int
    size: int
    depth: int
    storage: str

CALL_COLUMNS = 112  # a process call's lines, indented by 4 in the top


@dataclass(frozen=True)
class Trace:
    """A node to trace after its process: its index, the stream, the layout (pixels > 0: a [C][H W] map)."""

    node: int
    stream: str
    bits: int
    channels: int
    pixels: int
    signed: bool = False  # the values two's complement (the membrane shortcut's)


@dataclass(frozen=True)
class Process:
    """A call in the dataflow region: a node's kernel (node set), or a fork of `size` words (node None)."""

    node: NodeView | None
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    size: int = 0
    traces: tuple[Trace, ...] = ()

    @property
    def call(self) -> str:
        """The C++ statement: `hqflow::<kernel><ident_config>(inputs, output, tables)` (the builder's tables
        in its order), or `hqflow::fork<size>(input, outputs)`; wrapped at CALL_COLUMNS."""
        if self.node is None:
            head, args = f"hqflow::fork<{self.size}>(", [*self.inputs, *self.outputs]
        else:
            view = self.node
            head = f"hqflow::{view.kernel}<{view.ident}_config>("
            args = [*self.inputs, *self.outputs, *(f"{view.ident}_{table.field}" for table in view.tables)]
        lines, line = [], head
        for i, arg in enumerate(args):
            piece = arg + (");" if i == len(args) - 1 else ",")
            if line not in (head, "    ") and len(line) + 1 + len(piece) > CALL_COLUMNS:
                lines.append(line)
                line = "    "
            line += ("" if line in (head, "    ") else " ") + piece
        return "\n".join([*lines, line])


@dataclass(frozen=True)
class Dataflow:
    streams: tuple[HlsStream, ...]  # the region's own streams (not the ports "in" and "out")
    processes: tuple[Process, ...]
    input_traces: tuple[Trace, ...]  # the nodes the input port carries (the input, its aliases)
    in_word: cpp_types.CType
    in_stream: HlsStream


def stream_storage(width: int, depth: int, ultra: bool = False) -> str:
    """Where a stream's FIFO goes: shift registers up to LUTRAM_BITS bits (Vitis' auto-SRL bound), else
    block RAM (UltraRAM where the schedule says so)."""
    if width * depth <= LUTRAM_BITS:
        return "srl"
    return "uram" if ultra else "bram"


def plan_dataflow(graph: DeployGraph, schedule, views: dict[str, NodeView], ultra: frozenset[str] = frozenset()
                  ) -> Dataflow:
    """The streams, processes (in the schedule's order) and traces of `schedule`; views: node -> NodeView;
    ultra: the streams whose FIFOs go to UltraRAM (memory.place)."""
    width = {s.ident: s for s in schedule.streams}
    names: dict[str, str] = {}  # schedule ident (stream, fork branch, FIFO output) -> hls::stream name
    origin: dict[str, str] = {}  # hls::stream name -> the schedule stream it carries
    for st in schedule.streams:
        names[st.ident] = "in" if st.node == graph.nodes[0].name else f"{views[st.node].ident}_s"
        origin[names[st.ident]] = st.ident
    depth: dict[str, int] = {}
    pending = list(schedule.fifos) + [(f, k) for f in schedule.forks for k in range(len(f.outputs))]
    while pending:  # FIFOs and fork branches: resolved once their source is
        left = []
        for item in pending:
            if isinstance(item, tuple):
                fork, k = item
                if fork.source in names:
                    names[fork.outputs[k]] = f"{names[fork.source]}_f{k}"
                    origin[names[fork.outputs[k]]] = origin[names[fork.source]]
                else:
                    left.append(item)
            elif item.source in names:
                names[item.output] = names[item.source]  # a FIFO is the depth of the stream it sits on
                depth[names[item.source]] = max(depth.get(names[item.source], DEFAULT_DEPTH), item.depth)
            else:
                left.append(item)
        if len(left) == len(pending):
            raise UserError(f"the schedule's FIFOs and forks do not resolve to streams: {left[0]}")
        pending = left
    for fork in schedule.forks:
        if len(fork.outputs) > MAX_FORK:
            raise UserError(f"stream {fork.source}: {len(fork.outputs)} consumers; hqflow::fork takes at most {MAX_FORK}")

    def stream(name: str) -> HlsStream:
        st = width[origin[name]]
        d = depth.get(name, DEFAULT_DEPTH)
        return HlsStream(name, cpp_types.ap_uint(st.width), st.width, st.bits, st.size, d,
                         stream_storage(st.width, d, name in ultra))

    def traces(ident: str) -> tuple[Trace, ...]:
        found = []
        for node in graph.nodes:
            if schedule.node_stream.get(node.name) == ident:
                shape = node.shape
                found.append(Trace(views[node.name].index, names[ident], width[ident].bits, int(shape[0]),
                                   math.prod(shape[1:]), width[ident].signed) if len(shape) == 3 else
                             Trace(views[node.name].index, names[ident], width[ident].bits, int(shape[-1]), 0,
                                   width[ident].signed))
        return tuple(found)

    def forks_of(ident: str) -> list[Process]:
        out = []
        for fork in schedule.forks:
            if names[fork.source] == names[ident]:
                out.append(Process(None, (names[ident],), tuple(names[o] for o in fork.outputs), width[ident].size))
        return out

    in_ident = next(st.ident for st in schedule.streams if names[st.ident] == "in")
    processes: list[Process] = forks_of(in_ident)
    for core in schedule.cores:
        view = views[core.node]
        if core.output in width:
            output = names[core.output]
            processes.append(Process(view, tuple(names[i] for i in core.inputs), (output,), traces=traces(core.output)))
            processes += forks_of(core.output)
        else:  # the head: the top's output port
            processes.append(Process(view, tuple(names[i] for i in core.inputs), ("out",)))
    produced = [name for p in processes for name in p.outputs if name != "out"]
    streams = tuple(stream(name) for name in dict.fromkeys(produced))
    return Dataflow(streams, tuple(processes), traces(in_ident), stream("in").word, stream("in"))
