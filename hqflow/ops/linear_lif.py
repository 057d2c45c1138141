"""linear_lif: a linear layer (a 1x1 convolution over tokens, no bias) and its BN-folded integer LIF.

    input x [N, C] (values 0..x_max)  ->  spikes [N, O]
    tensors  weight codes [O, C] (common.WEIGHT_FIELDS of attrs.format), bias_int, thr_int, sign [O]
"""

from __future__ import annotations

import numpy as np

from hqflow import numerics
from hqflow.numerics import fast
from hqflow.ops import common
from hqflow.ops.base import NodeCheck


def check_linear(check: NodeCheck, source) -> np.ndarray:
    """A linear node on tokens `source` [N, C]: its output shape [N, O] and weights (common.check_weights for
    inputs up to the source's value_max); returns w_eff [O, C]."""
    tokens, in_channels = check.shape_of(source, 2, "[tokens, channels]")
    check.own_ndim(2, "[tokens, channels]")
    out_channels = check.node.shape[1]
    check.expect_shape((tokens, out_channels), "the input's tokens")
    return common.check_weights(check, (out_channels, in_channels), source.value_max)


class Linear:
    """What linear_lif and linear_bn share besides their weights: the synaptic operations."""

    def synops(self, graph, node, x):
        return [common.linear_synops(node.name, x, graph.w_eff(node))]


class LinearLif(Linear, common.WeightedLif):
    name = "linear_lif"
    arity = 1
    attrs = (*common.WEIGHT_ATTRS, *common.LIF_ATTRS)
    output = "[tokens, channels]"

    def validate(self, check: NodeCheck, sources) -> None:
        (source,) = sources
        weights = check_linear(check, source)
        bound = numerics.acc_bound(source.value_max, weights)
        common.check_lif(check, weights.shape[0], -bound, bound)

    def neurons(self, graph, node, x):
        return [common.lif_neurons(graph, node, fast.linear_acc(x, graph.w_eff(node)), channel_axis=-1)]
