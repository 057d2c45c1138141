"""The Op base class, its attribute and tensor schemas, and NodeCheck (the checks of one node).

An op is one kind of DeployGraph node. Its class declares, in one place: its name and arity, its
integer attributes (`Attr`: key, range, the default a builder fills in), its metadata (floats kept
for reports), its tensors (`TensorField`: field, dtype, shape rule), how a node is validated
(`validate`), and the figures the graph file stores because backends need them (`figures`: the
node's `value_max` and op-specific ones, which `load_graph` checks equal what the op computes) and
the widths a builder fills in (`widths`: acc_bits, v_bits; a stored width may be wider, never
narrower). A window op (conv_lif, maxpool) also declares its `Window` (kernel size, stride, padding:
the geometry its backends implement, which the model's topology takes from it). Everything is a
Python int; ranges are inclusive.
"""

from __future__ import annotations

import functools
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from hqflow import numerics
from hqflow.errors import UserError

if TYPE_CHECKING:  # hqflow.ir imports the ops; the ops only name its types
    from hqflow.ir import DeployGraph, Node

MAX_WIDTH = 64  # every accumulator, membrane and logit width: the C simulation's 64-bit model holds it
VALUE_LIMIT = 2**62  # node output values stay below this, so that a residual add cannot leave int64
MAX_FRAC_BITS = 62  # fractional bits of a bias or membrane: int64 keeps its sign and one integer bit


