"""What the weighted ops (conv_lif, linear_lif, head) and the spiking ops (conv_lif, linear_lif, ssa)
share: the weight format and its code tables, and the integer LIF's tables and widths."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from hqflow import numerics
from hqflow.errors import UserError
from hqflow.numerics import fast
from hqflow.ops.base import MAX_FRAC_BITS, MAX_WIDTH, Attr, Neurons, NodeCheck, Op, SynOps, TensorField

# The code tables of each weight scheme (numerics.w_eff_from_codes turns them into w_eff).
WEIGHT_FIELDS = {"uniform": ("w_int",), "po2": ("w_sign", "w_shift"), "fp32": ("w_fx",)}
WEIGHT_TENSORS = (TensorField("w_int", np.uint8, "uniform-b codes in 0..2^b - 1, [O, *fan-in]"),
                  TensorField("w_sign", np.int8, "po2 signs -1, +1 (0: the po2z zero level), [O, *fan-in]"),
                  TensorField("w_shift", np.uint8, "po2 shifts in 0..po2_max_shift, [O, *fan-in]"),
                  TensorField("w_fx", np.int64, "fp32 as 32-bit signed fixed point, [O, *fan-in]"))
LIF_TENSORS = (TensorField("bias_int", np.int64, "[channels]"),
               TensorField("thr_int", np.int64, "[channels], >= 0"),
               TensorField("sign", np.int8, "[channels], -1, 0 or 1"))
LIF_ATTRS = (Attr("bias_frac_bits", 0, MAX_FRAC_BITS, "fractional bits of bias_int"),
             Attr("frac_bits", 0, MAX_FRAC_BITS, "fractional bits of the membrane: bias_frac_bits + T"),
             Attr("v_bits", 1, MAX_WIDTH, "the membrane width in bits"))
WEIGHT_ATTRS = (Attr("x_max", 0, None, "the largest value the weights multiply"),
                Attr("acc_bits", 1, MAX_WIDTH, "the accumulator width in bits"))
WEIGHT_METADATA = ("weight_scale", "qkeras")  # besides attrs.format and, for uniform-b, attrs.zero_point
FIXED_POINT_RANGE = (-(2 ** (numerics.FIXED_POINT_BITS - 1)), 2 ** (numerics.FIXED_POINT_BITS - 1) - 1)
INT64_RANGE = (-(2**63), 2**63 - 1)


def w_eff(attrs: Mapping, tensors: Mapping[str, np.ndarray]) -> np.ndarray:
    """A weighted node's integer weights int64 [O, ...] from its format's code tables (`tensors` by field)."""
    fmt = numerics.Candidate.parse(attrs["format"])
    codes = {name: tensors[name] for name in WEIGHT_FIELDS[fmt.scheme]}
    return numerics.w_eff_from_codes(fmt, codes, attrs.get("zero_point", 0))


def acc_bits(x_max: int, weights: np.ndarray) -> int:
    """The narrowest accumulator width for inputs in [0, x_max]; ValueError beyond 64 bits."""
    bound = numerics.acc_bound(x_max, weights)
    bits = numerics.bits_for(-bound, bound)
    if bits > MAX_WIDTH:
        raise ValueError(f"its accumulator range +-{bound} needs {bits} bits, more than {MAX_WIDTH}")
    return bits


def lif_consts(attrs: Mapping, tensors: Mapping[str, np.ndarray]) -> numerics.LifConsts:
    """The node's integer LIF constants (numerics.LifConsts) from its tables and attrs."""
    return numerics.LifConsts(*(np.asarray(tensors[name], np.int64) for name in ("bias_int", "thr_int", "sign")),
                              int(attrs["frac_bits"]), int(attrs["bias_frac_bits"]))


