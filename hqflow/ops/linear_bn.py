"""linear_bn: a linear layer (a 1x1 convolution over tokens, no bias) and its BN as a fixed-point value, no
LIF (the Spike-driven Transformer's membrane shortcut).

    input x [N, C] (|values| <= x_max)  ->  y_int [N, O] signed, y_int = y * 2^frac_bits
    y_int = (acc * m_int + b_int) >> shift   (numerics.requant; BN folded by numerics.fold_requant)
    tensors  weight codes [O, C] (common.WEIGHT_FIELDS of attrs.format), m_int, b_int [O]
"""

from __future__ import annotations

from hqflow import numerics
from hqflow.numerics import fast
from hqflow.ops import common
from hqflow.ops.base import NodeCheck
from hqflow.ops.linear_lif import Linear, check_linear


class LinearBn(Linear, common.WeightedBn):
    name = "linear_bn"
    arity = 1
    attrs = (*common.WEIGHT_ATTRS, *common.REQUANT_ATTRS)
    output = "[tokens, channels]"

    def validate(self, check: NodeCheck, sources) -> None:
        (source,) = sources
        weights = check_linear(check, source)
        self.check_requant(check, weights.shape[0], weights, source.value_max)

    def execute(self, graph, node, x):
        acc = fast.linear_acc(x, graph.w_eff(node))
        return numerics.requant(acc, common.requant_consts(node.attrs, graph.node_tensors(node.name)), -1)
