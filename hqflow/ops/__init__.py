"""The DeployGraph's ops, one module each, found by discovery: every module of this package but `base` and
`common` defines one `Op` subclass whose `name` is the module's name (`hqflow/ops/lif.py`: op `lif`), the
single definition of the op's attributes (a schema), tensors, validation, execution, output range
(value_max), widths and counts; its docstring gives its inputs, output shape and integer equations.
Adding a module adds the op; each backend keeps one table from op name to its implementation and checks at
import (`check_backend`) that it covers OPS, naming any op it lacks.

The graph's first node is an `input` and its last a `head`. The Spikformer's ops: input, conv_lif,
linear_lif, maxpool, add, tokens, ssa, head; the Spike-driven Transformer's add conv_bn, linear_bn, lif and
sdsa (its membrane shortcut carries signed fixed-point values on the residual path: Op.signed).
"""

from __future__ import annotations

import importlib
import pkgutil

from hqflow.errors import UserError
from hqflow.ops.base import MAX_WIDTH, VALUE_LIMIT, Attr, NodeCheck, Op, TensorField, Window, is_int

SHARED_MODULES = ("base", "common")  # the package's modules that define no op


def discover(package: str, path, shared: tuple[str, ...] = SHARED_MODULES) -> dict[str, Op]:
    """op name -> Op, one per module of the package `package` (its `path`; sorted by name) but the `shared`
    ones; ValueError for a module that defines no Op subclass, more than one, or one named otherwise."""
    ops: dict[str, Op] = {}
    for info in pkgutil.iter_modules(path):
        if info.name in shared:
            continue
        module = importlib.import_module(f"{package}.{info.name}")
        classes = [c for c in vars(module).values() if isinstance(c, type) and issubclass(c, Op)
                   and c.__module__ == module.__name__ and "name" in vars(c)]
        if len(classes) != 1 or classes[0].name != info.name:
            found = ", ".join(f"{c.__name__} (name {c.name!r})" for c in classes) or "none"
            raise ValueError(f"{module.__file__}: an op module defines one Op subclass whose name is the module's, "
                             f"{info.name!r}; found {found}")
        ops[info.name] = classes[0]()
    return ops


OPS: dict[str, Op] = discover(__name__, __path__)
INPUT_OP, OUTPUT_OP = "input", "head"  # the graph's first and last node


def op_for(node) -> Op:
    """The Op of `node` (anything with .name and .op); UserError naming the node for an unknown op."""
    op = OPS.get(node.op) if isinstance(node.op, str) else None
    if op is None:
        raise UserError(f"node {node.name!r}: unknown op {node.op!r} (known: {', '.join(OPS)})")
    return op


def check_backend(table: dict, backend: str, complete: bool = True) -> None:
    """A backend's table op name -> implementation covers every op of OPS (and names no other): a
    ValueError names the missing op, so that a new op cannot be forgotten silently. complete=False: a
    backend that may lack ops (the layer-sequential architecture, kept as a reference), whose lookup
    (`implementation`) refuses a node of a missing op by name."""
    missing = [name for name in OPS if name not in table]
    if missing and complete:
        raise ValueError(f"{backend} has no implementation of op {missing[0]!r}: add one to its table "
                         f"(ops it must cover: {', '.join(OPS)})")
    unknown = sorted(set(table) - set(OPS))
    if unknown:
        raise ValueError(f"{backend} implements op {unknown[0]!r}, which hqflow.ops does not define")


def implementation(table: dict, node, backend: str):
    """`table`'s implementation of `node`'s op; UserError naming the node, its op and the backend's ops
    when the op is unknown (op_for) or the backend lacks it."""
    op = op_for(node)
    if op.name not in table:
        raise UserError(f"node {node.name!r}: {backend} does not implement op {op.name!r} (it implements "
                        f"{', '.join(table)})")
    return table[op.name]


def signed_nodes(nodes) -> frozenset[str]:
    """The nodes (in graph order) whose output values may be negative (Op.signed, from their inputs')."""
    signed: set[str] = set()
    for node in nodes:
        if op_for(node).signed([name in signed for name in node.inputs]):
            signed.add(node.name)
    return frozenset(signed)


def check_graph(table: dict, nodes, backend: str) -> None:
    """Every node's op implemented by the backend (`implementation`), before it renders anything."""
    for node in nodes:
        implementation(table, node, backend)


__all__ = ["MAX_WIDTH", "OPS", "discover", "VALUE_LIMIT", "Attr", "NodeCheck", "Op", "TensorField", "Window",
           "check_backend", "check_graph", "implementation", "is_int", "op_for", "signed_nodes", "INPUT_OP", "OUTPUT_OP"]
