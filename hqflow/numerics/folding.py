"""Export-time folding: BN and the weight scale into the integer LIF constants, the head bias into integers.

The model's LIF (tau 2, decay_input, hard reset to 0), per channel c with the BN folded:
    X = a_c * (weight_scale * acc) + b_c = k_c * acc + b_c,   k_c = a_c * weight_scale,
    H = V + (X - V) / 2 = (V + X) / 2;   S = [H >= theta];   V = H * (1 - S),   V = 0 at t = 1.
Dividing by k_c (u = V / k_c, h = H / k_c):  h = (u + acc + b_c / k_c) / 2,  S = [sign(k_c) * h >= theta / |k_c|].
Integers with F = frac_bits fractional bits, F = bias_frac_bits + T:
    h_int = (v_int + (acc << F) + (bias_int << T)) >> 1,   bias_int = round_half_up(b_c / k_c * 2^bias_frac_bits)
The shift is exact for the T steps after a reset: at step t the sum is a multiple of 2^(T - t + 1)
(v_int is 0 or a multiple of 2^(T - t + 1), the other terms multiples of 2^T), so h_int = h * 2^F
with no rounding, and S = [sign * h_int >= thr_int] with thr_int = ceil(theta * 2^F / |k_c|) is
exact. The one rounding is bias_int (|error| <= 2^-(bias_frac_bits + 1) in accumulator units): the
integer LIF is exactly the real LIF with b_c replaced by k_c * bias_int / 2^bias_frac_bits.
The run-time ops that use these constants (lif_charge, lif_fire, lif_reset, head_logits) are in ops.py.

Every constant is computed in exact rational arithmetic (fractions.Fraction) from the given floats;
a constant beyond int64 is a ValueError (bounds.check_int64).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from hqflow.numerics.bounds import INT64_MAX, check_int64, round_half_up

__all__ = ["MULT_BITS", "LifConsts", "RequantConsts", "fold_head", "fold_lif", "fold_requant"]

MULT_BITS = 32  # a requantization multiplier m_int is a signed integer of this width


@dataclass(frozen=True, eq=False)  # eq=False: arrays have no single truth value
class LifConsts:
    """Integer constants of one BN-folded LIF layer (fold_lif makes them), per channel c of C.

    bias_int        int64 [C]  round_half_up(b_c / k_c * 2^bias_frac_bits)
    thr_int         int64 [C]  ceil(theta * 2^frac_bits / |k_c|)
    sign            int8 [C]   sign(k_c): +1, -1, or 0 for a dead channel (k_c = 0, see fold_lif)
    frac_bits       F = bias_frac_bits + time_steps, the fractional bits of v_int and h_int
    bias_frac_bits  fractional bits of bias_int
    """

    bias_int: np.ndarray
    thr_int: np.ndarray
    sign: np.ndarray
    frac_bits: int
    bias_frac_bits: int

    @property
    def time_steps(self) -> int:
        """T, the number of steps after a reset for which the membrane stays exact."""
        return self.frac_bits - self.bias_frac_bits


def fold_lif(a, b, weight_scale: float, theta: float, bias_frac_bits: int, time_steps: int) -> LifConsts:
    """Fold BN (a, b: float [C]) and the weight scale into the integer constants of an LIF layer.

    a_c = gamma_c / sqrt(var_c + eps), b_c = beta_c - a_c * mean_c; k_c = a_c * weight_scale may be
    negative. Every constant is computed in exact rational arithmetic from the given floats (per
    channel, at export time); the one rounding is round_half_up of the bias. F = bias_frac_bits + T.
    A dead channel (a_c = 0) sees the constant input b_c: it gets sign 0, bias_int 0 and fires at
    every step when b_c >= 2 * theta (H = b_c / 2 >= theta at every step after a reset), never
    otherwise (thr_int 0 or 1). That is exact except for theta < b_c < 2 * theta, where the real
    neuron fires every p-th step (p >= 2) and this one never. ValueError if a constant, or
    bias_int << T, exceeds int64.

    The attention LIF (no BN, X = attn_scale * y, threshold 0.5) is fold_lif(1, 0, attn_scale, 0.5,
    0, T): its threshold is an exact integer, 0.5 / 0.25 = 2 -> 2 * 2^T.

    >>> c = fold_lif(np.float32([0.5, -2.0]), np.float32([0.3, 1.0]), 0.25, 1.0, 2, 4)
    >>> c.bias_int, c.thr_int, c.sign, c.frac_bits
    (array([10, -8]), array([512, 128]), array([ 1, -1], dtype=int8), 6)
    >>> fold_lif(np.ones(2), np.zeros(2), 0.25, 0.5, 0, 4).thr_int
    array([32, 32])
    """
    a = np.atleast_1d(np.asarray(a, np.float64))
    b = np.broadcast_to(np.asarray(b, np.float64), a.shape)
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("fold_lif: BN factors a and b must be finite")
    if not (math.isfinite(weight_scale) and weight_scale > 0 and math.isfinite(theta) and theta > 0):
        raise ValueError(f"fold_lif: weight_scale {weight_scale} and theta {theta} must be finite and > 0")
    if bias_frac_bits < 0 or time_steps < 1:
        raise ValueError(f"fold_lif: bias_frac_bits {bias_frac_bits} < 0 or time_steps {time_steps} < 1")
    frac_bits = bias_frac_bits + time_steps
    theta_q, scale_q = Fraction(float(theta)), Fraction(float(weight_scale))
    bias_int, thr_int, sign = [], [], []
    for c, (a_c, b_c) in enumerate(zip(a.tolist(), b.tolist())):
        k_c = Fraction(a_c) * scale_q
        if k_c == 0:
            bias_int.append(0)
            thr_int.append(0 if b_c >= 2 * float(theta) else 1)
            sign.append(0)
            continue
        bias_int.append(round_half_up(Fraction(b_c) / k_c * 2**bias_frac_bits))
        thr_int.append(math.ceil(theta_q * 2**frac_bits / abs(k_c)))
        sign.append(1 if k_c > 0 else -1)
        check_int64("fold_lif", f"channel {c} bias_int << T", abs(bias_int[-1]) << time_steps)
        check_int64("fold_lif", f"channel {c} thr_int", thr_int[-1])
    return LifConsts(
        np.array(bias_int, np.int64), np.array(thr_int, np.int64), np.array(sign, np.int8), frac_bits, bias_frac_bits
    )


def fold_head(bias, weight_scale: float, num_tokens: int, time_steps: int, bias_frac_bits: int) -> np.ndarray:
    """The head's integer bias: bias float [classes] -> bias_int int64 [classes].

    Real logits = weight_scale * acc_sum / (N * T) + bias; times N * T * 2^bias_frac_bits / weight_scale
    (> 0, so argmax is kept) they become (acc_sum << bias_frac_bits) + bias_int with
        bias_int = round_half_up(bias * N * T / weight_scale * 2^bias_frac_bits)
    in exact rational arithmetic (the one rounding). ValueError if a bias_int exceeds int64.

    >>> fold_head(np.float32([0.5, -0.1]), 0.25, 4, 2, 3)
    array([128, -26])
    """
    if not (math.isfinite(weight_scale) and weight_scale > 0):
        raise ValueError(f"fold_head: weight_scale {weight_scale} must be finite and > 0")
    factor = Fraction(num_tokens * time_steps * 2**bias_frac_bits) / Fraction(float(weight_scale))
    bias_int = [round_half_up(Fraction(b_c) * factor) for b_c in np.asarray(bias, np.float64).tolist()]
    check_int64("fold_head", "|bias_int|", max(map(abs, bias_int), default=0))
    return np.array(bias_int, np.int64)


@dataclass(frozen=True, eq=False)
class RequantConsts:
    """Integer constants of a layer whose BN output is a fixed-point value (no LIF: the Spike-driven
    Transformer's membrane shortcut), per channel c of C (fold_requant makes them).

    m_int           int64 [C]  round_half_up(k_c * 2^(frac_bits + shift)), |m_int| < 2^(MULT_BITS - 1)
    b_int           int64 [C]  round_half_up(b_c * 2^(frac_bits + shift)) + 2^(shift - 1) (0 for shift 0)
    shift           S >= 0, one per layer
    frac_bits       R, the fractional bits of the output: y_int = y * 2^R
    """

    m_int: np.ndarray
    b_int: np.ndarray
    shift: int
    frac_bits: int


def fold_requant(a, b, weight_scale: float, frac_bits: int, acc_max: int) -> RequantConsts:
    """Fold BN (a, b: float [C]) and the weight scale into a requantization of the accumulator to a
    fixed-point value with `frac_bits` (R) fractional bits:

        y = k_c * acc + b_c  (k_c = a_c * weight_scale)   ->   y_int = (acc * m_int + b_int) >> S ~ y * 2^R

    the shift's floor with the 2^(S - 1) in b_int rounds half up. S is the largest that keeps every
    |m_int| below 2^(MULT_BITS - 1) (the multiplier keeps up to MULT_BITS - 1 significant bits) and every
    acc_max * |m_int| + |b_int| within int64 (|acc| <= acc_max). Three roundings (m_int, b_int, the
    shift), so |y_int - y * 2^R| <= 1/2 + (|acc| + 1) / 2^(S + 1) (in output units). Exact rational
    arithmetic; ValueError for non-finite inputs or when even S = 0 leaves int64.

    >>> c = fold_requant(np.float32([0.5, -2.0]), np.float32([0.25, 1.0]), 0.25, 4, 100)
    >>> c.m_int, c.b_int, c.shift
    (array([  268435456, -1073741824]), array([ 603979776, 2214592512]), 27)
    """
    a = np.atleast_1d(np.asarray(a, np.float64))
    b = np.broadcast_to(np.asarray(b, np.float64), a.shape)
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("fold_requant: BN factors a and b must be finite")
    if not (math.isfinite(weight_scale) and weight_scale > 0):
        raise ValueError(f"fold_requant: weight_scale {weight_scale} must be finite and > 0")
    if frac_bits < 0:
        raise ValueError(f"fold_requant: frac_bits {frac_bits} < 0")
    k = [Fraction(a_c) * Fraction(float(weight_scale)) * 2**frac_bits for a_c in a.tolist()]
    bias = [Fraction(b_c) * 2**frac_bits for b_c in b.tolist()]

    def consts(shift: int) -> tuple[list[int], list[int]]:
        offset = 2 ** (shift - 1) if shift else 0
        return ([round_half_up(k_c * 2**shift) for k_c in k],
                [round_half_up(b_c * 2**shift) + offset for b_c in bias])

    def fits(shift: int) -> bool:
        m_int, b_int = consts(shift)
        m_max, b_max = max(map(abs, m_int), default=0), max(map(abs, b_int), default=0)
        return m_max < 2 ** (MULT_BITS - 1) and acc_max * m_max + b_max <= INT64_MAX

    if not fits(0):
        raise ValueError(f"fold_requant: acc * m_int + b_int leaves int64 even unshifted (|acc| <= {acc_max})")
    shift = 0
    while shift < 62 and fits(shift + 1):
        shift += 1
    m_int, b_int = consts(shift)
    return RequantConsts(np.array(m_int, np.int64), np.array(b_int, np.int64), shift, frac_bits)
