"""What the templates see of the project and of each node: the options, and one NodeView per node.

An op's entry in the HLS table (ops.py) builds, from an OpContext, what is particular to the op
(Emitted: its typed kernel config, its tables, its membrane); node_views (writer.py) adds what
every node has (C identifier, shape, output type) and freezes the lot into a NodeView.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Callable

import numpy as np

from hqflow.devices import DEFAULT_CLOCK_MHZ, DEFAULT_PART, check_part_name
from hqflow.errors import UserError
from hqflow.export.hls.configs import KernelConfig
from hqflow.export.hls.cpp_types import CType
from hqflow.ir import DeployGraph, Node


@dataclass(frozen=True)
class HlsOptions:
    """name: the project (top function `<name>_top`, C++ namespace `<name>`); reuse_factor: the
    initiation interval of a conv / linear layer's accumulation, in cycles per ROM word (a word
    updates 64 // bits outputs at once); part and clock_ns: for build_prj.tcl (defaults: the
    project's target, hqflow.devices.DEFAULT_PART and DEFAULT_CLOCK_MHZ)."""

    name: str = "spikformer"
    reuse_factor: int = 1
    part: str = DEFAULT_PART
    clock_ns: float = 1000.0 / DEFAULT_CLOCK_MHZ

    def __post_init__(self):
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", self.name):
            raise UserError(f"HLS project name {self.name!r}: must be a C identifier")
        if self.reuse_factor < 1:
            raise UserError(f"reuse factor {self.reuse_factor}: must be >= 1")
        check_part_name(self.part, "FPGA part")
        if not (math.isfinite(self.clock_ns) and self.clock_ns > 0):
            raise UserError(f"clock period {self.clock_ns} ns: must be a finite number > 0")


@dataclass(frozen=True)
class Table:
    """A constant table of a node: `static const <ctype> <ident>_<field><dims> = {...}` in weights/<ident>.h."""

    ctype: CType
    field: str
    values: np.ndarray  # integers, any shape
    comment: str


# How an op's output reaches the top function (HlsOp.output):
OUTPUT_BUFFER = "buffer"  # a static array <ident>_out, rewritten every step, traced
OUTPUT_FRAMES = "frames"  # the top function's input frames[t] (the input node), traced
OUTPUT_LOGITS = "logits"  # the top function's output logits, written once after the steps, not traced
_OUTPUT_EXPRESSIONS = {OUTPUT_BUFFER: "{ident}_out", OUTPUT_FRAMES: "frames[t]", OUTPUT_LOGITS: "logits"}


@dataclass(frozen=True)
class NodeView:
    """One node as the templates see it. shape: the node's output shape (C order); out: the C
    expression of its output in the top function; membrane_shape: the LIF membrane's array
    shape, None without one."""

    index: int
    name: str
    ident: str  # the node name as a C identifier (c_ident)
    op: str
    shape: tuple[int, ...]
    inputs: tuple["NodeView", ...]
    type: CType  # its output values' typedef target
    qualified_type: CType  # <project>::<ident>_t
    output: str  # OUTPUT_BUFFER, OUTPUT_FRAMES or OUTPUT_LOGITS
    template: str  # the op's call template (project/ops/<op>.cpp.j2)
    config: KernelConfig | None
    tables: tuple[Table, ...]
    membrane_shape: tuple[int, ...] | None

    @property
    def out(self) -> str:
        return _OUTPUT_EXPRESSIONS[self.output].format(ident=self.ident)

    @property
    def buffer(self) -> bool:
        return self.output == OUTPUT_BUFFER

    @property
    def traced(self) -> bool:
        return self.output != OUTPUT_LOGITS


@dataclass(frozen=True)
class OpContext:
    """What an op's builder reads: the graph, the node, its inputs' views, its C identifier."""

    graph: DeployGraph
    node: Node
    inputs: tuple[NodeView, ...]
    ident: str
    options: HlsOptions

    @property
    def source_shape(self) -> tuple[int, ...]:
        """The first input's output shape."""
        return self.inputs[0].shape


@dataclass(frozen=True)
class Emitted:
    """What an op's builder gives the writer. value_type: the output's C++ type where it is not
    the unsigned type of the node's stored value range, [0, node.value_max] (the head's signed logits)."""

    config: KernelConfig | None = None
    tables: tuple[Table, ...] = ()
    membrane_shape: tuple[int, ...] | None = None
    value_type: CType | None = None


@dataclass(frozen=True)
class HlsOp:
    """An op's entry in the HLS table: its builder, the template of its call in the top function
    (macros `state`, `step` and `finish`, each optional), and how its output reaches the top."""

    build: Callable[[OpContext], Emitted]
    template: str
    output: str = OUTPUT_BUFFER


def c_ident(name: str) -> str:
    """A node name as a C identifier: blocks.0.attn.q -> blocks_0_attn_q."""
    ident = re.sub(r"\W", "_", name)
    return f"n_{ident}" if ident[0].isdigit() else ident

