"""The DeployGraph's ops, one module each: the single definition of every op's attributes (a schema),
tensors, validation, output range (value_max) and widths. Backends (the NumPy simulator, the HLS
writer) each keep one table from op name to their implementation and check at import that it covers
OPS.

    op           inputs      output shape     stored figures (load_graph checks them)
    input        -           [C, H, W]        value_max = attrs.max_count
    conv_lif     x           [O, H', W']      value_max 1; attrs.x_max = x's value_max
    linear_lif   x           [N, O]           value_max 1; attrs.x_max = x's value_max
    maxpool      x (spikes)  [C, H', W']      value_max 1
    add          a, b        a's shape        value_max = a's + b's
    tokens       x           [H * W, C]       value_max = x's
    ssa          q, k, v     [N, D]           value_max 1; attrs.x_max 1
    head         x           [K]              value_max = the largest |logit|; attrs.x_max = x's value_max * N * T,
                                              attrs.logit_bits
  the Spike-driven Transformer's (membrane shortcut: signed fixed-point values on the residual path):
    conv_bn      x           [O, H', W']      value_max = the largest |y_int|; attrs.x_max = x's value_max
    linear_bn    x           [N, O]           value_max = the largest |y_int|; attrs.x_max = x's value_max
    lif          x           x's shape        value_max 1; attrs.x_max = x's value_max (|x| <= x_max)
    sdsa         q, k, v     [N, D]           value_max 1; attrs.x_max 1
"""

from __future__ import annotations

from hqflow.errors import UserError
from hqflow.ops.add import Add
from hqflow.ops.base import MAX_WIDTH, VALUE_LIMIT, Attr, NodeCheck, Op, TensorField, Window, is_int
from hqflow.ops.conv_bn import ConvBn
from hqflow.ops.conv_lif import ConvLif
from hqflow.ops.head import Head
from hqflow.ops.input import Input
from hqflow.ops.lif import Lif
from hqflow.ops.linear_bn import LinearBn
from hqflow.ops.linear_lif import LinearLif
from hqflow.ops.maxpool import MaxPool
from hqflow.ops.sdsa import Sdsa
from hqflow.ops.ssa import Ssa
from hqflow.ops.tokens import Tokens

OPS: dict[str, Op] = {op.name: op for op in (Input(), ConvLif(), LinearLif(), MaxPool(), Add(), Tokens(), Ssa(),
                                             Head(), ConvBn(), LinearBn(), Lif(), Sdsa())}
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


__all__ = ["MAX_WIDTH", "OPS", "VALUE_LIMIT", "Attr", "NodeCheck", "Op", "TensorField", "Window",
           "check_backend", "check_graph", "implementation", "is_int", "op_for", "signed_nodes", "INPUT_OP", "OUTPUT_OP"]
