"""conv_bn: a 2-D convolution (no bias) and its BN as a fixed-point value, no LIF (the Spike-driven
Transformer's membrane shortcut: its output joins the residual path before any neuron).

    input x [C, H, W] (|values| <= x_max)  ->  y_int [O, H', W'] signed, y_int = y * 2^frac_bits
    y_int = (acc * m_int + b_int) >> shift   (numerics.requant; BN folded by numerics.fold_requant)
    tensors  weight codes [O, C, kernel, kernel] (common.WEIGHT_FIELDS of attrs.format), m_int, b_int [O]
"""

from __future__ import annotations

import numpy as np

from hqflow import numerics
from hqflow.numerics import fast
from hqflow.ops import common
from hqflow.ops.base import NodeCheck
from hqflow.ops.conv_lif import CONV_ATTRS, Conv, check_conv


class ConvBn(Conv, common.WeightedBn):
    name = "conv_bn"
    arity = 1
    attrs = (*CONV_ATTRS, *common.WEIGHT_ATTRS, *common.REQUANT_ATTRS)
    output = "[channels, height, width]"

    def validate(self, check: NodeCheck, sources) -> None:
        (source,) = sources
        weights = check_conv(check, source)
        self.check_requant(check, weights.shape[0], weights, source.value_max)

    def execute(self, graph, node, x):
        w_eff, consts = graph.w_eff(node), common.requant_consts(node.attrs, graph.node_tensors(node.name))
        padding = int(node.attrs["padding"])
        return np.stack([numerics.requant(fast.conv2d_acc(x_t, w_eff, padding=padding), consts, 1)
                                  for x_t in x])
