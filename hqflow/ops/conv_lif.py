"""conv_lif: a 2-D convolution (no bias) and its BN-folded integer LIF.

    input x [C, H, W] (values 0..x_max)  ->  spikes [O, H', W'],  H' = WINDOW.out(H)
    tensors  weight codes [O, C, kernel, kernel] (common.WEIGHT_FIELDS of attrs.format), bias_int, thr_int, sign [O]
"""

from __future__ import annotations

import numpy as np

from hqflow import numerics
from hqflow.numerics import fast
from hqflow.ops import common
from hqflow.ops.base import NodeCheck, Window, check_window

# What the simulator (numerics.conv2d_acc) and the HLS kernel implement: a 3x3 window, stride 1, padding 1.
WINDOW = Window(kernel_size=3, stride=1, padding=1)
CONV_ATTRS = WINDOW.attrs()


def check_conv(check: NodeCheck, source) -> np.ndarray:
    """A convolution node on `source` [C, H, W]: its output shape [O, H', W'], window and weights (common.
    check_weights for inputs up to the source's value_max); returns w_eff [O, C, K, K]."""
    check.own_ndim(3, "[channels, height, width]")
    out_channels = check.node.shape[0]
    window, in_channels = check_window(check, CONV_ATTRS, source, out_channels, "convolution")
    return common.check_weights(check, (out_channels, in_channels, window.kernel_size, window.kernel_size),
                                source.value_max)


class Conv:
    """What conv_lif and conv_bn share besides their weights: the window and the synaptic operations."""

    window = WINDOW

    def synops(self, graph, node, x):
        return [common.conv_synops(node.name, x, graph.w_eff(node), int(node.attrs["padding"]))]


class ConvLif(Conv, common.WeightedLif):
    name = "conv_lif"
    arity = 1
    attrs = (*CONV_ATTRS, *common.WEIGHT_ATTRS, *common.LIF_ATTRS)
    output = "[channels, height, width]"

    def validate(self, check: NodeCheck, sources) -> None:
        (source,) = sources
        weights = check_conv(check, source)
        bound = numerics.acc_bound(source.value_max, weights)
        common.check_lif(check, weights.shape[0], -bound, bound)

    def neurons(self, graph, node, x):
        """One step's convolution at a time (a generator into lif_run): the working arrays stay one
        step large, which the allocator reuses, instead of T times larger."""
        w_eff = graph.w_eff(node)
        acc_seq = (fast.conv2d_acc(x_t, w_eff, padding=int(node.attrs["padding"])) for x_t in x)
        return [common.lif_neurons(graph, node, acc_seq, channel_axis=1)]
