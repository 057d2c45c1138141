"""The number rules every integer op obeys: the one rounding, widths, bounds, the overflow rule.

Contract:
- Rounding: one named rounding, round_half_up (floor(x + 1/2), ties toward +inf), used only where
  constants are made (fp32 weights to fixed point, the LIF bias, the head bias); every run-time op
  is exact.
- Widths: a width is a signed two's-complement width, bits_for(lo, hi).
- Overflow: none may happen. Each op's width comes from a bound (acc_bound, membrane_bits,
  ssa_bound), and a bound beyond int64 raises ValueError naming the op (check_int64).
NumPy only; bounds are exact Python ints.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from hqflow.numerics.folding import LifConsts

__all__ = ["FLOAT64_EXACT", "INT64_MAX", "abs_max", "acc_bound", "bits_for", "check_int64", "membrane_bits",
           "round_half_up", "ssa_bound", "value_bits"]

FLOAT64_EXACT = 2**53  # every integer of magnitude <= 2^53 is a float64
INT64_MAX = 2**63 - 1


def round_half_up(x):
    """Round half up: floor(x + 1/2), ties toward +inf, computed exactly (no float rounding).

    x a Fraction -> int (exact rational arithmetic: the constants of fold_lif and fold_head).
    x float array-like [any shape] -> int64 array of x's shape, as floor(x) + [x - floor(x) >= 1/2]:
    both steps are exact in float64, where floor(x + 0.5) would round 0.49999999999999994 and the
    odd integers in [2^52, 2^53) up. ValueError if a result does not fit int64 (or x is not finite).

    >>> round_half_up(np.array([-1.5, -0.5, 0.49999999999999994, 0.5, 2.5]))
    array([-1,  0,  0,  1,  3])
    >>> round_half_up(Fraction(-5, 2))
    -2
    """
    if isinstance(x, Fraction):
        return math.floor(x + Fraction(1, 2))
    x = np.asarray(x, np.float64)
    if not np.all((x >= -(2.0**63)) & (x < 2.0**63)):
        raise ValueError("round_half_up: a value outside int64's range, or not finite")
    floor = np.floor(x)
    return (floor + (x - floor >= 0.5)).astype(np.int64)


def value_bits(value_max: int) -> int:
    """Bits of the unsigned values 0..value_max (at least 1): a stored value's width (a stream's values,
    an ap_uint's width).

    >>> value_bits(0), value_bits(1), value_bits(255), value_bits(256)
    (1, 1, 8, 9)
    """
    return max(1, int(value_max).bit_length())


def bits_for(lo: int, hi: int) -> int:
    """Width n of the smallest signed two's-complement integer holding [lo, hi] (n >= 1).

    -2^(n-1) <= lo and hi <= 2^(n-1) - 1; exact on Python ints of any size.

    >>> bits_for(0, 1), bits_for(-128, 127), bits_for(-129, 0), bits_for(0, 0)
    (2, 8, 9, 1)
    """
    lo, hi = int(lo), int(hi)
    if lo > hi:
        raise ValueError(f"bits_for: empty range [{lo}, {hi}]")
    return 1 + max((v if v >= 0 else ~v).bit_length() for v in (lo, hi))


def check_int64(op: str, what: str, bound: int) -> None:
    """The overflow rule: ValueError naming op and what when the bound (a Python int) exceeds 2^63 - 1."""
    if bound > INT64_MAX:
        raise ValueError(f"{op}: {what} bound {bound} (2^{math.log2(bound):.1f}) exceeds int64's 2^63 - 1")


def abs_max(x: np.ndarray) -> int:
    """max|x| of an integer array [any shape] as a Python int (0 when empty).

    >>> abs_max(np.array([3, -7, 5]))
    7
    """
    return max(int(x.max(initial=0)), -int(x.min(initial=0)))


def acc_bound(x_max: int, w_eff) -> int:
    """Bound on |acc| and on every partial sum of it: x_max * max_o sum|w_eff[o]| (a Python int).

    w_eff [O, ...] (output channel first), x_max = max|x| of the input. Exact (Python ints).
    acc width: bits_for(-acc_bound, acc_bound).

    >>> acc_bound(3, np.array([[1, -2], [4, 0]]))
    12
    """
    w_abs = np.abs(np.asarray(w_eff, np.int64).reshape(len(w_eff), -1))
    if int(w_abs.max(initial=0)) * w_abs.shape[1] > INT64_MAX:  # an int64 row sum could overflow
        w_abs = w_abs.astype(object)
    return int(x_max) * int(w_abs.sum(axis=1).max(initial=0))


def ssa_bound(num_tokens: int, head_dim: int) -> int:
    """Largest value of ssa_int's y: N * d_head (q k^T entries are <= d_head, summed over N tokens).

    y width: bits_for(0, ssa_bound(N, d_head)).

    >>> ssa_bound(64, 16), bits_for(0, ssa_bound(64, 16))
    (1024, 12)
    """
    return num_tokens * head_dim


def membrane_bits(acc_lo: int, acc_hi: int, consts: LifConsts) -> int:
    """Width of the LIF datapath for acc in [acc_lo, acc_hi]: holds v_int + input, v_int, +-h_int, thr_int.

    The input term I = (acc << F) + (bias_int << T) lies in [I_lo, I_hi]; by induction v_int and
    h_int stay in [min(0, I_lo), max(0, I_hi)] (h is the floored midpoint of v and I; the reset is
    0), so in accumulator units |h| never exceeds max|acc + bias|. The widest value is the sum
    v_int + I; its range also holds -h_int. ValueError if the width exceeds 64.

    >>> from hqflow.numerics import fold_lif
    >>> membrane_bits(-3, 3, fold_lif(np.ones(1), np.zeros(1), 1.0, 1.0, 0, 4))   # sum in [-96, 96]
    8
    """
    f, t = consts.frac_bits, consts.time_steps
    in_lo = (int(acc_lo) << f) + (int(consts.bias_int.min()) << t)
    in_hi = (int(acc_hi) << f) + (int(consts.bias_int.max()) << t)
    lo = min(min(0, in_lo) + in_lo, int(consts.thr_int.min()))
    hi = max(max(0, in_hi) + in_hi, int(consts.thr_int.max()))
    width = bits_for(lo, hi)
    if width > 64:
        raise ValueError(f"lif_step: the membrane needs {width} bits for acc in [{acc_lo}, {acc_hi}], more than int64")
    return width