def check_weights(check: NodeCheck, shape: tuple[int, ...], x_max: int) -> np.ndarray:
    """A weighted node's format, code tables and acc_bits (holding the accumulator for inputs in
    [0, x_max]); returns w_eff int64 [shape]. attrs.x_max is a figure (ir checks it)."""
    node = check.node
    if "format" not in node.attrs:
        check.fail("attrs.format missing; expected fp32, uniform-<bits>, po2-<bits> or po2z-<bits>")
    try:
        fmt = numerics.Candidate.parse(node.attrs["format"])
    except UserError as err:
        check.fail(f"attrs.format: {err}")
    if fmt.scheme == "uniform":
        top = 2**fmt.bits - 1
        codes = {"w_int": check.tensor("w_int", shape, 0, top, f"{fmt.name} codes in 0..{top}")}
        zero_point = check.attr_int("zero_point", 0, top, f"a {fmt.name} code")
    elif fmt.scheme == "po2":
        codes, zero_point = _check_po2(check, fmt, shape), 0
    else:
        lo, hi = FIXED_POINT_RANGE
        codes = {"w_fx": check.tensor("w_fx", shape, lo, hi,
                                      f"{numerics.FIXED_POINT_BITS}-bit signed fixed point in {lo}..{hi}")}
        zero_point = 0
    weights = numerics.w_eff_from_codes(fmt, codes, zero_point)
    bound = numerics.acc_bound(x_max, weights)
    check.width("acc_bits", -bound, bound, "the accumulator range")
    return weights


def _check_po2(check: NodeCheck, fmt: numerics.Candidate, shape: tuple[int, ...]) -> dict[str, np.ndarray]:
    kmax = numerics.po2_max_shift(fmt.bits, fmt.zero_level)
    sign = check.tensor("w_sign", shape, -1, 1, f"{fmt.name} signs in {{-1, 0, +1}}" if fmt.zero_level else
                        f"{fmt.name} signs -1 or +1 (no zero level)")
    shift = check.tensor("w_shift", shape, 0, kmax, f"{fmt.name} shifts in 0..{kmax}" +
                         (" (the zero level is the code w_sign 0, w_shift 0)" if fmt.zero_level else ""))
    if not fmt.zero_level and (sign == 0).any():
        index = tuple(int(i) for i in np.argwhere(sign == 0)[0])
        check.fail(f"tensor 'w_sign' holds 0 at index {index}; {fmt.name} has no zero level (signs -1 or +1)",
                   tensors=True)
    if fmt.zero_level and ((sign == 0) & (shift != 0)).any():
        index = tuple(int(i) for i in np.argwhere((sign == 0) & (shift != 0))[0])
        check.fail(f"tensor 'w_shift' holds {int(shift[index])} at index {index} where w_sign is 0; the zero "
                   "level is the code w_sign 0, w_shift 0", tensors=True)
    return {"w_sign": sign, "w_shift": shift}


def check_lif(check: NodeCheck, channels: int, acc_lo: int, acc_hi: int) -> None:
    """The integer LIF's tables and attributes (numerics.LifConsts, lif_step) for accumulators in
    [acc_lo, acc_hi]: frac_bits = bias_frac_bits + T, and v_bits holds the membrane."""
    time_steps = check.graph.time_steps
    bias_frac, frac = (check.attr(spec) for spec in LIF_ATTRS[:2])
    if frac - bias_frac != time_steps:
        check.fail(f"attrs.frac_bits {frac} must be bias_frac_bits {bias_frac} + T {time_steps} (the halvings of "
                   "tau = 2 are exact only then)")
    tables = {"bias_int": check.tensor("bias_int", (channels,), *INT64_RANGE, "64-bit integers"),
              "thr_int": check.tensor("thr_int", (channels,), 0, INT64_RANGE[1], "thresholds >= 0 (the sign is "
                                      "separate)"),
              "sign": check.tensor("sign", (channels,), -1, 1, "values -1, 0 or 1")}
    try:
        need = numerics.membrane_bits(acc_lo, acc_hi, lif_consts(check.node.attrs, tables))
    except ValueError:
        need = MAX_WIDTH + 1
    if need > MAX_WIDTH:
        bias, thr = tables["bias_int"], tables["thr_int"]
        check.fail(f"tensors 'bias_int' (up to {abs_max(bias)} in magnitude) and 'thr_int' (up to "
                   f"{int(thr.max(initial=0))}): the membrane for accumulators in [{acc_lo}, {acc_hi}] needs "
                   f"more than {MAX_WIDTH} bits", tensors=True)
    v_bits = check.attr(LIF_ATTRS[2])
    if v_bits < need:
        check.fail(f"attrs.v_bits {v_bits} cannot hold the membrane ({need} bits needed for accumulators in "
                   f"[{acc_lo}, {acc_hi}])")


