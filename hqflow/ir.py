"""DeployGraph: the integer-only model (`graph.json` + `tensors.npz`, export -> sim -> HLS).

graph.json:
    {"schema_version": 1, "time_steps": T, "num_classes": K, "meta": {...},
     "nodes": [{"name", "op", "inputs": [node names], "shape": [per-sample, per-step output shape],
                "attrs": {...}}, ...]}
tensors.npz: the integer arrays, keyed "<node name>/<field>".

Values flow between nodes as integer arrays [T, B, *shape] (the head's as [B, classes]).

    op           inputs      output shape   tensors (dtype [shape])                        attrs
    input        -           [C, H, W]      -                                              max_count
    conv_lif     x           [O, H, W]      weights, bias_int, thr_int, sign (int8) [O]     format, LIF, widths
    linear_lif   x           [N, O]         weights, bias_int, thr_int, sign [O]            format, LIF, widths
    maxpool      x (spikes)  [C, H', W']    -                                              (3x3, stride 2, pad 1: OR)
    add          a, b        a's shape      -                                              -
    tokens       x           [N, C]         -                                              ([C, H, W] -> [H*W, C])
    ssa          q, k, v     [N, D]         bias_int, thr_int, sign [1]                     num_heads, LIF, acc_bits
    head         x           [K]            weights, bias_int [K]                           format, x_max, acc_bits,
                                                                                           bias_frac_bits, num_tokens

Weights, by format (`numerics.w_eff_from_codes` turns them into the integer weights w_eff):
    uniform-b   w_int uint8 in 0..2^b - 1, attr zero_point (a code)     w_eff = w_int - zero_point
    po2-b       w_sign int8 in {-1, +1}, w_shift uint8 in 0..kmax        w_eff = w_sign << w_shift
    po2z-b      the same, and the zero level (w_sign, w_shift) = (0, 0)  (kmax = numerics.po2_max_shift)
    fp32        w_fx int64 within 32 bits signed (fixed point)          w_eff = w_fx
LIF attrs: frac_bits = bias_frac_bits + T, v_bits; widths: x_max (at least the input's largest value),
acc_bits, v_bits, each able to hold its proven range and at most 64. thr_int >= 0, sign in {-1, 0, 1}.
Floats (theta, weight_scale, attn_scale, the BN factors) appear in attrs only as metadata for reports.
`load_graph` validates all of it (and reads nothing that could run code); an error names the file,
the node and the field at fault.
"""

from __future__ import annotations

import io
import json
import numbers
import shutil
import struct
import tempfile
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hqflow import numerics
from hqflow.errors import UserError
from hqflow.io import read_bytes, read_json

SCHEMA_VERSION = 1
OPS = ("input", "conv_lif", "linear_lif", "maxpool", "add", "tokens", "ssa", "head")
ARITY = {"input": 0, "conv_lif": 1, "linear_lif": 1, "maxpool": 1, "add": 2, "tokens": 1, "ssa": 3, "head": 1}
WEIGHT_FIELDS = {"uniform": ("w_int",), "po2": ("w_sign", "w_shift"), "fp32": ("w_fx",)}


@dataclass(frozen=True)
class Node:
    name: str
    op: str
    inputs: tuple[str, ...]
    shape: tuple[int, ...]
    attrs: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "op": self.op, "inputs": list(self.inputs), "shape": list(self.shape),
                "attrs": self.attrs}


