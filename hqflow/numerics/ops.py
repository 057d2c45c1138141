"""The reference integer ops of the deployed model: accumulation, the LIF (charge, fire, reset),
OR max pooling, spiking self-attention, the head's logits. Plain and exact; the simulator's fast
versions (numerics/fast.py) are tested equal to these.

Number formats (integers are int64 unless said; a width is a two's-complement width, bits_for):
  x             a layer's input, [B, C, H, W] or [..., C]: spikes (uint8 0/1) or, after
                residual adds, small non-negative integer counts
  w_eff         effective integer weights (codes.py); the real weight is w_eff * weight_scale
  acc           the exact integer accumulation sum(x * w_eff), in units of weight_scale
  v_int, h_int  the LIF membrane after / before the reset, in accumulator units (divided by the
                folded per-channel factor k_c) with frac_bits fractional bits (folding.py)
  y             the attention product q @ k^T @ v of spikes, an integer in [0, N * d_head]
  logits        integer logits: the real logits times N * T * 2^bias_frac_bits / weight_scale
                (plus the head bias rounding)
Rounding: none; every op here is exact (the one rounding, round_half_up, happens in folding.py).
Overflow: none may happen. Widths come from bounds.py (acc_bound, membrane_bits, ssa_bound), and a
bound beyond int64 raises ValueError naming the op.
Residual add: the plain integer sum x + y (no rounding); its width is bits_for(lo_x + lo_y, hi_x + hi_y).
"""

from __future__ import annotations

import numpy as np

from hqflow.numerics.bounds import FLOAT64_EXACT, abs_max, acc_bound, check_int64, ssa_bound
from hqflow.numerics.folding import LifConsts, RequantConsts

__all__ = ["argmax_first", "conv2d_acc", "conv2d_operands", "head_logits", "lif_charge", "lif_fire",
    "lif_reset", "lif_run", "lif_step", "linear_acc", "linear_operands", "maxpool_int", "maxpool_or", "requant", "requant_range",
    "ssa_int"]

# ---- accumulation: acc = sum(x * w_eff), exact -------------------------------------------------


def conv2d_operands(x, w_eff) -> tuple[np.ndarray, np.ndarray, int]:
    """(x, w_eff, bound) of a convolution: x [B, C, H, W] and w_eff [O, C, k, k] as arrays, checked to
    match (ValueError naming conv2d_acc), and bound = acc_bound(max|x|, w_eff)."""
    x, w_eff = np.asarray(x), np.asarray(w_eff)
    if w_eff.ndim != 4 or x.ndim != 4 or x.shape[1] != w_eff.shape[1]:
        raise ValueError(f"conv2d_acc: input shape {x.shape} does not match weights {w_eff.shape}")
    return x, w_eff, acc_bound(abs_max(x), w_eff)


def linear_operands(x, w_eff) -> tuple[np.ndarray, np.ndarray, int]:
    """(x, w_eff, bound) of a linear layer: x [..., C_in] and w_eff [C_out, C_in] as arrays, checked to
    match (ValueError naming linear_acc), and bound = acc_bound(max|x|, w_eff)."""
    x, w_eff = np.asarray(x), np.asarray(w_eff)
    if w_eff.ndim != 2 or x.shape[-1] != w_eff.shape[1]:
        raise ValueError(f"linear_acc: input shape {x.shape} does not match weights {w_eff.shape}")
    return x, w_eff, acc_bound(abs_max(x), w_eff)


