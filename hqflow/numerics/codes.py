"""Weight codes: how a float32 weight tensor maps to integer codes, to effective integer weights, and back.

    uniform-b   w_int in [0, 2^b - 1] (uint8), per tensor scale (float32 > 0) and zero_point
                (int in [0, 2^b - 1]):
                    w_int = clip(floor(w / scale + 0.5) + zero_point, 0, 2^b - 1)
                    w     = (w_int - zero_point) * scale
                rounding "round half up" (floor(x + 0.5), ties toward +inf), all in float32;
                saturating. Asymmetric: all 2^b codes are levels and 0 is one of them exactly.
                One input departs from round half up: x = w / scale = 0.49999997 (the float32
                below 1/2) goes up, as x + 0.5 rounds to 1.0 in float32; the torch side agrees.
    po2-b       sign + (b-1)-bit exponent code, per tensor alpha = 2^alpha_exp (int alpha_exp):
    po2z-b          w = w_sign * 2^(alpha_exp + w_exp),  w_sign in {-1, 0, +1} (int8),
                    w_exp in {0, -1, ..., -kmax} (int8, a right shift by -w_exp).
                Without a zero level (po2-b): kmax = 2^(b-1) - 1, levels
                    {+-2^0, +-2^-1, ..., +-2^-kmax} * alpha                 (2^b levels);
                with a zero level (po2z-b, one exponent code kept for 0): kmax = 2^(b-1) - 2,
                    {0, +-2^0, ..., +-2^-kmax} * alpha                      (2^b - 1 levels).
                Rounding "round half up in magnitude": the nearest level in the linear domain,
                ties to the larger magnitude. With x = |w| * 2^-alpha_exp, level 2^-k is chosen
                when 0.75 * 2^-k <= x < 0.75 * 2^-(k-1) (0.75 * 2^-k is the midpoint between
                2^-k and 2^-(k+1)); x >= 0.75 saturates to 2^0; below 0.75 * 2^-(kmax-1) the
                smallest level 2^-kmax is kept, except that with a zero level x < 0.5 * 2^-kmax
                (the midpoint to 0) gives 0. Without a zero level, w = 0 maps to +2^-kmax.
    fp32        deploys as 32-bit signed fixed point (FIXED_POINT_BITS): w_fx = round_half_up(w * 2^f).

The po2 rounding uses exact operations only (np.frexp splits |w| = m * 2^E, m in [0.5, 1), with
no rounding; the nearest power of two, ties up, is 2^(E - 1 + [m >= 0.75])), so the torch side
agrees bit for bit. Levels below float32's range (2^(alpha_exp + w_exp) < 2^-149: in practice
only po2-8 with alpha < 2^-22) dequantize to 0.

Effective integer weights (effective_weight, weight_codes, w_eff_from_codes): the real weight is
w_eff * weight_scale, w_eff int64; the DeployGraph stores the code tables they come from. The
candidate arguments are hqflow.numerics.Candidate (formats.py); this module reads only their
scheme, bits, zero_level and name. The ROM word layout of the hardware is in rom.py.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from hqflow.numerics.bounds import round_half_up

if TYPE_CHECKING:
    from hqflow.numerics.formats import Candidate

__all__ = ["FIXED_POINT_BITS", "MAX_PO2_SPAN", "effective_weight", "fake_quantize", "fixed_point_frac_bits",
    "po2_dequantize", "po2_levels", "po2_max_shift", "po2_quantize", "pow2", "uniform_dequantize",
    "uniform_params", "uniform_quantize", "w_eff_from_codes", "weight_codes"]

FIXED_POINT_BITS = 32  # the fp32 candidate deploys as 32-bit signed fixed point
MAX_PO2_SPAN = 62  # the largest left shift of a po2 w_eff (w_sign << shift) that int64 holds


# ---- uniform: w = (w_int - zero_point) * scale ----------------------------------------------


def uniform_params(lo: float, hi: float, bits: int) -> tuple[float, int]:
    """(scale, zero_point) that map the real range [lo, hi] onto the codes 0 .. 2^b - 1.

    The range is first extended to contain 0 (lo <= 0 <= hi), so that the code zero_point is
    exactly 0. In float32:  scale = (hi - lo) / (2^b - 1),
    zero_point = clip(floor(-lo / scale + 0.5), 0, 2^b - 1). A range narrower than
    (2^b - 1) * 2^-126 (the all-zero tensor, say) gets scale 1, so scale stays a normal float > 0.

    >>> uniform_params(-1.0, 2.0, 2)
    (1.0, 1)
    >>> uniform_params(0.5, 1.5, 2)    # extended to [0, 1.5]
    (0.5, 0)
    """
    w_max = np.float32(2**bits - 1)
    lo32 = np.minimum(np.float32(lo), np.float32(0))
    hi32 = np.maximum(np.float32(hi), np.float32(0))
    scale = (hi32 - lo32) / w_max
    if not scale >= np.finfo(np.float32).tiny:
        scale = np.float32(1)
    zero_point = np.clip(np.floor(-lo32 / scale + np.float32(0.5)), np.float32(0), w_max)
    return float(scale), int(zero_point)


def uniform_quantize(w, bits: int, scale: float, zero_point: int) -> np.ndarray:
    """Codes of float32 weights w [any shape] -> w_int (uint8, same shape), round half up, saturating.

    w_int = clip(floor(w / scale + 0.5) + zero_point, 0, 2^b - 1), every op in float32.

    >>> uniform_quantize(np.float32([-1.2, -0.5, 0.4, 0.5, 3.0]), 2, 1.0, 1)
    array([0, 1, 1, 2, 3], dtype=uint8)
    """
    w_max = np.float32(2**bits - 1)
    x = np.floor(np.asarray(w, np.float32) / np.float32(scale) + np.float32(0.5)) + np.float32(zero_point)
    return np.clip(x, np.float32(0), w_max).astype(np.uint8)


def uniform_dequantize(w_int, scale: float, zero_point: int) -> np.ndarray:
    """Real values of codes w_int [any shape] -> float32: (w_int - zero_point) * scale.

    >>> uniform_dequantize(np.uint8([0, 1, 2, 3]), 1.0, 1)
    array([-1.,  0.,  1.,  2.], dtype=float32)
    """
    return (np.asarray(w_int).astype(np.float32) - np.float32(zero_point)) * np.float32(scale)


# ---- power of two: w = w_sign * 2^(alpha_exp + w_exp) ----------------------------------------


def po2_max_shift(bits: int, zero_level: bool) -> int:
    """kmax, the largest right shift -w_exp: 2^(b-1) - 1, or 2^(b-1) - 2 with a zero level."""
    return 2 ** (bits - 1) - 1 - int(zero_level)


def po2_levels(bits: int, zero_level: bool) -> np.ndarray:
    """The exponent codes w_exp of the nonzero magnitudes, int8 [kmax + 1]: 0, -1, ..., -kmax.

    The zero level, where there is one, is the code (w_sign, w_exp) = (0, 0).

    >>> po2_levels(3, zero_level=False), po2_levels(3, zero_level=True)
    (array([ 0, -1, -2, -3], dtype=int8), array([ 0, -1, -2], dtype=int8))
    """
    return -np.arange(po2_max_shift(bits, zero_level) + 1, dtype=np.int8)


def po2_quantize(w, bits: int, alpha_exp: int, zero_level: bool) -> tuple[np.ndarray, np.ndarray]:
    """Codes of float32 weights w [any shape] -> (w_sign, w_exp), both int8 of w's shape.

    Nearest level in the linear domain, "round half up in magnitude", saturating at 2^alpha_exp
    and (without a zero level) at 2^(alpha_exp - kmax); the thresholds are in the module
    docstring; +-inf saturates, NaN is undefined. Computed exactly: with |w| = m * 2^E (np.frexp,
    m in [0.5, 1)) the nearest power of two is 2^n, n = E - 1 + [m >= 0.75], and
        w_exp = clip(n, alpha_exp - kmax, alpha_exp) - alpha_exp;
    with a zero level, w_sign = 0 where |w| < 2^(alpha_exp - kmax - 1) (i.e. E <= alpha_exp - kmax - 1).

    >>> po2_quantize(np.float32([0.8, -0.74, 0.3, 0.0, 2.0]), 3, 0, zero_level=False)
    (array([ 1, -1,  1,  1,  1], dtype=int8), array([ 0, -1, -2, -3,  0], dtype=int8))
    >>> po2_quantize(np.float32([0.3, 0.0, -0.1, -0.125]), 3, 0, zero_level=True)
    (array([ 1,  0,  0, -1], dtype=int8), array([-2,  0,  0, -2], dtype=int8))
    """
    w = np.asarray(w, np.float32)
    kmax = po2_max_shift(bits, zero_level)
    f32_max = np.finfo(np.float32).max
    m, e = np.frexp(np.clip(w, -f32_max, f32_max))  # +-inf saturates like any large value
    n = np.clip(e - 1 + (np.abs(m) >= np.float32(0.75)), alpha_exp - kmax, alpha_exp)
    n = np.where(w == 0, alpha_exp - kmax, n)
    w_sign = np.where(w < 0, -1, 1)
    if zero_level:
        w_sign = np.where((w == 0) | (e <= alpha_exp - kmax - 1), 0, w_sign)
        n = np.where(w_sign == 0, alpha_exp, n)
    return w_sign.astype(np.int8), (n - alpha_exp).astype(np.int8)


def pow2(e) -> np.ndarray:
    """2^e as float32 for integer e (any shape), exact for e >= -149; below that 0."""
    return np.ldexp(np.float32(1), np.asarray(e, np.int32))


def po2_dequantize(w_sign, w_exp, alpha_exp: int) -> np.ndarray:
    """Real values of codes (w_sign, w_exp) [any shape] -> float32: w_sign * 2^(alpha_exp + w_exp).

    >>> po2_dequantize(np.int8([1, -1, 0]), np.int8([0, -2, 0]), -1)
    array([ 0.5  , -0.125,  0.   ], dtype=float32)
    """
    return np.asarray(w_sign).astype(np.float32) * pow2(alpha_exp + np.asarray(w_exp, np.int32))


def fake_quantize(w, candidate: Candidate, params: dict) -> np.ndarray:
    """Quantize then dequantize float32 w [any shape] -> float32 w' of the same shape.

    params: {} for fp32 (w' = w), {"scale": float, "zero_point": int} for uniform,
    {"alpha_exp": int} for po2 (as WeightQuantizer.params returns them).

    >>> from hqflow.numerics import Candidate
    >>> fake_quantize(np.float32([0.3, -0.9]), Candidate.parse("po2-2"), {"alpha_exp": 0})
    array([ 0.5, -1. ], dtype=float32)
    """
    w = np.asarray(w, np.float32)
    if candidate.scheme == "uniform":
        w_int = uniform_quantize(w, candidate.bits, params["scale"], params["zero_point"])
        return uniform_dequantize(w_int, params["scale"], params["zero_point"])
    if candidate.scheme == "po2":
        w_sign, w_exp = po2_quantize(w, candidate.bits, params["alpha_exp"], candidate.zero_level)
        return po2_dequantize(w_sign, w_exp, params["alpha_exp"])
    return w.copy()


# ---- effective integer weights: real weight = w_eff * weight_scale -----------------------------


def fixed_point_frac_bits(w) -> int:
    """Fractional bits f of the fp32 candidate's 32-bit fixed point for float32 weights w [any shape].

    The largest f with round_half_up(max|w| * 2^f) <= 2^31 - 1. With max|w| = m * 2^E (np.frexp,
    m in [0.5, 1)) that is f = 31 - E: m * 2^31 < 2^31 - 1/2 since a float32 m has 24 significant
    bits, and m * 2^32 >= 2^31. An all-zero w gets f = 0. ValueError if w is not finite.

    >>> fixed_point_frac_bits(np.float32([0.3, -0.9])), fixed_point_frac_bits(np.float32([1.0]))
    (31, 30)
    """
    w = np.asarray(w, np.float32)
    if not np.all(np.isfinite(w)):
        raise ValueError("fixed_point_frac_bits: weights must be finite")
    w_max = float(np.max(np.abs(w), initial=0))
    return FIXED_POINT_BITS - 1 - math.frexp(w_max)[1] if w_max > 0 else 0


def _po2_shifts(w, candidate: Candidate, params: dict) -> tuple[np.ndarray, np.ndarray, float]:
    """po2(z)-b weights as (w_sign int8, shift int64 = w_exp - w_exp_min, weight_scale = 2^(alpha_exp + w_exp_min))."""
    alpha_exp = int(params["alpha_exp"])
    w_sign, w_exp = po2_quantize(w, candidate.bits, alpha_exp, candidate.zero_level)
    w_exp = w_exp.astype(np.int64)
    w_exp_min = int(np.min(w_exp[w_sign != 0], initial=0))
    shift = np.where(w_sign != 0, w_exp - w_exp_min, 0)
    if shift.max(initial=0) > MAX_PO2_SPAN:
        raise ValueError(f"effective_weight: {candidate.name} levels in use span 2^{shift.max()}, more than int64 holds")
    return w_sign, shift, math.ldexp(1.0, alpha_exp + w_exp_min)


def effective_weight(w, candidate: Candidate, params: dict) -> tuple[np.ndarray, float]:
    """Integer weights of float32 w [any shape] under a candidate -> (w_eff int64 [w's shape], weight_scale).

    params as fake_quantize takes them (WeightQuantizer.params): the real weight is exactly
    w_eff * weight_scale (float64), and fake_quantize(w, candidate, params) is that value rounded
    once to float32 (bitwise equal; for po2 no rounding happens, except below float32's range).
        uniform-b   w_eff = w_int - zero_point in [-(2^b - 1), 2^b - 1], weight_scale = scale
                    (a multiplier in hardware).
        po2(z)-b    w_eff = w_sign * 2^(w_exp - w_exp_min), weight_scale = 2^(alpha_exp + w_exp_min),
                    w_exp_min the smallest exponent code of a nonzero weight (0 if none): each product
                    is a left shift of the input by w_exp - w_exp_min in [0, kmax]. (This is
                    w_sign * 2^(kmax + w_exp) with the factor 2^(kmax + w_exp_min) that every weight
                    shares moved into weight_scale, so po2-7 and po2-8 fit int64 when their used
                    levels span at most 2^62 (MAX_PO2_SPAN); ValueError otherwise.)
        fp32        w_eff = round_half_up(w * 2^f) in [-(2^31 - 1), 2^31 - 1], weight_scale = 2^-f,
                    f = fixed_point_frac_bits(w): 32-bit fixed point, |w_eff * 2^-f - w| <= 2^-(f+1).

    >>> from hqflow.numerics import Candidate
    >>> uniform_2 = Candidate.parse("uniform-2")
    >>> effective_weight(np.float32([-1.2, 0.4, 0.5, 3.0]), uniform_2, {"scale": 1.0, "zero_point": 1})
    (array([-1,  0,  1,  2]), 1.0)
    >>> effective_weight(np.float32([0.8, -0.3, 0.1]), Candidate.parse("po2-3"), {"alpha_exp": 0})
    (array([ 8, -2,  1]), 0.125)
    >>> effective_weight(np.float32([0.75, -0.25]), Candidate.parse("fp32"), {})
    (array([1610612736, -536870912]), 4.656612873077393e-10)
    """
    w = np.asarray(w, np.float32)
    if candidate.scheme == "uniform":
        w_int = uniform_quantize(w, candidate.bits, params["scale"], params["zero_point"])
        return w_int.astype(np.int64) - int(params["zero_point"]), float(np.float32(params["scale"]))
    if candidate.scheme == "po2":
        w_sign, shift, weight_scale = _po2_shifts(w, candidate, params)
        return w_sign.astype(np.int64) << shift, weight_scale
    frac_bits = fixed_point_frac_bits(w)
    return round_half_up(np.ldexp(w.astype(np.float64), frac_bits)), math.ldexp(1.0, -frac_bits)


def weight_codes(w, candidate: Candidate, params: dict) -> dict[str, np.ndarray]:
    """The code tables a DeployGraph stores for float32 weights w under a candidate.

        uniform-b   {"w_int": uint8}                       (zero_point is an attribute)
        po2(z)-b    {"w_sign": int8, "w_shift": uint8}     w_eff = w_sign << w_shift
        fp32        {"w_fx": int64}                        32-bit fixed point
    w_eff_from_codes(candidate, weight_codes(...), zero_point) == effective_weight(...)[0].

    >>> from hqflow.numerics import Candidate
    >>> weight_codes(np.float32([0.8, -0.3, 0.1]), Candidate.parse("po2-3"), {"alpha_exp": 0})
    {'w_sign': array([ 1, -1,  1], dtype=int8), 'w_shift': array([3, 1, 0], dtype=uint8)}
    """
    if candidate.scheme == "uniform":
        return {"w_int": uniform_quantize(w, candidate.bits, params["scale"], params["zero_point"])}
    if candidate.scheme == "po2":
        w_sign, shift, _ = _po2_shifts(w, candidate, params)
        return {"w_sign": w_sign.astype(np.int8), "w_shift": shift.astype(np.uint8)}
    return {"w_fx": effective_weight(w, candidate, params)[0]}


def w_eff_from_codes(candidate: Candidate, codes: dict[str, np.ndarray], zero_point: int = 0) -> np.ndarray:
    """Integer weights int64 from a DeployGraph's code tables (see weight_codes).

    >>> from hqflow.numerics import Candidate
    >>> w_eff_from_codes(Candidate.parse("uniform-2"), {"w_int": np.uint8([0, 3])}, 1)
    array([-1,  2])
    """
    if candidate.scheme == "uniform":
        return codes["w_int"].astype(np.int64) - int(zero_point)
    if candidate.scheme == "po2":
        return codes["w_sign"].astype(np.int64) << codes["w_shift"].astype(np.int64)
    return codes["w_fx"].astype(np.int64)
