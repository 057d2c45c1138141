"""head: the classifier. Sums its input over tokens and time steps, then a linear layer with bias.

    input x [N, C] (values 0..v)  ->  logits [K]:  ((sum_{t, n} x) @ w_eff^T << bias_frac_bits) + bias_int
    x_max = v * N * T (the largest summed input), logit_bits the width of the logits' range.
    tensors  weight codes [K, C] (common.WEIGHT_FIELDS of attrs.format), bias_int [K]
"""

from __future__ import annotations

import dataclasses

import numpy as np

from hqflow import numerics
from hqflow.numerics import fast
from hqflow.ops import common
from hqflow.ops.base import MAX_FRAC_BITS, Attr, NodeCheck, Op, TensorField


def logit_range(x_max: int, weights: np.ndarray, bias_int: np.ndarray, bias_frac_bits: int) -> tuple[int, int]:
    """(lo, hi) of the integer logits for summed inputs in [0, x_max]."""
    bound = numerics.acc_bound(x_max, weights) << bias_frac_bits
    return -bound + int(bias_int.min(initial=0)), bound + int(bias_int.max(initial=0))


def summed_max(source, time_steps: int) -> int:
    """The largest value of the head's input summed over its tokens and the time steps."""
    return source.value_max * source.shape[0] * time_steps


class Head(Op):
    name = "head"
    arity = 1
    attrs = (Attr("num_tokens", 1, None, "the tokens it sums"),
             Attr("bias_frac_bits", 0, MAX_FRAC_BITS, "fractional bits of the logits"),
             Attr("logit_bits", 1, common.MAX_WIDTH, "the width of the logits' range"),
             *common.WEIGHT_ATTRS)
    metadata = ("weight_scale", "qkeras")
    tensors = (*common.WEIGHT_TENSORS, TensorField("bias_int", np.int64, "[classes], in logit units"))
    output = "[classes]"
    value_limit = 2**63  # signed logits within 64 bits; nothing adds to them

    def weight_counts(self, step) -> tuple[int, int]:
        """One output per class and step: it averages the tokens first."""
        return common.weight_counts(step, positions=1)

    def validate(self, check: NodeCheck, sources) -> None:
        (source,) = sources
        tokens, channels = check.shape_of(source, 2, "[tokens, channels]")
        check.own_ndim(1, self.output)
        classes = check.node.shape[0]
        num_tokens = check.attr(self.attrs[0])
        if num_tokens != tokens:
            check.fail(f"attrs.num_tokens {num_tokens}; its input {source.name!r} has {tokens} tokens")
        x_max = summed_max(source, check.graph.time_steps)
        weights = common.check_weights(check, (classes, channels), x_max)
        bias_frac = check.attr(self.attrs[1])
        bias = check.tensor("bias_int", (classes,), *common.INT64_RANGE, "64-bit integers")
        lo, hi = logit_range(x_max, weights, bias, bias_frac)
        if numerics.bits_for(lo, hi) > common.MAX_WIDTH:
            check.fail(f"tensor 'bias_int': the logits (acc << bias_frac_bits {bias_frac}) + bias_int reach [{lo}, "
                       f"{hi}], more than {common.MAX_WIDTH} bits hold", tensors=True)

    def synops(self, graph, node, x):
        """NeuroBench's Linear on the tokens' mean of each step, [T, B, D]: inputs non-zero where a token sum is,
        and in {0, 1} only where every sum is 0 or N."""
        sums = x.sum(axis=2)
        ops = common.linear_synops(node.name, sums, graph.w_eff(node))
        return [dataclasses.replace(ops, accumulate=bool(np.isin(sums, (0, x.shape[2])).all()))]

    def execute(self, graph, node, x):
        acc_sum = fast.linear_acc(x.sum(axis=(0, 2)), graph.w_eff(node))  # sum over T and tokens first
        return numerics.head_logits(acc_sum, graph.tensor(node.name, "bias_int"), int(node.attrs["bias_frac_bits"]))

    def _range(self, node, sources, tensors, time_steps) -> tuple[int, int]:
        return logit_range(summed_max(sources[0], time_steps), common.w_eff(node.attrs, tensors),
                           np.asarray(tensors["bias_int"]), int(node.attrs["bias_frac_bits"]))

    def signed(self, inputs_signed) -> bool:
        return True

    def value_max(self, node, sources, tensors, time_steps) -> int:
        lo, hi = self._range(node, sources, tensors, time_steps)
        return max(-lo, hi)

    def figures(self, node, sources, tensors, time_steps) -> dict[str, int]:
        lo, hi = self._range(node, sources, tensors, time_steps)
        return {"x_max": summed_max(sources[0], time_steps), "logit_bits": numerics.bits_for(lo, hi)}

    def widths(self, node, sources, tensors, time_steps) -> dict[str, int]:
        return {"acc_bits": common.acc_bits(node.attrs["x_max"], common.w_eff(node.attrs, tensors))}
