"""DeployGraph: the integer-only model (`graph.json` + `tensors.npz`, export -> sim -> HLS).

graph.json:
    {"schema_version": 2, "time_steps": T, "num_classes": K, "meta": {...},
     "nodes": [{"name", "op", "inputs": [node names], "shape": [per-sample, per-step output shape],
                "attrs": {...}, "value_max": the largest magnitude of the node's output values}, ...]}
tensors.npz: the integer arrays, keyed "<node name>/<field>".

Values flow between nodes as integer arrays [T, B, *shape] (the head's as [B, classes]). Every op
(its attributes, tensors, validation, output range and widths) is defined once, in `hqflow.ops`;
this module holds the graph, its files and the generic checks (names, wiring, arity, the stored
figures). A node's `value_max` and the op-specific figures in its attrs (x_max, the head's
logit_bits) are what the op computes from its inputs: backends read them and never re-derive them,
and `load_graph` refuses a stale or edited figure. Widths (acc_bits, v_bits) may be wider than the
op's narrowest, never narrower. Floats (theta, weight_scale, attn_scale, the BN factors) appear in
attrs only as metadata for reports. `load_graph` validates all of it (and reads nothing that could
run code); an error names the file, the node and the field at fault.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hqflow.errors import UserError
from hqflow.io import read_json, read_npz
from hqflow.ops import INPUT_OP, OPS, OUTPUT_OP, NodeCheck, is_int
from hqflow.ops.common import w_eff as _w_eff

SCHEMA_VERSION = 2  # 2: every node stores value_max; windows (kernel_size, stride, padding) and logit_bits in attrs


@dataclass(frozen=True)
class Node:
    """One op application: `shape` is its output per sample and step; `value_max` the largest magnitude
    of its output values (a figure its op computes; None only in a graph being built)."""

    name: str
    op: str
    inputs: tuple[str, ...]
    shape: tuple[int, ...]
    attrs: dict[str, Any] = field(default_factory=dict)
    value_max: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "op": self.op, "inputs": list(self.inputs), "shape": list(self.shape),
                "attrs": self.attrs, "value_max": self.value_max}


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

    def node_tensors(self, node: str) -> dict[str, np.ndarray]:
        """The tensors of node `node`, keyed by field."""
        prefix = f"{node}/"
        return {key[len(prefix):]: value for key, value in self.tensors.items() if key.startswith(prefix)}

    def w_eff(self, node: Node) -> np.ndarray:
        """The node's integer weights (int64), from its format's code tables."""
        return _w_eff(node.attrs, self.node_tensors(node.name))

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


# ---- building ---------------------------------------------------------------------------------------


def make_node(op_name: str, name: str, sources: Sequence[Node], shape: Sequence[int], time_steps: int,
              attrs: dict | None = None, tensors: dict[str, np.ndarray] | None = None) -> Node:
    """A node of op `op_name` on `sources` (built nodes), with what its op computes filled in: the
    default attributes (windows), the stored figures (value_max, x_max, logit_bits) and, where not
    given, the narrowest widths (acc_bits, v_bits). `tensors` are the node's own, keyed by field.
    ValueError (from the op) if a width exceeds 64 bits."""
    op = OPS[op_name]
    tensors = tensors or {}
    node = Node(name, op_name, tuple(s.name for s in sources), tuple(int(s) for s in shape),
                {**op.defaults(), **(attrs or {})})
    node = dataclasses.replace(node, attrs={**node.attrs, **op.figures(node, sources, tensors, time_steps)})
    widths = {k: v for k, v in op.widths(node, sources, tensors, time_steps).items() if k not in node.attrs}
    node = dataclasses.replace(node, attrs={**node.attrs, **widths})
    return dataclasses.replace(node, value_max=op.value_max(node, sources, tensors, time_steps))


def complete(graph: DeployGraph) -> DeployGraph:
    """`graph` with every node passed through make_node (for graphs built by hand, as in tests)."""
    built: dict[str, Node] = {}
    for node in graph.nodes:
        built[node.name] = make_node(node.op, node.name, [built[s] for s in node.inputs], node.shape,
                                     graph.time_steps, node.attrs, graph.node_tensors(node.name))
    return dataclasses.replace(graph, nodes=tuple(built.values()))


# ---- reading ----------------------------------------------------------------------------------------

# The dtype each tensor field is stored in (load_graph converts to it once the values are checked).
FIELD_DTYPES = {spec.field: spec.dtype for op in OPS.values() for spec in op.tensors}
NODE_KEYS = ("name", "op", "inputs", "shape", "attrs", "value_max")
def _read_doc(gpath: Path) -> dict:
    doc = read_json(gpath, "the DeployGraph's JSON description (is the folder an hqflow export?)")
    if not isinstance(doc, dict):
        raise UserError(f"{gpath}: holds a JSON {type(doc).__name__}; expected an object with schema_version, "
                        "time_steps, num_classes, meta and nodes")
    return doc


def _doc_int(doc: dict, key: str, where: str, lo: int) -> int:
    if key not in doc:
        raise UserError(f"{where}: {key} missing; expected an integer >= {lo}")
    value = doc[key]
    if not is_int(value) or value < lo:
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
        if not isinstance(shape, list) or not shape or not all(is_int(s) and s >= 1 for s in shape):
            raise UserError(f"{at}: shape {shape!r}; expected a list of integers >= 1")
        if not isinstance(entry["attrs"], dict):
            raise UserError(f"{at}: attrs {entry['attrs']!r}; expected an object")
        value_max = entry["value_max"]
        if not is_int(value_max) or value_max < 0:
            raise UserError(f"{at}: value_max {value_max!r}; expected an integer >= 0 (the largest output value)")
        nodes.append(Node(name, entry["op"], tuple(inputs), tuple(int(s) for s in shape), entry["attrs"],
                          int(value_max)))
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
        raise UserError(f"{where}: schema_version {doc['schema_version']!r}; this hqflow reads {SCHEMA_VERSION} "
                        "(export the run again)")
    time_steps, num_classes = _doc_int(doc, "time_steps", where, 1), _doc_int(doc, "num_classes", where, 1)
    nodes = _parse_nodes(doc, where)
    tensors = read_npz(tpath, "a NumPy .npz archive of integer tensors, keyed <node>/<field>")
    graph = DeployGraph(nodes, tensors, time_steps, num_classes, doc.get("meta", {}))
    validate(graph, where, str(tpath))
    _check_meta(graph, where)
    typed = {key: value.astype(FIELD_DTYPES[key.rsplit("/", 1)[1]]) for key, value in tensors.items()}
    return DeployGraph(nodes, typed, time_steps, num_classes, graph.meta)


# ---- validation -----------------------------------------------------------------------------------


def validate(graph: DeployGraph, where: str = "graph", tensors_where: str | None = None) -> None:
    """Check a DeployGraph completely; the UserError names the node and the field at fault.

    Every node's op known, the input first and the head last, names unique, inputs earlier nodes
    in the op's number; then the op's own checks (hqflow.ops: shapes, attributes, tensors and their
    ranges, widths), and the stored figures (value_max, and x_max / logit_bits in attrs) equal to
    what the op computes. No tensor belongs to no node. `where` names graph.json, `tensors_where`
    tensors.npz (default: `where`)."""
    tensors_where = tensors_where or where
    if not is_int(graph.time_steps) or graph.time_steps < 1:
        raise UserError(f"{where}: time_steps {graph.time_steps!r}; expected an integer >= 1")
    if not graph.nodes:
        raise UserError(f"{where}: no nodes")
    seen: dict[str, Node] = {}
    expected: set[str] = set()  # the tensor keys the nodes own
    for index, node in enumerate(graph.nodes):
        check = NodeCheck(graph, node, where, tensors_where)
        if node.op not in OPS:
            check.fail(f"unknown op {node.op!r} (known: {', '.join(OPS)})")
        op = OPS[node.op]
        if not node.shape or not all(is_int(s) and s >= 1 for s in node.shape):
            check.fail(f"shape {list(node.shape)}; expected a list of integers >= 1")
        if node.name in seen:
            check.fail("a second node of this name; names are unique")
        if (node.op == INPUT_OP) != (index == 0):
            check.fail(f"the first node, and only it, is the {INPUT_OP}" if index else
                       f"op {node.op}: the first node must be the {INPUT_OP}")
        if node.op == OUTPUT_OP and index != len(graph.nodes) - 1:
            check.fail(f"the {OUTPUT_OP} must be the last node")
        if len(node.inputs) != op.arity:
            check.fail(f"op {node.op} takes {op.arity} input(s), got {len(node.inputs)}")
        for name in node.inputs:
            if name not in seen:
                check.fail(f"input {name!r} is not an earlier node")
        sources = [seen[name] for name in node.inputs]
        op.validate(check, sources)
        _check_figures(check, op, sources)
        expected.update(check.fields)
        seen[node.name] = node
    if graph.nodes[-1].op != OUTPUT_OP:
        raise UserError(f"{where}: the last node must be the {OUTPUT_OP}, not {graph.nodes[-1].op!r}")
    if graph.num_classes != graph.nodes[-1].shape[0]:
        raise UserError(f"{where}: num_classes {graph.num_classes!r}; the head has {graph.nodes[-1].shape[0]} outputs")
    unexpected = sorted(set(graph.tensors) - expected)
    if unexpected:
        raise UserError(f"{tensors_where}: tensor {unexpected[0]!r} belongs to no node (keys are <node>/<field>, "
                        f"the fields of the node's op and format)")


def _check_figures(check: NodeCheck, op, sources: Sequence[Node]) -> None:
    """The node's stored figures equal what its op computes (run after the op's own checks)."""
    node, graph = check.node, check.graph
    tensors = graph.node_tensors(node.name)
    meaning = {spec.key: spec.what for spec in op.attrs}
    for key, value in op.figures(node, sources, tensors, graph.time_steps).items():
        check.figure(key, value, meaning.get(key, key))
    value_max = op.value_max(node, sources, tensors, graph.time_steps)
    if value_max >= op.value_limit:
        check.fail(f"its values reach {value_max}, beyond 2^{op.value_limit.bit_length() - 1}")
    if node.value_max is None:
        check.fail(f"value_max missing; the op computes {value_max} (the largest output value)")
    if not is_int(node.value_max) or node.value_max != value_max:
        check.fail(f"value_max {node.value_max!r}; the op computes {value_max} (the largest output value): a stale "
                   "or edited figure")
