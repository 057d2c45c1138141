"""add: the residual add of two values of one shape (integers, no overflow: outputs stay below 2^62)."""

from __future__ import annotations

import math

import numpy as np

from hqflow.ops.base import NodeCheck, Op


class Add(Op):
    name = "add"
    arity = 2
    output = "the shape of its inputs"

    def validate(self, check: NodeCheck, sources) -> None:
        first, second = sources
        if first.shape != second.shape:
            check.fail(f"inputs {first.name!r} {list(first.shape)} and {second.name!r} {list(second.shape)} differ "
                       "in shape")
        check.expect_shape(first.shape, "the shape of its inputs")

    def spike_ops(self, step, time_steps):
        return {"adds": math.prod(step.shape) * time_steps}

    def execute(self, graph, node, a, b):
        return a.astype(np.int64) + b

    def signed(self, inputs_signed) -> bool:
        return any(inputs_signed)

    def value_max(self, node, sources, tensors, time_steps) -> int:
        return sources[0].value_max + sources[1].value_max
