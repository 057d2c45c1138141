"""maxpool: max pooling of spikes, an OR over each window (numerics.maxpool_or).

    input spikes [C, H, W] (0/1)  ->  spikes [C, H', W'],  H' = WINDOW.out(H)
"""

from __future__ import annotations

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
        (source,) = sources
        if source.value_max != 1:
            check.fail(f"input {source.name!r} holds values up to {source.value_max}; max pooling is an OR of "
                       "spikes (0/1)")
        check_window(check, self.attrs, source)

    def execute(self, graph, node, x):
        pooled = numerics.maxpool_or(x.reshape(-1, *x.shape[2:]), int(node.attrs["kernel_size"]),
                                     int(node.attrs["stride"]), int(node.attrs["padding"]))
        return pooled.reshape(*x.shape[:2], *pooled.shape[1:])

    def value_max(self, node, sources, tensors, time_steps) -> int:
        return 1
