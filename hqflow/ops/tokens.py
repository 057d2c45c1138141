"""tokens: the feature map as tokens, [C, H, W] -> [H * W, C] (a reshape; values unchanged)."""

from __future__ import annotations

from hqflow.ops.base import NodeCheck, Op


class Tokens(Op):
    name = "tokens"
    arity = 1
    output = "[height * width, channels]"

    def validate(self, check: NodeCheck, sources) -> None:
        channels, height, width = check.shape_of(sources[0], 3, "[channels, height, width]")
        check.expect_shape((height * width, channels), "[height * width, channels]")

    def execute(self, graph, node, x):
        """[T, B, C, H, W] -> [T, B, H * W, C]."""
        return x.reshape(*x.shape[:3], -1).swapaxes(2, 3)

    def signed(self, inputs_signed) -> bool:
        return any(inputs_signed)

    def value_max(self, node, sources, tensors, time_steps) -> int:
        return sources[0].value_max