def conv2d_acc(x, w_eff, padding: int = 1) -> np.ndarray:
    """Exact integer convolution: x [B, C, H, W] (integers), w_eff [O, C, k, k] -> acc int64 [B, O, H', W'].

    Stride 1, zero padding, H' = H + 2 * padding - k + 1 (the same for W'); the cross-correlation of
    torch's conv2d: acc[b, o, y, x] = sum_{c, i, j} x_pad[b, c, y + i, x + j] * w_eff[o, c, i, j].
    Computed in int64 as w_eff [O, C k k] @ patches [B, C k k, H' W'] (im2col). Every partial sum is
    within acc_bound(max|x|, w_eff), checked <= 2^63 - 1 (ValueError otherwise), so the sum is exact
    in any order. acc width: bits_for(-acc_bound, acc_bound).

    >>> x = np.ones((1, 1, 2, 2), np.uint8)
    >>> conv2d_acc(x, np.full((1, 1, 3, 3), 2))[0, 0]
    array([[8, 8],
           [8, 8]])
    """
    x, w_eff, bound = conv2d_operands(x, w_eff)
    check_int64("conv2d_acc", "|acc|", bound)
    (out_c, in_c, kh, kw), (batch, _, h, w) = w_eff.shape, x.shape
    h_out, w_out = h + 2 * padding - kh + 1, w + 2 * padding - kw + 1
    x_pad = np.pad(x.astype(np.int64), ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    patches = np.empty((batch, in_c, kh, kw, h_out, w_out), np.int64)  # im2col, channels first
    for i in range(kh):
        for j in range(kw):
            patches[:, :, i, j] = x_pad[:, :, i : i + h_out, j : j + w_out]
    w_2d = w_eff.reshape(out_c, -1).astype(np.int64)
    acc = np.matmul(w_2d, patches.reshape(batch, in_c * kh * kw, h_out * w_out))
    return acc.reshape(batch, out_c, h_out, w_out)


def linear_acc(x, w_eff) -> np.ndarray:
    """Exact integer linear layer: x [..., C_in] (integers), w_eff [C_out, C_in] -> acc int64 [..., C_out].

    acc = x @ w_eff^T in int64; every partial sum is within B = acc_bound(max|x|, w_eff), checked
    <= 2^63 - 1 (ValueError otherwise). acc width: bits_for(-B, B).

    >>> linear_acc(np.array([[1, 0, 2]]), np.array([[3, -1, 4], [0, 5, -2]]))
    array([[11, -4]])
    """
    x, w_eff, bound = linear_operands(x, w_eff)
    check_int64("linear_acc", "|acc|", bound)
    return np.matmul(x.astype(np.int64), w_eff.T.astype(np.int64))


# ---- the integer LIF: charge, fire, reset (folding.py derives the constants) -----------------------


def _per_channel(values: np.ndarray, ndim: int, channel_axis: int) -> np.ndarray:
    """Reshape a per-channel vector [C] to broadcast along channel_axis of an ndim-array."""
    shape = [1] * ndim
    shape[channel_axis] = -1
    return values.reshape(shape)


def lif_charge(v_int, acc, consts: LifConsts, channel_axis: int = -1) -> np.ndarray:
    """Charge: H = V + (X - V) / tau with tau = 2, in integers: (v_int, acc) int64 [..., C, ...] -> h_int.

        h_int = (v_int + (acc << F) + (bias_int << T)) >> 1      (a floor shift; exact for t <= T)
    F = consts.frac_bits, T = consts.time_steps; channel_axis is acc's channel axis. Width:
    membrane_bits, which the caller checks once per layer.

    >>> from hqflow.numerics import fold_lif
    >>> c = fold_lif(np.ones(1), np.zeros(1), 1.0, 1.0, 0, 2)   # F = 2
    >>> lif_charge(np.zeros((2, 1), np.int64), np.array([[1], [3]]), c).ravel()
    array([2, 6])
    """
    acc = np.asarray(acc, np.int64)
    bias = _per_channel(consts.bias_int << consts.time_steps, acc.ndim, channel_axis)
    return (np.asarray(v_int, np.int64) + (acc << consts.frac_bits) + bias) >> 1


def lif_fire(h_int, consts: LifConsts, channel_axis: int = -1) -> np.ndarray:
    """Fire: S = [H >= theta] per channel sign, in integers: h_int int64 -> spikes uint8 0/1, same shape.

        spikes = sign * h_int >= thr_int      (sign 0: fires where thr_int <= 0, see fold_lif)

    >>> from hqflow.numerics import fold_lif
    >>> c = fold_lif(np.ones(1), np.zeros(1), 1.0, 1.0, 0, 2)   # thr_int = 4
    >>> lif_fire(np.array([[2], [6]]), c).ravel()
    array([0, 1], dtype=uint8)
    """
    h_int = np.asarray(h_int, np.int64)
    sign, thr_int = (_per_channel(values, h_int.ndim, channel_axis) for values in (consts.sign, consts.thr_int))
    return (sign * h_int >= thr_int).astype(np.uint8)


def lif_reset(h_int, spikes) -> np.ndarray:
    """Hard reset: V = H * (1 - S): (h_int int64, spikes uint8 0/1 from lif_fire) -> v_int int64, same shape.

    >>> lif_reset(np.array([2, 6]), np.uint8([0, 1]))
    array([2, 0])
    """
    return np.asarray(h_int, np.int64) * (1 - np.asarray(spikes, np.uint8))  # 1 - S: uint8 0/1


def lif_step(v_int, acc, consts: LifConsts, channel_axis: int = -1) -> tuple[np.ndarray, np.ndarray]:
    """One LIF step: (v_int, acc) int64 [..., C, ...] -> (v_int_next int64, spikes uint8), same shape.

    lif_charge, lif_fire, lif_reset in turn; channel_axis is acc's channel axis ([B, C, H, W]: 1 or
    -3; tokens [..., C]: -1). Start from v_int = 0; the halving is exact for the first T steps after
    that (folding.py). Width: membrane_bits, which the caller checks once per layer: no overflow is
    possible within it.

    >>> from hqflow.numerics import fold_lif
    >>> c = fold_lif(np.ones(1), np.zeros(1), 1.0, 1.0, 0, 2)   # F = 2, thr_int = 4
    >>> v, s = lif_step(np.zeros((2, 1), np.int64), np.array([[1], [3]]), c)   # [B, C] = [2, 1]
    >>> v.ravel(), s.ravel()
    (array([2, 0]), array([0, 1], dtype=uint8))
    """
    h_int = lif_charge(v_int, acc, consts, channel_axis)
    spikes = lif_fire(h_int, consts, channel_axis)
    return lif_reset(h_int, spikes), spikes


def lif_run(acc_seq, consts: LifConsts, channel_axis: int = -1, observe=None) -> np.ndarray:
    """lif_step over time from a reset membrane: acc_seq [T, ...] -> spikes uint8 [T, ...].
    `observe(t, v_before, v_after, spikes)`, if given, sees every step's membranes (hqflow metrics).

    acc_seq is an int64 array or any iterable of the T steps' accumulators (a generator keeps only
    one step in memory). channel_axis as in lif_step (an axis of one step; negative axes count
    from the end). ValueError for more than consts.time_steps steps (the halving would no longer

    be exact).

    >>> from hqflow.numerics import fold_lif
    >>> c = fold_lif(np.ones(1), np.zeros(1), 1.0, 1.0, 0, 3)
    >>> lif_run(np.array([[1], [1], [3]]), c).ravel()
    array([0, 0, 1], dtype=uint8)
    """
    v_int, spikes = None, []
    for t, acc in enumerate(acc_seq):
        if t == consts.time_steps:
            raise ValueError(f"lif_run: more than {consts.time_steps} steps, but the constants are exact "
                             f"for {consts.time_steps}")
        acc = np.asarray(acc, np.int64)
        before = np.zeros(acc.shape, np.int64) if v_int is None else v_int
        v_int, s_t = lif_step(before, acc, consts, channel_axis)
        if observe is not None:
            observe(t, before, v_int, s_t)
        spikes.append(s_t)
    return np.stack(spikes)


# ---- spike ops: max pooling and self-attention ---------------------------------------------------


def maxpool_or(s, kernel: int = 3, stride: int = 2, padding: int = 1) -> np.ndarray:
    """Max pooling of spikes, an OR: s uint8 0/1 [..., H, W] -> uint8 [..., H', W'].

    H' = (H + 2 * padding - kernel) // stride + 1 (torch's MaxPool2d, ceil_mode False). Zero padding
    equals torch's -inf padding here since spikes are >= 0 and padding <= kernel // 2 leaves a real
    input in every window. No arithmetic: no width grows.

    >>> maxpool_or(np.array([[1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1]], np.uint8))
    array([[1, 0],
           [0, 1]], dtype=uint8)
    """
    s = np.asarray(s)
    if not 0 <= padding <= kernel // 2:
        raise ValueError(f"maxpool_or: padding {padding} must be in [0, kernel // 2 = {kernel // 2}]")
    s_pad = np.pad(s, [(0, 0)] * (s.ndim - 2) + [(padding, padding)] * 2)
    h_out = (s.shape[-2] + 2 * padding - kernel) // stride + 1
    w_out = (s.shape[-1] + 2 * padding - kernel) // stride + 1
    out = np.zeros((*s.shape[:-2], h_out, w_out), np.uint8)
    for i in range(kernel):  # OR of the kernel's k * k strided views
        for j in range(kernel):
            out |= s_pad[..., i : i + stride * (h_out - 1) + 1 : stride, j : j + stride * (w_out - 1) + 1 : stride]
    return out


def maxpool_int(x, kernel: int = 3, stride: int = 2, padding: int = 1) -> np.ndarray:
    """Max pooling of integers: x [..., H, W] (any integer dtype, signed values too) -> [..., H', W'], x's dtype.

    torch's MaxPool2d (ceil_mode False): the padding takes no part (it is the dtype's minimum, and
    padding <= kernel // 2 leaves a real input in every window). On spikes (uint8 0/1) it equals
    maxpool_or. No arithmetic: no width grows.

    >>> maxpool_int(np.array([[-5, -7], [-9, -6]]), 3, 2, 1)
    array([[-5]])
    """
    x = np.asarray(x)
    if not 0 <= padding <= kernel // 2:
        raise ValueError(f"maxpool_int: padding {padding} must be in [0, kernel // 2 = {kernel // 2}]")
    low = np.iinfo(x.dtype).min
    x_pad = np.pad(x, [(0, 0)] * (x.ndim - 2) + [(padding, padding)] * 2, constant_values=low)
    h_out = (x.shape[-2] + 2 * padding - kernel) // stride + 1
    w_out = (x.shape[-1] + 2 * padding - kernel) // stride + 1
    out = np.full((*x.shape[:-2], h_out, w_out), low, x.dtype)
    for i in range(kernel):
        for j in range(kernel):
            np.maximum(out, x_pad[..., i : i + stride * (h_out - 1) + 1 : stride,
                                  j : j + stride * (w_out - 1) + 1 : stride], out=out)
    return out


def ssa_int(q, k, v, num_heads: int) -> np.ndarray:
    """Spiking self-attention product: q, k, v uint8 spikes [..., N, D] -> y int64 [..., N, D].

    Per head h (channels h * d_head .. (h + 1) * d_head - 1, d_head = D / num_heads):
    y_h = q_h @ k_h^T @ v_h, computed as q_h @ (k_h^T @ v_h) (integer arithmetic is associative;
    k^T v is [d_head, d_head], cheaper when N > d_head). Exact: y in [0, ssa_bound(N, d_head)],
    computed in float64 while that bound is <= 2^53 (ValueError beyond). The scale and the attention
    LIF follow: fold_lif(1, 0, attn_scale, 0.5, 0, T).

    >>> s = np.array([[1, 0], [1, 1]], np.uint8)
    >>> ssa_int(s, s, s, num_heads=1)
    array([[2, 1],
           [3, 2]])
    """
    q, k, v = (np.asarray(s) for s in (q, k, v))
    num_tokens, dim = q.shape[-2:]
    if dim % num_heads:
        raise ValueError(f"ssa_int: {dim} channels do not split into {num_heads} heads")
    head_dim = dim // num_heads
    bound = ssa_bound(num_tokens, head_dim)
    if bound > FLOAT64_EXACT:
        raise ValueError(f"ssa_int: bound {bound} exceeds 2^53")

    def heads(s: np.ndarray) -> np.ndarray:  # [..., N, D] -> [..., heads, N, d_head], float64
        return s.astype(np.float64).reshape(*s.shape[:-1], num_heads, head_dim).swapaxes(-3, -2)

    y = heads(q) @ (heads(k).swapaxes(-2, -1) @ heads(v))
    return y.swapaxes(-3, -2).reshape(q.shape).astype(np.int64)


# ---- head: integer logits ------------------------------------------------------------------------


def requant(acc, consts: RequantConsts, channel_axis: int = -1) -> np.ndarray:
    """A BN output as a fixed-point value: acc int64 [..., C, ...] -> (acc * m_int + b_int) >> shift, int64
    (folding.fold_requant; the shift floors, b_int's 2^(shift - 1) makes it round half up).
    Width: the caller checks |acc| * max|m_int| + max|b_int| within int64 once per layer (ops/conv_bn).

    >>> from hqflow.numerics.folding import fold_requant
    >>> requant(np.array([[4, -3]]), fold_requant(np.float32([0.5, -2.0]), np.float32([0.25, 1.0]), 0.25, 4, 100))
    array([[12, 40]])
    """
    acc = np.asarray(acc, np.int64)
    shape = [1] * acc.ndim
    shape[channel_axis] = -1
    m_int, b_int = consts.m_int.reshape(shape), consts.b_int.reshape(shape)
    return (acc * m_int + b_int) >> consts.shift


def requant_range(x_max: int, weights: np.ndarray, consts: RequantConsts) -> tuple[int, int, int]:
    """(lo, hi, the largest |acc * m_int + b_int|) of `requant` for inputs in [-x_max, x_max] and weights
    w_eff [O, ...]: per output channel c, |acc_c| <= x_max * sum |w_c| (exact Python ints); [lo, hi] holds 0."""
    lo = hi = product = 0
    fan_in = np.abs(weights.reshape(weights.shape[0], -1)).astype(object).sum(axis=1)
    for acc_c, m_c, b_c in zip(fan_in.tolist(), consts.m_int.tolist(), consts.b_int.tolist()):
        reach = int(x_max) * int(acc_c) * abs(int(m_c))
        lo, hi = min(lo, (b_c - reach) >> consts.shift), max(hi, (b_c + reach) >> consts.shift)
        product = max(product, reach + abs(b_c))
    return lo, hi, product


def head_logits(acc_sum, bias_int, bias_frac_bits: int) -> np.ndarray:
    """Integer logits: acc_sum int64 [B, classes] -> (acc_sum << bias_frac_bits) + bias_int, int64 [B, classes].

    acc_sum is the head's acc summed over the T steps and N tokens (by linearity, linear_acc of the
    input summed over T and N); bias_int from fold_head. Width: bits_for of
    (acc_sum range << bias_frac_bits) + bias_int range; ValueError if that exceeds int64.

    >>> head_logits(np.array([[3, -1]]), np.array([128, -26]), 3)
    array([[152, -34]])
    """
    acc_sum, bias_int = np.asarray(acc_sum, np.int64), np.asarray(bias_int, np.int64)
    check_int64("head_logits", "|logits|", (abs_max(acc_sum) << bias_frac_bits) + abs_max(bias_int))
    return (acc_sum << bias_frac_bits) + bias_int


def argmax_first(logits) -> np.ndarray:
    """Predicted class: logits [..., classes] -> int64 [...]; ties go to the lowest index (as numpy and torch).

    >>> argmax_first(np.array([[1, 5, 5], [2, 0, 2]]))
    array([1, 0])
    """
    return np.argmax(np.asarray(logits), axis=-1)