@dataclass(frozen=True, eq=False)
class DeployGraph:
    nodes: tuple[Node, ...]
    tensors: dict[str, np.ndarray]
    time_steps: int
    num_classes: int
    meta: dict[str, Any] = field(default_factory=dict)

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    def tensor(self, node: str, name: str) -> np.ndarray:
        return self.tensors[f"{node}/{name}"]

    def w_eff(self, node: Node) -> np.ndarray:
        """The node's integer weights (int64), from its format's code tables."""
        fmt = numerics.Candidate.parse(node.attrs["format"])
        codes = {f: self.tensor(node.name, f) for f in WEIGHT_FIELDS[fmt.scheme]}
        return numerics.w_eff_from_codes(fmt, codes, node.attrs.get("zero_point", 0))

    def save(self, out: str | Path) -> None:
        """Write graph.json and tensors.npz into folder `out` (created; files replaced atomically)."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        doc = {"schema_version": SCHEMA_VERSION, "time_steps": self.time_steps, "num_classes": self.num_classes,
               "meta": self.meta, "nodes": [n.to_dict() for n in self.nodes]}
        tmp = Path(tempfile.mkdtemp(dir=out, prefix=".tmp-"))
        try:
            (tmp / "graph.json").write_text(json.dumps(doc, indent=1) + "\n")
            np.savez(tmp / "tensors.npz", **self.tensors)
            for name in ("graph.json", "tensors.npz"):
                (tmp / name).replace(out / name)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


# ---- reading ----------------------------------------------------------------------------------------

# The dtype each tensor field is stored in (load_graph converts to it once the values are checked).
FIELD_DTYPES = {"w_int": np.uint8, "w_sign": np.int8, "w_shift": np.uint8, "w_fx": np.int64,
                "bias_int": np.int64, "thr_int": np.int64, "sign": np.int8}
NODE_KEYS = ("name", "op", "inputs", "shape", "attrs")
MAX_WIDTH = 64  # every accumulator, membrane and logit width: the C simulation's 64-bit model holds it
VALUE_LIMIT = 2**62  # node output values stay below this, so that a residual add cannot leave int64
FIXED_POINT_RANGE = (-(2 ** (numerics.FIXED_POINT_BITS - 1)), 2 ** (numerics.FIXED_POINT_BITS - 1) - 1)
# numpy and zipfile raise these for a damaged archive or member (zlib.error for bad deflate data)
_NPZ_ERRORS = (OSError, ValueError, EOFError, KeyError, NotImplementedError, RuntimeError, struct.error,
               zipfile.BadZipFile, zlib.error)


def _read_doc(gpath: Path) -> dict:
    doc = read_json(gpath, "the DeployGraph's JSON description (is the folder an hqflow export?)")
    if not isinstance(doc, dict):
        raise UserError(f"{gpath}: holds a JSON {type(doc).__name__}; expected an object with schema_version, "
                        "time_steps, num_classes, meta and nodes")
    return doc


def _read_tensors(tpath: Path) -> dict[str, np.ndarray]:
    """Every array of tensors.npz, read eagerly and without unpickling anything (allow_pickle=False)."""
    what = "a NumPy .npz archive of integer tensors"
    raw = read_bytes(tpath, what)
    if raw.startswith(b"\x93NUMPY"):
        raise UserError(f"{tpath}: a single .npy array; expected {what}, keyed <node>/<field>")
    if not raw.startswith(b"PK"):  # not a zip archive (np.load would take it for a pickle)
        raise UserError(f"{tpath}: not a NumPy .npz archive (random bytes or another format); expected {what}")
    try:
        npz = np.load(io.BytesIO(raw), allow_pickle=False)
    except _NPZ_ERRORS as err:
        raise UserError(f"{tpath}: not a readable .npz archive, truncated or damaged ({type(err).__name__}: "
                        f"{err}); expected {what}") from None
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise UserError(f"{tpath}: not a NumPy .npz archive; expected {what}")
    tensors: dict[str, np.ndarray] = {}
    with npz:
        for key in npz.files:
            try:
                value = npz[key]
            except ValueError as err:
                if "allow_pickle" in str(err):
                    raise UserError(f"{tpath}: tensor {key!r} is an object array (pickled Python objects, never "
                                    "loaded by hqflow); expected an integer array") from None
                raise UserError(f"{tpath}: tensor {key!r} cannot be read ({err}); expected an integer array") \
                    from None
            except _NPZ_ERRORS as err:
                raise UserError(f"{tpath}: tensor {key!r} cannot be read, the archive is truncated or damaged "
                                f"({type(err).__name__}: {err})") from None
            if not isinstance(value, np.ndarray):
                raise UserError(f"{tpath}: member {key!r} is not a NumPy array; expected only .npy members")
            tensors[key] = value
    return tensors


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def _doc_int(doc: dict, key: str, where: str, lo: int) -> int:
    if key not in doc:
        raise UserError(f"{where}: {key} missing; expected an integer >= {lo}")
    value = doc[key]
    if not _is_int(value) or value < lo:
        raise UserError(f"{where}: {key} {value!r}; expected an integer >= {lo}")
    return int(value)


def _parse_nodes(doc: dict, where: str) -> tuple[Node, ...]:
    if "nodes" not in doc:
        raise UserError(f"{where}: nodes missing; expected a list of node objects")
    entries = doc["nodes"]
    if not isinstance(entries, list) or not entries:
        got = "an empty list" if entries == [] else f"a {type(entries).__name__}"
        raise UserError(f"{where}: nodes is {got}; expected a non-empty list of node objects")
    nodes = []
    for i, entry in enumerate(entries):
        at = f"{where}: nodes[{i}]"
        if not isinstance(entry, dict):
            raise UserError(f"{at}: a JSON {type(entry).__name__}; expected an object with keys {', '.join(NODE_KEYS)}")
        name = entry.get("name")
        if isinstance(name, str) and name:
            at = f"{where}: node {name!r}"
        for key in NODE_KEYS:
            if key not in entry:
                raise UserError(f"{at}: key {key!r} missing; a node has {', '.join(NODE_KEYS)}")
        unknown = sorted(set(entry) - set(NODE_KEYS))
        if unknown:
            raise UserError(f"{at}: unknown key {unknown[0]!r}; a node has {', '.join(NODE_KEYS)}")
        if not isinstance(name, str) or not name or "/" in name:
            raise UserError(f"{at}: name {name!r}; expected a non-empty string without '/'")
        if not isinstance(entry["op"], str):
            raise UserError(f"{at}: op {entry['op']!r}; expected one of {', '.join(OPS)}")
        inputs = entry["inputs"]
        if not isinstance(inputs, list) or not all(isinstance(s, str) for s in inputs):
            raise UserError(f"{at}: inputs {inputs!r}; expected a list of node names")
        shape = entry["shape"]
        if not isinstance(shape, list) or not shape or not all(_is_int(s) and s >= 1 for s in shape):
            raise UserError(f"{at}: shape {shape!r}; expected a list of integers >= 1")
        if not isinstance(entry["attrs"], dict):
            raise UserError(f"{at}: attrs {entry['attrs']!r}; expected an object")
        nodes.append(Node(name, entry["op"], tuple(inputs), tuple(int(s) for s in shape), entry["attrs"]))
    return tuple(nodes)


def _check_meta(graph: DeployGraph, where: str) -> None:
    """What `hqflow sim` reads from meta: the data set and the model's input size."""
    meta = graph.meta
    if not isinstance(meta, dict):
        raise UserError(f"{where}: meta {meta!r}; expected an object")
    for key, kind, words in (("dataset", str, "the data set's name (a string)"),
                             ("model", dict, "the model config (an object)")):
        if key not in meta:
            raise UserError(f"{where}: meta.{key} missing; expected {words}")
        if not isinstance(meta[key], kind) or not meta[key]:
            raise UserError(f"{where}: meta.{key} {meta[key]!r}; expected {words}")
    model = meta["model"]
    size = graph.nodes[0].shape[1:]
    if model.get("img_size") != size[0] or size[0] != size[-1]:
        raise UserError(f"{where}: meta.model.img_size {model.get('img_size')!r}; expected {size[0]}, the size of "
                        f"the input node's frames {list(graph.nodes[0].shape)}")


