"""maxpool: max pooling over each window (numerics.maxpool_int): of spikes an OR (the Spikformer's pools,
the hardware's), of the signed fixed-point values on the Spike-driven Transformer's residual path (its
stage-3 pool, NumPy only for now).

    input x [C, H, W] (|values| <= x's value_max)  ->  [C, H', W'],  H' = WINDOW.out(H), the same range
"""

from __future__ import annotations

import numpy as np

from hqflow import numerics
from hqflow.ops.base import NodeCheck, Op, Window, check_window

# What the simulator and the HLS kernel implement (the Spikformer tokenizer's MaxPool2d(3, 2, 1)).
WINDOW = Window(kernel_size=3, stride=2, padding=1)


class MaxPool(Op):
    name = "maxpool"
    arity = 1
    window = WINDOW
    attrs = WINDOW.attrs()
    output = "[channels, height, width]"

    def validate(self, check: NodeCheck, sources) -> None:
        check_window(check, self.attrs, sources[0])

    def execute(self, graph, node, x):
        pooled = numerics.maxpool_int(x.reshape(-1, *x.shape[2:]), int(node.attrs["kernel_size"]),
                                      int(node.attrs["stride"]), int(node.attrs["padding"]))
        return pooled.reshape(*x.shape[:2], *pooled.shape[1:])

    def spike_ops(self, step, time_steps):
        """K^2 - 1 comparisons (of spikes: ORs) an output and step."""
        return {"compares": int(np.prod(step.shape)) * (self.window.kernel_size ** 2 - 1) * time_steps}

    def signed(self, inputs_signed) -> bool:
        return any(inputs_signed)

    def value_max(self, node, sources, tensors, time_steps) -> int:
        return sources[0].value_max
