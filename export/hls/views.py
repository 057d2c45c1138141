"""What the templates see of the project and of each node: the options, and one NodeView per node.

An op's entry in the HLS table (ops.py) builds, from an OpContext, what is particular to the op
(Emitted: its typed kernel config, its tables, the arrays its kernel declares) from the node's core in
the schedule (its folding and placement); node_views (writer.py) adds what every node has (C
identifier, shape, output type, stream word) and freezes the lot into a NodeView.
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
    initiation interval of a weighted layer's loop over its window's inputs; the schedule's (the same
    as the RTL export's, export/rtl/stream.py): lanes, the folding's upper bound (None: 64),
    target_fps at the clock (None: the fastest the lanes allow), memory_style (the RTL's small
    memories; the schedule's placement reads it); part and clock_ns: the folding's device (it slows
    down until the resource estimate fits the part) and build_prj.tcl's (defaults: the project's
    target, hqflow.devices.DEFAULT_PART and DEFAULT_CLOCK_MHZ)."""

    name: str = ""  # "": the model family's, spikformer or sdt (write_project reads it from the graph)
    reuse_factor: int = 1
    part: str = DEFAULT_PART
    clock_ns: float = 1000.0 / DEFAULT_CLOCK_MHZ
    lanes: int | None = None
    target_fps: float | None = None
    memory_style: str = "lut"

    def __post_init__(self):
        if self.name and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", self.name):  # "": the model family's
            raise UserError(f"HLS project name {self.name!r}: must be a C identifier")
        if self.reuse_factor < 1:
            raise UserError(f"reuse factor {self.reuse_factor}: must be >= 1")
        check_part_name(self.part, "FPGA part")
        if not (math.isfinite(self.clock_ns) and self.clock_ns > 0):
            raise UserError(f"clock period {self.clock_ns} ns: must be a finite number > 0")
        if self.lanes is not None and not 1 <= self.lanes <= 256:
            raise UserError(f"--lanes {self.lanes}: expected 1 to 256")
        if self.target_fps is not None and not (math.isfinite(self.target_fps) and self.target_fps > 0):
            raise UserError(f"--target-fps {self.target_fps}: expected a finite number > 0")

    @property
    def clock_mhz(self) -> float:
        return 1000.0 / self.clock_ns


@dataclass(frozen=True)
class Table:
    """A constant table of a node: `static const <ctype> <ident>_<field><dims> = {...}` in weights/<ident>.h."""

    ctype: CType
    field: str
    values: np.ndarray  # integers, any shape
    comment: str


@dataclass(frozen=True)
class Array:
    """An array a kernel declares for one image (its memory account, export/hls/memory.py): `depth`
    words of `width` bits; storage: "rom" (a constant table), "bram", "uram" or "lutram" (a BIND_STORAGE
    the config names), "auto" (the tool's choice by size)."""

    name: str
    width: int
    depth: int
    storage: str


@dataclass(frozen=True)
class NodeView:
    """One node as the templates see it. shape: the node's output shape (C order); bits: its values'
    bits in its stream (T of them a word, word_type); stream: the HLS stream that carries its output
    ("in": the top's input port; None for the head, whose logits are the output port)."""

    index: int
    name: str
    ident: str  # the node name as a C identifier (c_ident)
    op: str
    shape: tuple[int, ...]
    inputs: tuple["NodeView", ...]
    type: CType  # its output values' typedef target
    qualified_type: CType  # <project>::<ident>_t
    bits: int
    signed: bool  # its values two's complement in their `bits` (the membrane shortcut's, the logits)
    word_type: CType | None  # ap_uint<T * bits>; None for the head
    kernel: str | None  # its process: hqflow::<kernel><ident_config>; None: no process
    header: str | None  # the kernel library header that defines it
    config: KernelConfig | None
    tables: tuple[Table, ...]
    arrays: tuple[Array, ...]


@dataclass(frozen=True)
class OpContext:
    """What an op's builder reads: the graph, the node, its inputs' views, its C identifier, the options,
    and the node's core in the schedule (export/rtl/stream.py: its folding and placement; None: no core)."""

    graph: DeployGraph
    node: Node
    inputs: tuple[NodeView, ...]
    ident: str
    options: HlsOptions
    core: object | None = None

    @property
    def source_shape(self) -> tuple[int, ...]:
        """The first input's output shape."""
        return self.inputs[0].shape

    @property
    def params(self) -> dict:
        """The schedule's parameters of the node's core."""
        return self.core.params


@dataclass(frozen=True)
class Emitted:
    """What an op's builder gives the writer. value_type: the output's C++ type where it is not
    the unsigned type of the node's stored value range, [0, node.value_max] (the head's signed logits);
    arrays: the arrays its kernel declares (the memory account)."""

    config: KernelConfig | None = None
    tables: tuple[Table, ...] = ()
    arrays: tuple[Array, ...] = ()
    value_type: CType | None = None


@dataclass(frozen=True)
class HlsOp:
    """An op's entry in the HLS table: its builder, and its process in the dataflow: the kernel function
    template `hqflow::<kernel><config>` and the library header that defines it (None: the op has no
    process, as the schedule has no core). The call passes the input streams, the output stream and the
    builder's tables in the order it emits them."""

    build: Callable[[OpContext], Emitted]
    kernel: str | None = None
    header: str | None = None


def c_ident(name: str) -> str:
    """A node name as a C identifier: blocks.0.attn.q -> blocks_0_attn_q."""
    ident = re.sub(r"\W", "_", name)
    return f"n_{ident}" if ident[0].isdigit() else ident