def is_int(value) -> bool:
    """A JSON or NumPy integer (bool excluded)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


@dataclass(frozen=True)
class Attr:
    """An integer attribute: `key` in [lo, hi] (hi None: unbounded); `default` is what a builder fills
    in when the caller gives none (None: the caller must give it); `what` says what it means."""

    key: str
    lo: int
    hi: int | None = None
    what: str = ""
    default: int | None = None


@dataclass(frozen=True)
class Window:
    """The geometry of a square window op (conv_lif, maxpool): a `kernel_size` x `kernel_size` window
    sliding with `stride` over the input with `padding` zeros on each side."""

    kernel_size: int
    stride: int
    padding: int

    def out(self, side: int) -> int:
        """Output side for an input side of `side` positions (torch's Conv2d / MaxPool2d, floor mode)."""
        return (side + 2 * self.padding - self.kernel_size) // self.stride + 1

    def attrs(self) -> tuple[Attr, Attr, Attr]:
        """Its attributes kernel_size, stride, padding, each fixed to this window (what the backends
        implement) and filled in by default."""
        return (Attr("kernel_size", self.kernel_size, self.kernel_size,
                     f"the square window: {self.kernel_size} only", default=self.kernel_size),
                Attr("stride", self.stride, self.stride, f"stride {self.stride} only", default=self.stride),
                Attr("padding", self.padding, self.padding, f"zero padding on each side: {self.padding} only",
                     default=self.padding))


def check_window(check: NodeCheck, window_attrs: tuple[Attr, ...], source: Node, channels: int | None = None,
                 what: str = "window") -> tuple[Window, int]:
    """A window node on input `source` [C, H, W]: its kernel_size, stride and padding in range
    (`window_attrs`) and its shape [channels (default C), H', W']. Returns the window and C."""
    in_channels, height, width = check.shape_of(source, 3, "[channels, height, width]")
    window = Window(*(check.attr(spec) for spec in window_attrs))
    check.expect_shape((in_channels if channels is None else channels, window.out(height), window.out(width)),
                       f"{window.kernel_size}x{window.kernel_size} {what}, stride {window.stride}, "
                       f"padding {window.padding}")
    return window, in_channels


@dataclass(frozen=True)
class TensorField:
    """A tensor `<node>/<field>` of an op: stored as `dtype`, of the shape `shape` describes."""

    field: str
    dtype: type
    shape: str


class NodeCheck:
    """The checks of one node; every message starts `<file>: node '<name>'` and names the field at fault."""

    def __init__(self, graph: DeployGraph, node: Node, where: str, tensors_where: str):
        self.graph, self.node, self.fields = graph, node, []
        self.at, self.tensors_at = f"{where}: node {node.name!r}", f"{tensors_where}: node {node.name!r}"

    def fail(self, message: str, tensors: bool = False):
        raise UserError(f"{self.tensors_at if tensors else self.at}: {message}")

    def shape_of(self, source: Node, ndim: int, what: str) -> tuple[int, ...]:
        """The shape of input `source`, which must have `ndim` dimensions (`what` names them)."""
        if len(source.shape) != ndim:
            self.fail(f"input {source.name!r} has shape {list(source.shape)}; op {self.node.op} takes {what}")
        return source.shape

    def own_ndim(self, ndim: int, what: str) -> None:
        if len(self.node.shape) != ndim:
            self.fail(f"shape {list(self.node.shape)}; op {self.node.op} outputs {what}")

    def expect_shape(self, shape: Sequence[int], why: str) -> None:
        if self.node.shape != tuple(shape):
            self.fail(f"shape {list(self.node.shape)}; expected {list(shape)} ({why})")

    def attr_int(self, key: str, lo: int, hi: int | None = None, what: str = "") -> int:
        attrs = self.node.attrs
        words = f"an integer >= {lo}" if hi is None else f"an integer in {lo}..{hi}"
        words += f" ({what})" if what else ""
        if key not in attrs:
            self.fail(f"attrs.{key} missing; expected {words}")
        value = attrs[key]
        if not is_int(value) or value < lo or (hi is not None and value > hi):
            self.fail(f"attrs.{key} {value!r}; expected {words}")
        return int(value)

    def attr(self, spec: Attr) -> int:
        return self.attr_int(spec.key, spec.lo, spec.hi, spec.what)

    def width(self, key: str, lo: int, hi: int, what: str) -> int:
        """A width attribute: an integer that holds [lo, hi] (signed) and is at most 64 bits."""
        need = numerics.bits_for(lo, hi)
        if need > MAX_WIDTH:
            self.fail(f"{what} [{lo}, {hi}] needs {need} bits, more than {MAX_WIDTH}")
        value = self.attr_int(key, 1, MAX_WIDTH, "a width in bits")
        if value < need:
            self.fail(f"attrs.{key} {value} cannot hold {what} [{lo}, {hi}] ({need} bits needed)")
        return value

    def figure(self, key: str, expected: int, why: str) -> None:
        """A stored figure (attrs.<key>) that must equal what the op computes: a stale or edited value fails."""
        value = self.attr_int(key, 0, what=why)
        if value != expected:
            self.fail(f"attrs.{key} {value}; the op computes {expected} ({why}): a stale or edited figure")

    def tensor(self, name: str, shape: Sequence[int], lo: int, hi: int, what: str) -> np.ndarray:
        """The tensor `<node>/<name>`: integer dtype, `shape`, every value in [lo, hi] (`what` says the range)."""
        key = f"{self.node.name}/{name}"
        self.fields.append(key)
        if key not in self.graph.tensors:
            self.fail(f"tensor {name!r} missing from tensors.npz", tensors=True)
        array = self.graph.tensors[key]
        if not isinstance(array, np.ndarray) or array.dtype.kind not in "iu":
            self.fail(f"tensor {name!r} has dtype {getattr(array, 'dtype', type(array).__name__)}, expected an "
                      "integer type", tensors=True)
        if array.shape != tuple(shape):
            self.fail(f"tensor {name!r} has shape {array.shape}, expected {tuple(shape)}", tensors=True)
        if array.size:
            low, high = int(array.min()), int(array.max())
            if low < lo or high > hi:
                bad = low if low < lo else high
                index = tuple(int(i) for i in np.argwhere(array == bad)[0])
                self.fail(f"tensor {name!r} holds {bad} at index {index}; expected {what}", tensors=True)
        return array


@dataclass(frozen=True)
class Neurons:
    """A group of integer LIF neurons an op runs (numerics.lif_step): `acc_seq` their input, an array
    [T, B, ...] or an iterable of the T steps' arrays [B, ...]; `consts` the tables, `channel_axis` the axis
    of one step that indexes them. `name`: the node's, or the node's with a suffix for a LIF inside an op
    whose output is not the LIF's spikes (sdsa's mask)."""

    name: str
    acc_seq: Any
    consts: numerics.LifConsts
    channel_axis: int

    def run(self, observe=None) -> np.ndarray:
        """Their spikes uint8 [T, B, ...] (numerics.lif_run; `observe` sees each step's membranes)."""
        return numerics.lif_run(self.acc_seq, self.consts, self.channel_axis, observe)


@dataclass(frozen=True)
class SynOps:
    """The synaptic operations of one layer over a batch, as NeuroBench counts them: `effective` the products
    whose input and weight are both non-zero, `dense` every product (zero inputs and weights included),
    `accumulate` whether every input of the batch is in {-1, 0, 1} (NeuroBench's AC; else its MACs).
    `neurobench`: a layer NeuroBench counts (its Linear / Conv); False: hqflow's addition (the attention's
    spike products, which NeuroBench does not see)."""

    name: str
    effective: int
    dense: int
    accumulate: bool
    neurobench: bool = True


class Op:
    """One DeployGraph op. Subclasses set the class attributes and implement validate and figures."""

    name: ClassVar[str]
    arity: ClassVar[int]
    attrs: ClassVar[tuple[Attr, ...]] = ()  # integer attributes (a format string is the weights' own)
    metadata: ClassVar[tuple[str, ...]] = ()  # float attributes, for reports only (never read by a backend)
    tensors: ClassVar[tuple[TensorField, ...]] = ()  # weight codes come with the format (common.WEIGHT_FIELDS)
    output: ClassVar[str] = ""  # the output shape, in words
    value_limit: ClassVar[int] = VALUE_LIMIT  # outputs stay below it (a residual add must not leave int64)
    window: ClassVar[Window | None] = None  # a window op's geometry (the one its backends implement)
    spiking: ClassVar[bool] = False  # its output is a LIF's spikes (a model's LIF module reproduces them)

    def validate(self, check: NodeCheck, sources: Sequence[Node]) -> None:
        """Check the node's shape, attributes and tensors; every source is already validated (its
        value_max is the proven largest value of its output). Fails through `check`."""
        raise NotImplementedError

    def execute(self, graph: DeployGraph, node: Node, *inputs: np.ndarray) -> np.ndarray:
        """The node's output over whole sequences, bit for bit the integer model: each input (the input
        node: the frames [B, T, C, H, W]) and the result are integer arrays [T, B, *shape]. The NumPy
        simulator (hqflow.sim.run) calls it node by node; the hardware backends are compared with it. An op
        with neurons need not define it: its LIF groups (Op.neurons) charge, fire and reset, then `fired`
        makes the output of their spikes."""
        if not self.neurons(graph, node, *inputs):
            raise NotImplementedError
        return self.run(graph, node, inputs)

    def run(self, graph: DeployGraph, node: Node, inputs: Sequence[np.ndarray], watch=None) -> np.ndarray:
        """`execute`, with `watch(name, t, v_before, v_after, spikes)` called at every step of each of its LIF
        groups (Neurons.run's observe, with the group's name): what hqflow.metrics counts."""
        groups = self.neurons(graph, node, *inputs)
        if not groups:
            return self.execute(graph, node, *inputs)
        return self.fired(graph, node, inputs,
                          [group.run(None if watch is None else functools.partial(watch, group.name))
                           for group in groups])

    def fired(self, graph: DeployGraph, node: Node, inputs: Sequence[np.ndarray],
              spikes: Sequence[np.ndarray]) -> np.ndarray:
        """The output of an op with neurons from their spikes [T, B, ...] (in Op.neurons' order): by default
        its one group's."""
        (only,) = spikes
        return only

    def value_max(self, node: Node, sources: Sequence[Node], tensors: Mapping[str, np.ndarray],
                  time_steps: int) -> int:
        """The largest magnitude of the node's output values (all outputs but the head's are >= 0)."""
        raise NotImplementedError

    def figures(self, node: Node, sources: Sequence[Node], tensors: Mapping[str, np.ndarray],
                time_steps: int) -> dict[str, int]:
        """The op-specific figures stored in attrs (beyond value_max) that backends read; `tensors` are the
        node's own, keyed by field."""
        return {}

    def widths(self, node: Node, sources: Sequence[Node], tensors: Mapping[str, np.ndarray],
               time_steps: int) -> dict[str, int]:
        """The narrowest widths (acc_bits, v_bits) that hold the node's proven ranges; ValueError if one
        exceeds 64 bits."""
        return {}

    def spike_ops(self, step, time_steps: int) -> dict[str, int]:
        """Its operations for one sample besides the weight layers' multiply-accumulates, by kind: "adds"
        (additions, an AND-gated one included), "ands" (ANDs of spikes), "updates" (membrane updates),
        "compares" (comparisons of a max pool). `step`: its topology step (shape [per step], num_heads where it has
        heads). The same for every plan: the cost model reports them beside its energy (hqflow/cost.py)."""
        return {}

    def neurons(self, graph: DeployGraph, node: Node, *inputs: np.ndarray) -> list[Neurons]:
        """The LIF neurons it runs on these inputs ([T, B, *shape] each, as execute takes them); none by default.
        execute runs them; hqflow.metrics reads their spikes and membranes."""
        return []

    def synops(self, graph: DeployGraph, node: Node, *inputs: np.ndarray) -> list[SynOps]:
        """Its synaptic operations on these inputs (a batch [T, B, *shape] each); none by default."""
        return []

    def weight_counts(self, step) -> tuple[int, int]:
        """(weights, outputs per output channel and step) of its weight layer for one sample, `step` its
        topology step: the cost model's parameters, and its multiply-accumulates T * weights * outputs.
        (0, 0): an op without weights."""
        return 0, 0

    def signed(self, inputs_signed: Sequence[bool]) -> bool:
        """Whether its output values may be negative (their stream fields two's complement), given whether
        its inputs' may: the logits and the membrane shortcut's fixed-point values."""
        return False

    def defaults(self) -> dict[str, Any]:
        """The attributes a builder fills in when not given (kernel size, stride, padding)."""
        return {spec.key: spec.default for spec in self.attrs if spec.default is not None}

    def check_attrs(self, check: NodeCheck) -> dict[str, int]:
        """Every declared integer attribute present and in its range; returns them by key."""
        return {spec.key: check.attr(spec) for spec in self.attrs}
