"""lif: a LIF neuron on a signed fixed-point input, alone (the Spike-driven Transformer's neurons on its
membrane-shortcut path: the residual sums of conv_bn / linear_bn outputs, x_int = x * 2^in_frac_bits).

    input x_int [...] (|values| <= x_max)  ->  spikes [...] (the same shape)
    one channel of tables (bias_int 0, thr_int, sign [1]) for every element: numerics.fold_lif(1, 0,
    2^-in_frac_bits, theta, 0, T) makes its threshold theta * 2^(in_frac_bits + T), exact.
"""

from __future__ import annotations

import math

from hqflow.ops import common
from hqflow.ops.base import MAX_FRAC_BITS, Attr, NodeCheck, Op


class Lif(Op):
    name = "lif"
    arity = 1
    attrs = (Attr("x_max", 0, None, "the largest magnitude of the input"),
             Attr("in_frac_bits", 0, MAX_FRAC_BITS, "fractional bits of the input"), *common.LIF_ATTRS)
    metadata = ("theta",)
    tensors = common.LIF_TENSORS
    output = "the shape of its input"
    spiking = True

    def validate(self, check: NodeCheck, sources) -> None:
        (source,) = sources
        check.expect_shape(source.shape, "the shape of its input")
        check.attr(self.attrs[1])
        common.check_lif(check, 1, -source.value_max, source.value_max)

    def neurons(self, graph, node, x):
        return [common.lif_neurons(graph, node, x, channel_axis=-1)]

    def spike_ops(self, step, time_steps):
        return {"updates": math.prod(step.shape) * time_steps}

    def value_max(self, node, sources, tensors, time_steps) -> int:
        return 1

    def figures(self, node, sources, tensors, time_steps) -> dict[str, int]:
        return {"x_max": sources[0].value_max}

    def widths(self, node, sources, tensors, time_steps) -> dict[str, int]:
        return {"v_bits": common.v_bits(node.attrs["x_max"], node.attrs, tensors)}