def load_graph(folder: str | Path) -> DeployGraph:
    """Read and validate a DeployGraph folder (graph.json + tensors.npz).

    Nothing in either file can run code (JSON; arrays loaded with allow_pickle=False). Every mistake,
    from a missing or damaged file to a width too small for its range, is a UserError that names the
    file, the node and the key or tensor at fault. The tensors come back in FIELD_DTYPES."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: not found or not a folder; expected an hqflow export (graph.json + tensors.npz)")
    gpath, tpath = folder / "graph.json", folder / "tensors.npz"
    doc = _read_doc(gpath)
    where = str(gpath)
    if "schema_version" not in doc:
        raise UserError(f"{where}: schema_version missing; this hqflow reads {SCHEMA_VERSION}")
    if doc["schema_version"] != SCHEMA_VERSION or isinstance(doc["schema_version"], bool):
        raise UserError(f"{where}: schema_version {doc['schema_version']!r}; this hqflow reads {SCHEMA_VERSION}")
    time_steps, num_classes = _doc_int(doc, "time_steps", where, 1), _doc_int(doc, "num_classes", where, 1)
    nodes = _parse_nodes(doc, where)
    tensors = _read_tensors(tpath)
    graph = DeployGraph(nodes, tensors, time_steps, num_classes, doc.get("meta", {}))
    validate(graph, where, str(tpath))
    _check_meta(graph, where)
    typed = {key: value.astype(FIELD_DTYPES[key.rsplit("/", 1)[1]]) for key, value in tensors.items()}
    return DeployGraph(nodes, typed, time_steps, num_classes, graph.meta)


# ---- validation -----------------------------------------------------------------------------------


def validate(graph: DeployGraph, where: str = "graph", tensors_where: str | None = None) -> None:
    """Check a DeployGraph completely; the UserError names the node and the field at fault.

    Every node known, wired to earlier nodes with the shapes its op implies, every attribute its op
    needs present and of its type, every tensor present with an integer dtype, its shape, and values
    within its field's range (uniform codes < 2^bits; po2 signs +-1, or 0 for the zero level of po2z
    with shift 0; po2 shifts 0..kmax; fixed point within 32 bits signed; thresholds >= 0, signs in
    {-1, 0, 1}), and every width (accumulator, membrane, logits) able to hold its proven range and at
    most 64 bits. `where` names graph.json, `tensors_where` tensors.npz (default: `where`)."""
    tensors_where = tensors_where or where
    if not _is_int(graph.time_steps) or graph.time_steps < 1:
        raise UserError(f"{where}: time_steps {graph.time_steps!r}; expected an integer >= 1")
    if not graph.nodes:
        raise UserError(f"{where}: no nodes")
    seen: dict[str, Node] = {}
    value_max: dict[str, int] = {}  # the largest value each node outputs (all are >= 0)
    expected: set[str] = set()  # the tensor keys the nodes own
    for index, node in enumerate(graph.nodes):
        check = _NodeCheck(graph, node, where, tensors_where)
        if node.op not in OPS:
            check.fail(f"unknown op {node.op!r} (known: {', '.join(OPS)})")
        if not node.shape or not all(_is_int(s) and s >= 1 for s in node.shape):
            check.fail(f"shape {list(node.shape)}; expected a list of integers >= 1")
        if node.name in seen:
            check.fail("a second node of this name; names are unique")
        if (node.op == "input") != (index == 0):
            check.fail("the first node, and only it, is the input" if index else f"op {node.op}: the first node "
                       "must be the input")
        if node.op == "head" and index != len(graph.nodes) - 1:
            check.fail("the head must be the last node")
        if len(node.inputs) != ARITY[node.op]:
            check.fail(f"op {node.op} takes {ARITY[node.op]} input(s), got {len(node.inputs)}")
        for name in node.inputs:
            if name not in seen:
                check.fail(f"input {name!r} is not an earlier node")
        sources = [seen[name] for name in node.inputs]
        value_max[node.name] = _OP_CHECKS[node.op](check, sources, [value_max[s.name] for s in sources])
        if value_max[node.name] >= VALUE_LIMIT:
            check.fail(f"its values reach {value_max[node.name]}, beyond 2^62")
        expected.update(check.fields)
        seen[node.name] = node
    if graph.nodes[-1].op != "head":
        raise UserError(f"{where}: the last node must be the head, not {graph.nodes[-1].op!r}")
    if graph.num_classes != graph.nodes[-1].shape[0]:
        raise UserError(f"{where}: num_classes {graph.num_classes!r}; the head has {graph.nodes[-1].shape[0]} outputs")
    unexpected = sorted(set(graph.tensors) - expected)
    if unexpected:
        raise UserError(f"{tensors_where}: tensor {unexpected[0]!r} belongs to no node (keys are <node>/<field>, "
                        f"the fields of the node's op and format)")


class _NodeCheck:
    """The checks of one node; every message starts `<file>: node '<name>'`."""

    def __init__(self, graph: DeployGraph, node: Node, where: str, tensors_where: str):
        self.graph, self.node, self.fields = graph, node, []
        self.at, self.tensors_at = f"{where}: node {node.name!r}", f"{tensors_where}: node {node.name!r}"

    def fail(self, message: str, tensors: bool = False):
        raise UserError(f"{self.tensors_at if tensors else self.at}: {message}")

    def shape_of(self, source: Node, ndim: int, what: str) -> tuple[int, ...]:
        if len(source.shape) != ndim:
            self.fail(f"input {source.name!r} has shape {list(source.shape)}; op {self.node.op} takes {what}")
        return source.shape

    def expect_shape(self, shape: tuple[int, ...], why: str) -> None:
        if self.node.shape != tuple(shape):
            self.fail(f"shape {list(self.node.shape)}; expected {list(shape)} ({why})")

    def attr_int(self, key: str, lo: int, hi: int | None = None, what: str = "") -> int:
        attrs = self.node.attrs
        words = f"an integer >= {lo}" if hi is None else f"an integer in {lo}..{hi}"
        words += f" ({what})" if what else ""
        if key not in attrs:
            self.fail(f"attrs.{key} missing; expected {words}")
        value = attrs[key]
        if not _is_int(value) or value < lo or (hi is not None and value > hi):
            self.fail(f"attrs.{key} {value!r}; expected {words}")
        return int(value)

    def width(self, key: str, lo: int, hi: int, what: str) -> int:
        """A width attribute: an integer that holds [lo, hi] (signed) and is at most 64 bits."""
        need = numerics.bits_for(lo, hi)
        if need > MAX_WIDTH:
            self.fail(f"{what} [{lo}, {hi}] needs {need} bits, more than {MAX_WIDTH}")
        value = self.attr_int(key, 1, MAX_WIDTH, "a width in bits")
        if value < need:
            self.fail(f"attrs.{key} {value} cannot hold {what} [{lo}, {hi}] ({need} bits needed)")
        return value

    def tensor(self, name: str, shape: tuple[int, ...], lo: int, hi: int, what: str) -> np.ndarray:
        """The tensor `<node>/<name>`: integer dtype, `shape`, every value in [lo, hi] (`what` says the range)."""
        key = f"{self.node.name}/{name}"
        self.fields.append(key)
        if key not in self.graph.tensors:
            self.fail(f"tensor {name!r} missing from tensors.npz", tensors=True)
        t = self.graph.tensors[key]
        if not isinstance(t, np.ndarray) or t.dtype.kind not in "iu":
            self.fail(f"tensor {name!r} has dtype {getattr(t, 'dtype', type(t).__name__)}, expected an integer type",
                      tensors=True)
        if t.shape != tuple(shape):
            self.fail(f"tensor {name!r} has shape {t.shape}, expected {tuple(shape)}", tensors=True)
        if t.size:
            low, high = int(t.min()), int(t.max())
            if low < lo or high > hi:
                bad = low if low < lo else high
                index = tuple(int(i) for i in np.argwhere(t == bad)[0])
                self.fail(f"tensor {name!r} holds {bad} at index {index}; expected {what}", tensors=True)
        return t


def _input(check: _NodeCheck, sources, maxes) -> int:
    if len(check.node.shape) != 3:
        check.fail(f"shape {list(check.node.shape)}; the input is [channels, height, width]")
    return check.attr_int("max_count", 1, what="the largest input value")


def _weights(check: _NodeCheck, shape: tuple[int, ...], x_needed: int) -> np.ndarray:
    """A weighted node's format, code tables, x_max and acc_bits; returns w_eff int64 [shape]."""
    node = check.node
    if "format" not in node.attrs:
        check.fail("attrs.format missing; expected fp32, uniform-<bits>, po2-<bits> or po2z-<bits>")
    try:
        fmt = numerics.Candidate.parse(node.attrs["format"])
    except UserError as err:
        check.fail(f"attrs.format: {err}")
    if fmt.scheme == "uniform":
        top = 2**fmt.bits - 1
        check.tensor("w_int", shape, 0, top, f"{fmt.name} codes in 0..{top}")
        zero_point = check.attr_int("zero_point", 0, top, f"a {fmt.name} code")
        codes = {"w_int": check.graph.tensor(node.name, "w_int")}
    elif fmt.scheme == "po2":
        kmax = numerics.po2_max_shift(fmt.bits, fmt.zero_level)
        sign = check.tensor("w_sign", shape, -1, 1, f"{fmt.name} signs in {{-1, 0, +1}}" if fmt.zero_level else
                            f"{fmt.name} signs -1 or +1 (no zero level)")
        shift = check.tensor("w_shift", shape, 0, kmax, f"{fmt.name} shifts in 0..{kmax}" +
                             (" (the zero level is the code w_sign 0, w_shift 0)" if fmt.zero_level else ""))
        if not fmt.zero_level and (sign == 0).any():
            index = tuple(int(i) for i in np.argwhere(sign == 0)[0])
            check.fail(f"tensor 'w_sign' holds 0 at index {index}; {fmt.name} has no zero level (signs -1 or +1)",
                       tensors=True)
        if fmt.zero_level and ((sign == 0) & (shift != 0)).any():
            index = tuple(int(i) for i in np.argwhere((sign == 0) & (shift != 0))[0])
            check.fail(f"tensor 'w_shift' holds {int(shift[index])} at index {index} where w_sign is 0; the zero "
                       "level is the code w_sign 0, w_shift 0", tensors=True)
        codes, zero_point = {"w_sign": sign, "w_shift": shift}, 0
    else:
        lo, hi = FIXED_POINT_RANGE
        check.tensor("w_fx", shape, lo, hi, f"{numerics.FIXED_POINT_BITS}-bit signed fixed point in {lo}..{hi}")
        codes, zero_point = {"w_fx": check.graph.tensor(node.name, "w_fx")}, 0
    w_eff = numerics.w_eff_from_codes(fmt, codes, zero_point)
    x_max = check.attr_int("x_max", 0, what="the largest input value")
    if x_max < x_needed:
        check.fail(f"attrs.x_max {x_max} is below {x_needed}, the largest value of its input")
    bound = numerics.acc_bound(x_max, w_eff)
    check.width("acc_bits", -bound, bound, "the accumulator range")
    return w_eff


