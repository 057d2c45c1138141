"""DeployGraph: the integer-only model (`graph.json` + `tensors.npz`, export -> sim -> HLS).

graph.json:
    {"schema_version": 1, "time_steps": T, "num_classes": K, "meta": {...},
     "nodes": [{"name", "op", "inputs": [node names], "shape": [per-sample, per-step output shape],
                "attrs": {...}}, ...]}
tensors.npz: the integer arrays, keyed "<node name>/<field>".

Values flow between nodes as integer arrays [T, B, *shape] (the head's as [B, classes]).

    op           inputs      output shape   tensors (dtype [shape])                        attrs
    input        -           [2, H, W]      -                                              max_count
    conv_lif     x           [O, H, W]      weights, bias_int, thr_int, sign (int8) [O]     format, LIF, widths
    linear_lif   x           [N, O]         weights, bias_int, thr_int, sign [O]            format, LIF, widths
    maxpool      x           [C, H/2, W/2]  -                                              (3x3, stride 2, OR)
    add          a, b        a's shape      -                                              -
    tokens       x           [N, C]         -                                              ([C, H, W] -> [H*W, C])
    ssa          q, k, v     [N, D]         thr_int [1]                                     num_heads, LIF, widths
    head         x           [K]            weights, bias_int [K]                           format, bias_frac_bits

Weights, by format (`numerics.w_eff_from_codes` turns them into the integer weights w_eff):
    uniform-b   w_int uint8 (codes), attr zero_point        w_eff = w_int - zero_point
    po2(z)-b    w_sign int8, w_shift uint8                   w_eff = w_sign << w_shift
    fp32        w_fx int64 (32-bit fixed point)              w_eff = w_fx
LIF attrs: theta, frac_bits, bias_frac_bits; widths: x_max (largest input value), acc_bits,
v_bits. Floats (weight_scale, the BN factors) appear in attrs only as metadata for reports.
`load_graph` validates everything and names the node and field at fault.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hqflow import numerics
from hqflow.errors import UserError

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


def load_graph(folder: str | Path) -> DeployGraph:
    """Read and validate a DeployGraph folder."""
    folder = Path(folder)
    gpath, tpath = folder / "graph.json", folder / "tensors.npz"
    for p in (gpath, tpath):
        if not p.is_file():
            raise UserError(f"{p}: not found (is {folder} an hqflow export?)")
    try:
        doc = json.loads(gpath.read_text())
    except json.JSONDecodeError as err:
        raise UserError(f"{gpath}: not valid JSON ({err})") from None
    if doc.get("schema_version") != SCHEMA_VERSION:
        raise UserError(f"{gpath}: schema_version {doc.get('schema_version')!r}; this hqflow reads {SCHEMA_VERSION}")
    with np.load(tpath) as npz:
        tensors = {k: npz[k] for k in npz.files}
    nodes = tuple(Node(n["name"], n["op"], tuple(n.get("inputs", [])), tuple(n.get("shape", [])), n.get("attrs", {}))
                  for n in doc.get("nodes", []))
    graph = DeployGraph(nodes, tensors, int(doc.get("time_steps", 0)), int(doc.get("num_classes", 0)), doc.get("meta", {}))
    validate(graph, str(gpath))
    return graph


def validate(graph: DeployGraph, where: str = "graph") -> None:
    """Every node known and wired, every tensor present with the dtype and shape its node implies,
    and every width able to hold its range; the error names the node and the field."""
    if graph.time_steps < 1:
        raise UserError(f"{where}: time_steps {graph.time_steps} must be >= 1")
    seen: dict[str, Node] = {}
    for node in graph.nodes:
        at = f"{where}: node {node.name!r}"
        if node.op not in OPS:
            raise UserError(f"{at}: unknown op {node.op!r} (known: {', '.join(OPS)})")
        if len(node.inputs) != ARITY[node.op]:
            raise UserError(f"{at}: op {node.op} takes {ARITY[node.op]} input(s), got {len(node.inputs)}")
        for name in node.inputs:
            if name not in seen:
                raise UserError(f"{at}: input {name!r} is not an earlier node")
        if node.op in ("conv_lif", "linear_lif", "head"):
            _check_weights(graph, node, seen[node.inputs[0]], at)
        if node.op in ("conv_lif", "linear_lif", "ssa"):
            _check_lif(graph, node, _acc_bound(graph, node), at)
        seen[node.name] = node
    if not graph.nodes or graph.nodes[-1].op != "head":
        raise UserError(f"{where}: the last node must be the head")


def _tensor(graph: DeployGraph, node: Node, name: str, kinds: str, shape: tuple[int, ...], at: str) -> np.ndarray:
    key = f"{node.name}/{name}"
    if key not in graph.tensors:
        raise UserError(f"{at}: tensor {name!r} missing from tensors.npz")
    t = graph.tensors[key]
    if t.dtype.kind not in kinds:
        raise UserError(f"{at}: tensor {name!r} has dtype {t.dtype}, expected an integer type")
    if t.shape != shape:
        raise UserError(f"{at}: tensor {name!r} has shape {t.shape}, expected {shape}")
    return t


def _check_weights(graph: DeployGraph, node: Node, source: Node, at: str) -> None:
    try:
        fmt = numerics.Candidate.parse(node.attrs.get("format", "?"))
    except UserError as err:
        raise UserError(f"{at}: attrs.format: {err}") from None
    c_out = node.shape[0] if node.op == "conv_lif" else node.shape[-1]
    c_in = source.shape[0] if node.op == "conv_lif" else source.shape[-1]
    shape = (c_out, c_in, 3, 3) if node.op == "conv_lif" else (c_out, c_in)
    for name in WEIGHT_FIELDS[fmt.scheme]:
        _tensor(graph, node, name, "iu", shape, at)
    w_eff = graph.w_eff(node)
    if fmt.scheme == "uniform" and graph.tensor(node.name, "w_int").max(initial=0) >= 2**fmt.bits:
        raise UserError(f"{at}: tensor 'w_int' has codes beyond {fmt.bits} bits")
    bound = numerics.acc_bound(int(node.attrs.get("x_max", 0)), w_eff)
    need = numerics.bits_for(-bound, bound)
    if int(node.attrs.get("acc_bits", 0)) < need:
        raise UserError(f"{at}: attrs.acc_bits {node.attrs.get('acc_bits')} cannot hold the accumulator "
                        f"range +-{bound} ({need} bits needed)")
    if node.op == "head":
        _tensor(graph, node, "bias_int", "i", (c_out,), at)


def _acc_bound(graph: DeployGraph, node: Node) -> int:
    """The largest |accumulator| a LIF node can see (the SSA product for `ssa`)."""
    if node.op == "ssa":
        n, d = node.shape
        return numerics.ssa_bound(n, d // int(node.attrs.get("num_heads", 1)))
    return numerics.acc_bound(int(node.attrs.get("x_max", 0)), graph.w_eff(node))


def _check_lif(graph: DeployGraph, node: Node, bound: int, at: str) -> None:
    c = 1 if node.op == "ssa" else (node.shape[0] if node.op == "conv_lif" else node.shape[-1])
    tensors = [_tensor(graph, node, name, "i", (c,), at) for name in ("bias_int", "thr_int", "sign")]
    if tensors[1].min(initial=0) < 0:
        raise UserError(f"{at}: tensor 'thr_int' holds {tensors[1].min()}; thresholds are >= 0 (the sign is separate)")
    if not np.isin(tensors[2], (-1, 0, 1)).all():
        raise UserError(f"{at}: tensor 'sign' holds values other than -1, 0, 1")
    frac, bias_frac = int(node.attrs.get("frac_bits", -1)), int(node.attrs.get("bias_frac_bits", -1))
    if frac - bias_frac != graph.time_steps:
        raise UserError(f"{at}: attrs.frac_bits {frac} must be bias_frac_bits {bias_frac} + T {graph.time_steps}"
                        " (the halvings of tau = 2 are exact only then)")
    consts = numerics.LifConsts(*tensors, frac, bias_frac)
    need = numerics.membrane_bits(-bound, bound, consts)
    if int(node.attrs.get("v_bits", 0)) < need:
        raise UserError(f"{at}: attrs.v_bits {node.attrs.get('v_bits')} cannot hold the membrane "
                        f"({need} bits needed for accumulators up to +-{bound})")