def check_qkv(check: NodeCheck, sources) -> tuple[int, int]:
    """An attention node's inputs q, k, v: spikes (0/1) of its own shape [tokens, channels]; returns that."""
    check.own_ndim(2, "[tokens, channels]")
    tokens, dim = check.node.shape
    for source in sources:
        check.shape_of(source, 2, "[tokens, channels]")
        if source.shape != check.node.shape or source.value_max != 1:
            check.fail(f"input {source.name!r} ({list(source.shape)}, values up to {source.value_max}); q, k "
                       f"and v are spikes (0/1) of the node's shape {[tokens, dim]}")
    return tokens, dim


def v_bits(acc_bound: int, attrs: Mapping, tensors: Mapping[str, np.ndarray], acc_lo: int | None = None) -> int:
    """The narrowest membrane width for accumulators in [acc_lo (default -acc_bound), acc_bound];
    ValueError beyond 64 bits (numerics.membrane_bits)."""
    lo = -acc_bound if acc_lo is None else acc_lo
    return numerics.membrane_bits(lo, acc_bound, lif_consts(attrs, tensors))


def weight_counts(step, positions: int | None = None) -> tuple[int, int]:
    """A weight layer's (weights c_in c_out k^2, outputs per output channel and step: by default its output's
    elements over c_out, the pixels of a conv, the tokens of a linear layer): Op.weight_counts."""
    weights = step.c_in * step.c_out * step.kernel_size ** 2
    return weights, math.prod(step.shape) // step.c_out if positions is None else positions


def lif_neurons(graph, node, acc_seq, channel_axis: int, suffix: str = "") -> Neurons:
    """The node's LIF (its own tables) on `acc_seq` [T, B, ...] (or the T steps' arrays)."""
    return Neurons(node.name + suffix, acc_seq, lif_consts(node.attrs, graph.node_tensors(node.name)), channel_axis)


def accumulates(x: np.ndarray) -> bool:
    """NeuroBench's test of a layer's input: every value in {-1, 0, 1} (an AC; else a MAC)."""
    return bool(np.isin(x, (-1, 0, 1)).all())


def conv_synops(name: str, x: np.ndarray, w_eff: np.ndarray, padding: int) -> SynOps:
    """A convolution's synaptic operations on x [T, B, C, H, W]: the convolution of the non-zero inputs with
    the non-zero weights, summed (effective), and of all-ones inputs with all-ones weights (dense; the zero
    padding's products are none: NeuroBench's binary copy of the layer)."""
    nz_w = (w_eff != 0).astype(np.int64)
    effective = sum(int(fast.conv2d_acc((x_t != 0).astype(np.int64), nz_w, padding=padding).sum()) for x_t in x)
    ones = np.ones(x.shape[1:], np.int64)
    dense = len(x) * int(fast.conv2d_acc(ones, np.ones_like(nz_w), padding=padding).sum())
    return SynOps(name, effective, dense, accumulates(x))


def linear_synops(name: str, x: np.ndarray, w_eff: np.ndarray) -> SynOps:
    """A linear layer's synaptic operations on x [..., C] (w_eff [O, C]): non-zero inputs times the non-zero
    weights of their column (effective), every input times O (dense)."""
    nz_x = (x != 0).reshape(-1, x.shape[-1]).sum(axis=0)
    effective = int(nz_x @ (w_eff != 0).sum(axis=0))
    return SynOps(name, effective, x.size * w_eff.shape[0], accumulates(x))


def abs_max(array: np.ndarray) -> int:
    return max(int(array.max(initial=0)), -int(array.min(initial=0)))


class WeightLayer(Op):
    """An op with one weight layer (conv_lif, linear_lif, conv_bn, linear_bn): its weights and outputs."""

    def weight_counts(self, step) -> tuple[int, int]:
        return weight_counts(step)