def _lif(check: _NodeCheck, channels: int, acc_lo: int, acc_hi: int) -> None:
    """The integer LIF's tables and attributes (numerics.LifConsts, lif_step)."""
    t = check.graph.time_steps
    bias_frac = check.attr_int("bias_frac_bits", 0, 62, "fractional bits of bias_int")
    frac = check.attr_int("frac_bits", 0, 62, "fractional bits of the membrane")
    if frac - bias_frac != t:
        check.fail(f"attrs.frac_bits {frac} must be bias_frac_bits {bias_frac} + T {t} (the halvings of tau = 2 are "
                   "exact only then)")
    i64 = (-(2**63), 2**63 - 1)
    tables = (check.tensor("bias_int", (channels,), *i64, "64-bit integers"),
              check.tensor("thr_int", (channels,), 0, i64[1], "thresholds >= 0 (the sign is separate)"),
              check.tensor("sign", (channels,), -1, 1, "values -1, 0 or 1"))
    consts = numerics.LifConsts(*(x.astype(np.int64) for x in tables), frac, bias_frac)
    try:
        need = numerics.membrane_bits(acc_lo, acc_hi, consts)
    except ValueError:
        need = MAX_WIDTH + 1
    if need > MAX_WIDTH:
        check.fail(f"tensors 'bias_int' (up to {_abs_max(tables[0])} in magnitude) and 'thr_int' (up to "
                   f"{int(tables[1].max(initial=0))}): the membrane for accumulators in [{acc_lo}, {acc_hi}] needs "
                   f"more than {MAX_WIDTH} bits", tensors=True)
    v_bits = check.attr_int("v_bits", 1, MAX_WIDTH, "the membrane width in bits")
    if v_bits < need:
        check.fail(f"attrs.v_bits {v_bits} cannot hold the membrane ({need} bits needed for accumulators in "
                   f"[{acc_lo}, {acc_hi}])")


