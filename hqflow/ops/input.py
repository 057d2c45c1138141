"""input: the event frames. No inputs; output [C, H, W] per step, counts in 0..max_count."""

from __future__ import annotations

import numpy as np

from hqflow.ops.base import VALUE_LIMIT, Attr, NodeCheck, Op


class Input(Op):
    name = "input"
    arity = 0
    attrs = (Attr("max_count", 1, VALUE_LIMIT - 1, "the largest input value"),)
    output = "[channels, height, width]"

    def validate(self, check: NodeCheck, sources) -> None:
        check.own_ndim(3, self.output)
        self.check_attrs(check)

    def execute(self, graph, node, frames):
        """Frames [B, T, C, H, W] -> int64 [T, B, C, H, W]."""
        return frames.swapaxes(0, 1).astype(np.int64)

    def value_max(self, node, sources, tensors, time_steps) -> int:
        return int(node.attrs["max_count"])