class WeightedLif(WeightLayer):
    """What conv_lif and linear_lif share: weights, then the integer LIF; spikes out (value_max 1),
    x_max the input's value_max, acc_bits and v_bits the narrowest for it."""

    metadata = (*WEIGHT_METADATA, "theta")
    tensors = (*WEIGHT_TENSORS, *LIF_TENSORS)
    spiking = True

    def spike_ops(self, step, time_steps):
        """The LIF of every output (the multiply-accumulates are the weight layer's)."""
        return {"updates": int(np.prod(step.shape)) * time_steps}

    def value_max(self, node, sources, tensors, time_steps) -> int:
        return 1

    def figures(self, node, sources, tensors, time_steps) -> dict[str, int]:
        return {"x_max": sources[0].value_max}

    def widths(self, node, sources, tensors, time_steps) -> dict[str, int]:
        weights = w_eff(node.attrs, tensors)
        bound = numerics.acc_bound(node.attrs["x_max"], weights)
        return {"acc_bits": acc_bits(node.attrs["x_max"], weights),
                "v_bits": v_bits(bound, node.attrs, tensors)}


# ---- the membrane shortcut's weighted layers: a BN output as a fixed-point value (no LIF) -------------

REQUANT_TENSORS = (TensorField("m_int", np.int64, "[channels], |m_int| < 2^(MULT_BITS - 1)"),
                   TensorField("b_int", np.int64, "[channels]"))
REQUANT_ATTRS = (Attr("shift", 0, MAX_FRAC_BITS, "the requantization's right shift"),
                 Attr("frac_bits", 0, MAX_FRAC_BITS, "fractional bits of the output: y_int = y * 2^frac_bits"))


def requant_consts(attrs: Mapping, tensors: Mapping[str, np.ndarray]) -> numerics.RequantConsts:
    """The node's requantization constants (numerics.RequantConsts) from its tables and attrs."""
    return numerics.RequantConsts(np.asarray(tensors["m_int"], np.int64), np.asarray(tensors["b_int"], np.int64),
                                  int(attrs["shift"]), int(attrs["frac_bits"]))


class WeightedBn(WeightLayer):
    """What conv_bn and linear_bn share (the Spike-driven Transformer's membrane shortcut): weights, then
    the BN as a requantization to a signed fixed-point value (numerics.requant), no LIF. value_max is the
    largest magnitude of the output, x_max the input's value_max, acc_bits the narrowest for it."""

    metadata = WEIGHT_METADATA
    tensors = (*WEIGHT_TENSORS, *REQUANT_TENSORS)

    def signed(self, inputs_signed) -> bool:
        return True

    def check_requant(self, check: NodeCheck, channels: int, weights: np.ndarray, x_max: int) -> None:
        """The requantization's tables and attributes: m_int within MULT_BITS, every product within int64."""
        limit = 2 ** (numerics.MULT_BITS - 1) - 1
        tables = {"m_int": check.tensor("m_int", (channels,), -limit, limit, f"{numerics.MULT_BITS}-bit multipliers"),
                  "b_int": check.tensor("b_int", (channels,), *INT64_RANGE, "64-bit integers")}
        for spec in REQUANT_ATTRS:
            check.attr(spec)
        _, _, product = numerics.requant_range(x_max, weights, requant_consts(check.node.attrs, tables))
        if product > INT64_RANGE[1]:
            check.fail(f"tensors 'm_int' and 'b_int': acc * m_int + b_int reaches {product}, beyond int64",
                       tensors=True)

    def value_max(self, node, sources, tensors, time_steps) -> int:
        lo, hi, _ = numerics.requant_range(sources[0].value_max, w_eff(node.attrs, tensors),
                                           requant_consts(node.attrs, tensors))
        return max(-lo, hi)

    def figures(self, node, sources, tensors, time_steps) -> dict[str, int]:
        return {"x_max": sources[0].value_max}

    def widths(self, node, sources, tensors, time_steps) -> dict[str, int]:
        return {"acc_bits": acc_bits(node.attrs["x_max"], w_eff(node.attrs, tensors))}