def _conv_lif(check: _NodeCheck, sources, maxes) -> int:
    c, h, w = check.shape_of(sources[0], 3, "[channels, height, width]")
    if len(check.node.shape) != 3:
        check.fail(f"shape {list(check.node.shape)}; a conv_lif outputs [channels, height, width]")
    out = check.node.shape[0]
    check.expect_shape((out, h, w), "3x3 convolution, stride 1, padding 1")
    w_eff = _weights(check, (out, c, 3, 3), maxes[0])
    bound = numerics.acc_bound(int(check.node.attrs["x_max"]), w_eff)
    _lif(check, out, -bound, bound)
    return 1


def _linear_lif(check: _NodeCheck, sources, maxes) -> int:
    n, c = check.shape_of(sources[0], 2, "[tokens, channels]")
    if len(check.node.shape) != 2:
        check.fail(f"shape {list(check.node.shape)}; a linear_lif outputs [tokens, channels]")
    out = check.node.shape[1]
    check.expect_shape((n, out), "the input's tokens")
    w_eff = _weights(check, (out, c), maxes[0])
    bound = numerics.acc_bound(int(check.node.attrs["x_max"]), w_eff)
    _lif(check, out, -bound, bound)
    return 1


def _maxpool(check: _NodeCheck, sources, maxes) -> int:
    c, h, w = check.shape_of(sources[0], 3, "[channels, height, width]")
    if maxes[0] != 1:
        check.fail(f"input {sources[0].name!r} holds values up to {maxes[0]}; max pooling is an OR of spikes (0/1)")
    check.expect_shape((c, (h - 1) // 2 + 1, (w - 1) // 2 + 1), "3x3 window, stride 2, padding 1")
    return 1


def _add(check: _NodeCheck, sources, maxes) -> int:
    a, b = sources
    if a.shape != b.shape:
        check.fail(f"inputs {a.name!r} {list(a.shape)} and {b.name!r} {list(b.shape)} differ in shape")
    check.expect_shape(a.shape, "the shape of its inputs")
    return maxes[0] + maxes[1]


def _tokens(check: _NodeCheck, sources, maxes) -> int:
    c, h, w = check.shape_of(sources[0], 3, "[channels, height, width]")
    check.expect_shape((h * w, c), "[height * width, channels]")
    return maxes[0]


def _ssa(check: _NodeCheck, sources, maxes) -> int:
    if len(check.node.shape) != 2:
        check.fail(f"shape {list(check.node.shape)}; an ssa outputs [tokens, channels]")
    n, d = check.node.shape
    for source, top in zip(sources, maxes):
        check.shape_of(source, 2, "[tokens, channels]")
        if source.shape != check.node.shape or top != 1:
            check.fail(f"input {source.name!r} ({list(source.shape)}, values up to {top}); q, k and v are spikes "
                       f"(0/1) of the node's shape {[n, d]}")
    heads = check.attr_int("num_heads", 1, d, "attention heads")
    if d % heads:
        check.fail(f"attrs.num_heads {heads} does not divide the {d} channels")
    bound = numerics.ssa_bound(n, d // heads)
    if bound > numerics.FLOAT64_EXACT:
        check.fail(f"the attention product reaches {bound}, beyond 2^53 (the simulator's exact range)")
    check.width("acc_bits", 0, bound, "the attention product range")
    _lif(check, 1, 0, bound)
    return 1


def _head(check: _NodeCheck, sources, maxes) -> int:
    n, c = check.shape_of(sources[0], 2, "[tokens, channels]")
    if len(check.node.shape) != 1:
        check.fail(f"shape {list(check.node.shape)}; the head outputs [classes]")
    classes = check.node.shape[0]
    tokens = check.attr_int("num_tokens", 1, what="the tokens it sums")
    if tokens != n:
        check.fail(f"attrs.num_tokens {tokens}; its input {sources[0].name!r} has {n} tokens")
    w_eff = _weights(check, (classes, c), maxes[0] * n * check.graph.time_steps)  # sums over tokens and steps
    bias_frac = check.attr_int("bias_frac_bits", 0, 62, "fractional bits of the logits")
    bias = check.tensor("bias_int", (classes,), -(2**63), 2**63 - 1, "64-bit integers")
    bound = numerics.acc_bound(int(check.node.attrs["x_max"]), w_eff) << bias_frac
    lo, hi = -bound + int(bias.min()), bound + int(bias.max())
    if numerics.bits_for(lo, hi) > MAX_WIDTH:
        check.fail(f"tensor 'bias_int': the logits (acc << bias_frac_bits {bias_frac}) + bias_int reach [{lo}, {hi}], "
                   f"more than {MAX_WIDTH} bits hold", tensors=True)
    return 0


def _abs_max(t: np.ndarray) -> int:
    return max(int(t.max(initial=0)), -int(t.min(initial=0)))


_OP_CHECKS = {"input": _input, "conv_lif": _conv_lif, "linear_lif": _linear_lif, "maxpool": _maxpool,
              "add": _add, "tokens": _tokens, "ssa": _ssa, "head": _head}
