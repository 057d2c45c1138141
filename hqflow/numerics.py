"""The integer semantics of the deployed model (DESIGN.md, "Integer semantics: the contract").

Every integer op of the deployed model is defined here once, with its widths, its named rounding
and its overflow rule; the NumPy simulator calls these functions, the HLS kernels implement them,
and the torch fake quantizers (search/quantizers.py) reproduce them bit for bit. NumPy only.

Section 1, weight codes: how a float32 weight tensor maps to integer codes and back.

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

Why po2-2 has no zero level in the default candidates: 2-bit po2 with a zero level is the
ternary set {0, +-alpha}, the levels a symmetric 2-bit uniform quantizer reaches, so the five
default candidates (fp32, po2-2, po2z-4, uniform-2, uniform-4) would not be five distinct level sets.

The po2 rounding uses exact operations only (np.frexp splits |w| = m * 2^E, m in [0.5, 1), with
no rounding; the nearest power of two, ties up, is 2^(E - 1 + [m >= 0.75])), so the torch side
agrees bit for bit. Levels below float32's range (2^(alpha_exp + w_exp) < 2^-149: in practice
only po2-8 with alpha < 2^-22) dequantize to 0.

Differences from QKeras (Candidate.qkeras() names the nearest QKeras quantizer, never an equal):
- quantized_bits(b,0,0,alpha=1) is the grid k * 2^-(b-1), k in [-2^(b-1), 2^(b-1) - 1]: the
  uniform-b grid with scale = 2^-(b-1) and zero_point = 2^(b-1) fixed, where hqflow picks any
  float32 scale and zero_point per tensor (asymmetric); it rounds ties to even, hqflow rounds
  half up. Its alpha="auto" variants are symmetric and per output channel.
- quantized_po2(b) has no per-tensor alpha (its exponents are absolute, -2^(b-2) .. 2^(b-2) - 1:
  po2-b with alpha_exp = 2^(b-2) - 1), no zero level, and rounds in the log domain
  (2^round(log2|w|): |w| in [2^(k+0.5), 1.5 * 2^k) goes up to 2^(k+1) there, down to 2^k here);
  like po2-b it maps 0 to the smallest positive level.

Section 2, the integer ops of the deployed model (effective integer weights, exact accumulation,
the BN-folded integer LIF, spike max pooling, attention, head): the comment that opens it, after
section 1's code, states its number formats, its one rounding and its overflow rule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from hqflow.errors import UserError

SCHEMES = ("fp32", "uniform", "po2")
QUANT_BITS = range(2, 9)  # bit widths of the uniform and po2 schemes
FP32_BITS = 32


@dataclass(frozen=True)
class Candidate:
    """One weight number format a layer may take: the vocabulary of plan files, search and export.

    scheme "fp32" (bits 32), "uniform" or "po2" (bits 2..8); zero_level (po2 only) keeps one
    exponent code for 0. Names: "fp32", "uniform-4", "po2-2" (no zero level), "po2z-4" (zero level).
    """

    scheme: str
    bits: int
    zero_level: bool = False

    def __post_init__(self) -> None:
        if self.scheme not in SCHEMES:
            raise UserError(f"quantization scheme {self.scheme!r}: not one of {', '.join(SCHEMES)}")
        allowed = [FP32_BITS] if self.scheme == "fp32" else list(QUANT_BITS)
        if isinstance(self.bits, bool) or not isinstance(self.bits, int) or self.bits not in allowed:
            raise UserError(
                f"{self.scheme} bits {self.bits!r}: must be "
                + ("32" if self.scheme == "fp32" else "an integer in 2..8")
            )
        if self.zero_level and self.scheme != "po2":
            raise UserError(f"zero_level=True with scheme {self.scheme!r}: only po2 has a zero level")

    @property
    def name(self) -> str:
        if self.scheme == "fp32":
            return "fp32"
        return f"{self.scheme}{'z' if self.zero_level else ''}-{self.bits}"

    @classmethod
    def parse(cls, name: str) -> Candidate:
        """Inverse of `name`: "fp32", "uniform-<b>", "po2-<b>" or "po2z-<b>" with b in 2..8.

        >>> Candidate.parse("po2z-4")
        Candidate(scheme='po2', bits=4, zero_level=True)
        """
        if name == "fp32":
            return cls("fp32", FP32_BITS)
        scheme, _, bits = str(name).partition("-")
        if scheme in ("uniform", "po2", "po2z") and bits in [str(b) for b in QUANT_BITS]:
            return cls(scheme.rstrip("z"), int(bits), zero_level=scheme == "po2z")
        raise UserError(
            f"quantization candidate {name!r}: accepted forms are fp32, uniform-<bits>, "
            "po2-<bits> (no zero level) and po2z-<bits> (with a zero level), bits 2..8"
        )

    def levels(self, params: dict) -> np.ndarray:
        """All representable real values, sorted, float32 [n]; params as for fake_quantize.

        >>> Candidate.parse("po2-2").levels({"alpha_exp": 0})
        array([-1. , -0.5,  0.5,  1. ], dtype=float32)
        """
        if self.scheme == "uniform":
            w_int = np.arange(2**self.bits, dtype=np.uint8)
            return uniform_dequantize(w_int, params["scale"], params["zero_point"])
        if self.scheme == "po2":
            w_exp = po2_levels(self.bits, self.zero_level)
            w_sign = np.concatenate([-np.ones_like(w_exp), np.ones_like(w_exp)])
            values = po2_dequantize(w_sign, np.concatenate([w_exp, w_exp]), params["alpha_exp"])
            return np.unique(np.append(values, np.float32(0)) if self.zero_level else values)
        raise ValueError("fp32 has no finite level set")

    def qkeras(self) -> str:
        """The nearest QKeras quantizer (module docstring: nearest, not equal); fp32 -> "None".

        >>> [Candidate.parse(n).qkeras() for n in ("uniform-4", "po2-2", "po2z-4")]
        ['quantized_bits(4,0,0,alpha=1)', 'quantized_po2(2)', 'quantized_po2(4)  # QKeras has no zero level']
        """
        if self.scheme == "uniform":
            return f"quantized_bits({self.bits},0,0,alpha=1)"
        if self.scheme == "po2":
            return f"quantized_po2({self.bits})" + ("  # QKeras has no zero level" if self.zero_level else "")
        return "None"


DEFAULT_CANDIDATES = tuple(Candidate.parse(n) for n in ("fp32", "po2-2", "po2z-4", "uniform-2", "uniform-4"))


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


# =================================================================================================
# Section 2: the integer ops of the deployed model
#
# Number formats (integers are int64 unless said; a width is a two's-complement width, bits_for):
#   x             a layer's input, [B, C, H, W] or [..., C]: spikes (uint8 0/1) or, after
#                 residual adds, small non-negative integer counts
#   w_eff         effective integer weights; the real weight is w_eff * weight_scale (float > 0)
#   acc           the exact integer accumulation sum(x * w_eff), in units of weight_scale
#   v_int, h_int  the LIF membrane after / before the reset, in accumulator units (divided by the
#                 folded per-channel factor k_c) with frac_bits fractional bits
#   y             the attention product q @ k^T @ v of spikes, an integer in [0, N * d_head]
#   logits        integer logits: the real logits times N * T * 2^bias_frac_bits / weight_scale
#                 (plus the head bias rounding)
# Rounding: one named rounding, round_half_up, used only where constants are made (fp32 weights
# to fixed point, the LIF bias, the head bias); every run-time op below is exact.
# Overflow: none may happen. Widths come from bounds (acc_bound, membrane_bits, ssa_bound, bits_for)
# and a bound beyond int64 raises ValueError naming the op.
# Residual add: the plain integer sum x + y (no rounding); its width is bits_for(lo_x + lo_y, hi_x + hi_y).

FLOAT64_EXACT = 2**53  # every integer of magnitude <= 2^53 is a float64
INT64_MAX = 2**63 - 1
FIXED_POINT_BITS = 32  # the fp32 candidate deploys as 32-bit signed fixed point


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


def _check_int64(op: str, what: str, bound: int) -> None:
    if bound > INT64_MAX:
        raise ValueError(f"{op}: {what} bound {bound} (2^{math.log2(bound):.1f}) exceeds int64's 2^63 - 1")


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
    if shift.max(initial=0) > 62:
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
                    levels span at most 2^62; ValueError otherwise.)
        fp32        w_eff = round_half_up(w * 2^f) in [-(2^31 - 1), 2^31 - 1], weight_scale = 2^-f,
                    f = fixed_point_frac_bits(w): 32-bit fixed point, |w_eff * 2^-f - w| <= 2^-(f+1).

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

    >>> w_eff_from_codes(Candidate.parse("uniform-2"), {"w_int": np.uint8([0, 3])}, 1)
    array([-1,  2])
    """
    if candidate.scheme == "uniform":
        return codes["w_int"].astype(np.int64) - int(zero_point)
    if candidate.scheme == "po2":
        return codes["w_sign"].astype(np.int64) << codes["w_shift"].astype(np.int64)
    return codes["w_fx"].astype(np.int64)


# ---- accumulation: acc = sum(x * w_eff), exact ---------------------------------------------------


def acc_bound(x_max: int, w_eff) -> int:
    """Bound on |acc| and on every partial sum of it: x_max * max_o sum|w_eff[o]| (a Python int).

    w_eff [O, ...] (output channel first), x_max = max|x| of the input. Exact (Python ints).

    >>> acc_bound(3, np.array([[1, -2], [4, 0]]))
    12
    """
    w_abs = np.abs(np.asarray(w_eff, np.int64).reshape(len(w_eff), -1))
    if int(w_abs.max(initial=0)) * w_abs.shape[1] > INT64_MAX:  # an int64 row sum could overflow
        w_abs = w_abs.astype(object)
    return int(x_max) * int(w_abs.sum(axis=1).max(initial=0))


def _abs_max(x: np.ndarray) -> int:
    return max(int(x.max(initial=0)), -int(x.min(initial=0)))


FLOAT32_EXACT = 2**24  # float32 holds every integer up to this magnitude
CONV_CHUNK_ELEMENTS = 2**21  # conv2d_acc's im2col working set per chunk of images (elements)


def _exact_dtype(bound: int, op: str) -> type:
    """The exactness rule: the cheapest type that holds every product and partial sum.

    float32 BLAS when bound <= 2^24, float64 BLAS when bound <= 2^53 (every partial sum is then an
    integer the float type holds exactly, in any summation order), int64 when bound <= 2^63 - 1,
    else ValueError."""
    if bound <= FLOAT32_EXACT:
        return np.float32
    if bound <= FLOAT64_EXACT:
        return np.float64
    _check_int64(op, "|acc|", bound)
    return np.int64


def _exact_matmul(x: np.ndarray, w: np.ndarray, bound: int, op: str) -> np.ndarray:
    """x [..., K] @ w [K, M] -> int64 [..., M], exact, given a bound on every partial sum (see acc_bound)."""
    dtype = _exact_dtype(bound, op)
    rows = x.reshape(-1, x.shape[-1])  # one 2-D product: far faster than a batched matmul
    acc = np.matmul(rows.astype(dtype), w.astype(dtype))
    return acc.astype(np.int64).reshape(*x.shape[:-1], w.shape[1])


def conv2d_acc(x, w_eff, padding: int = 1) -> np.ndarray:
    """Exact integer convolution: x [B, C, H, W] (integers), w_eff [O, C, k, k] -> acc int64 [B, O, H', W'].

    Stride 1, zero padding, H' = H + 2 * padding - k + 1 (the same for W'); the cross-correlation of
    torch's conv2d. Computed as w_eff [O, C k k] @ patches [B, C k k, H' W'] (im2col, channels
    first, so the product lands in [B, O, H', W'] order with no transpose) in the type that the
    exactness rule (_exact_dtype) picks for acc_bound(max|x|, w_eff).
    acc width: bits_for(-acc_bound, acc_bound).

    >>> x = np.ones((1, 1, 2, 2), np.uint8)
    >>> conv2d_acc(x, np.full((1, 1, 3, 3), 2))[0, 0]
    array([[8, 8],
           [8, 8]])
    """
    x, w_eff = np.asarray(x), np.asarray(w_eff)
    out_c, in_c, kh, kw = w_eff.shape
    if x.ndim != 4 or x.shape[1] != in_c:
        raise ValueError(f"conv2d_acc: input shape {x.shape} does not match weights {w_eff.shape}")
    dtype = _exact_dtype(acc_bound(_abs_max(x), w_eff), "conv2d_acc")
    batch, _, h, w = x.shape
    h_out, w_out = h + 2 * padding - kh + 1, w + 2 * padding - kw + 1
    w_2d = w_eff.reshape(out_c, -1).astype(dtype)
    acc = np.empty((batch, out_c, h_out, w_out), np.int64)
    # images per chunk: small working arrays are reused by the allocator instead of page-faulted anew
    chunk = max(1, CONV_CHUNK_ELEMENTS // (in_c * kh * kw * h_out * w_out))
    for b0 in range(0, batch, chunk):
        xb = x[b0 : b0 + chunk]
        x_pad = np.zeros((len(xb), in_c, h + 2 * padding, w + 2 * padding), dtype)
        x_pad[:, :, padding : padding + h, padding : padding + w] = xb
        patches = np.empty((len(xb), in_c, kh, kw, h_out, w_out), dtype)  # im2col, channels first
        for i in range(kh):
            for j in range(kw):
                patches[:, :, i, j] = x_pad[:, :, i : i + h_out, j : j + w_out]
        product = np.matmul(w_2d, patches.reshape(len(xb), -1, h_out * w_out))
        acc[b0 : b0 + chunk] = product.reshape(len(xb), out_c, h_out, w_out)
    return acc


def linear_acc(x, w_eff) -> np.ndarray:
    """Exact integer linear layer: x [..., C_in] (integers), w_eff [C_out, C_in] -> acc int64 [..., C_out].

    acc = x @ w_eff^T. Exactness rule (by the bound B = acc_bound(max|x|, w_eff) on every partial
    sum): float64 BLAS when B <= 2^53, int64 when B <= 2^63 - 1, ValueError otherwise.
    acc width: bits_for(-B, B).

    >>> linear_acc(np.array([[1, 0, 2]]), np.array([[3, -1, 4], [0, 5, -2]]))
    array([[11, -4]])
    """
    x, w_eff = np.asarray(x), np.asarray(w_eff)
    if w_eff.ndim != 2 or x.shape[-1] != w_eff.shape[1]:
        raise ValueError(f"linear_acc: input shape {x.shape} does not match weights {w_eff.shape}")
    return _exact_matmul(x, w_eff.T, acc_bound(_abs_max(x), w_eff), "linear_acc")


# ---- BN-folded integer LIF -----------------------------------------------------------------------
#
# The model's LIF (tau 2, decay_input, hard reset to 0), per channel c with the BN folded:
#     X = a_c * (weight_scale * acc) + b_c = k_c * acc + b_c,   k_c = a_c * weight_scale,
#     H = V + (X - V) / 2 = (V + X) / 2;   S = [H >= theta];   V = H * (1 - S),   V = 0 at t = 1.
# Dividing by k_c (u = V / k_c, h = H / k_c):  h = (u + acc + b_c / k_c) / 2,  S = [sign(k_c) * h >= theta / |k_c|].
# Integers with F = frac_bits fractional bits, F = bias_frac_bits + T:
#     h_int = (v_int + (acc << F) + (bias_int << T)) >> 1,   bias_int = round_half_up(b_c / k_c * 2^bias_frac_bits)
# The shift is exact for the T steps after a reset: at step t the sum is a multiple of 2^(T - t + 1)
# (v_int is 0 or a multiple of 2^(T - t + 1), the other terms multiples of 2^T), so h_int = h * 2^F
# with no rounding, and S = [sign * h_int >= thr_int] with thr_int = ceil(theta * 2^F / |k_c|) is
# exact. The one rounding is bias_int (|error| <= 2^-(bias_frac_bits + 1) in accumulator units): the
# integer LIF is exactly the real LIF with b_c replaced by k_c * bias_int / 2^bias_frac_bits.


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
        _check_int64("fold_lif", f"channel {c} bias_int << T", abs(bias_int[-1]) << time_steps)
        _check_int64("fold_lif", f"channel {c} thr_int", thr_int[-1])
    return LifConsts(
        np.array(bias_int, np.int64), np.array(thr_int, np.int64), np.array(sign, np.int8), frac_bits, bias_frac_bits
    )


def _per_channel(values: np.ndarray, ndim: int, channel_axis: int) -> np.ndarray:
    """Reshape a per-channel vector [C] to broadcast along channel_axis of an ndim-array."""
    shape = [1] * ndim
    shape[channel_axis] = -1
    return values.reshape(shape)


def lif_step(v_int, acc, consts: LifConsts, channel_axis: int = -1) -> tuple[np.ndarray, np.ndarray]:
    """One LIF step: (v_int, acc) int64 [..., C, ...] -> (v_int_next int64, spikes uint8), same shape.

        h_int  = (v_int + (acc << F) + (bias_int << T)) >> 1     (floor shift; exact for t <= T)
        spikes = sign * h_int >= thr_int
        v_int' = 0 where spikes, else h_int                      (hard reset)
    F = consts.frac_bits, T = consts.time_steps; channel_axis is acc's channel axis ([B, C, H, W]: 1
    or -3; tokens [..., C]: -1). Start from v_int = 0; the halving is exact for the first T steps
    after that (see the section comment). Width: membrane_bits, which the caller checks once per
    layer: no overflow is possible within it.

    >>> c = fold_lif(np.ones(1), np.zeros(1), 1.0, 1.0, 0, 2)   # F = 2, thr_int = 4
    >>> v, s = lif_step(np.zeros((2, 1), np.int64), np.array([[1], [3]]), c)   # [B, C] = [2, 1]
    >>> v.ravel(), s.ravel()
    (array([2, 0]), array([0, 1], dtype=uint8))
    """
    acc = np.asarray(acc, np.int64)
    f, t = consts.frac_bits, consts.time_steps
    bias, sign, thr_int = (
        _per_channel(values, acc.ndim, channel_axis) for values in (consts.bias_int << t, consts.sign, consts.thr_int)
    )
    h_int = (np.asarray(v_int, np.int64) + (acc << f) + bias) >> 1
    spikes = sign * h_int >= thr_int
    return np.where(spikes, 0, h_int), spikes.astype(np.uint8)


def lif_run(acc_seq, consts: LifConsts, channel_axis: int = -1) -> np.ndarray:
    """lif_step over time from a reset membrane: acc_seq [T, ...] -> spikes uint8 [T, ...].

    acc_seq is an int64 array or any iterable of the T steps' accumulators (a generator keeps only
    one step in memory). channel_axis as in lif_step (an axis of one step; negative axes count
    from the end). ValueError for more than consts.time_steps steps (the halving would no longer
    be exact).

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
        v_int, s_t = lif_step(np.zeros(acc.shape, np.int64) if v_int is None else v_int, acc, consts, channel_axis)
        spikes.append(s_t)
    return np.stack(spikes)


def membrane_bits(acc_lo: int, acc_hi: int, consts: LifConsts) -> int:
    """Width of the LIF datapath for acc in [acc_lo, acc_hi]: holds v_int + input, v_int, +-h_int, thr_int.

    The input term I = (acc << F) + (bias_int << T) lies in [I_lo, I_hi]; by induction v_int and
    h_int stay in [min(0, I_lo), max(0, I_hi)] (h is the floored midpoint of v and I; the reset is
    0), so in accumulator units |h| never exceeds max|acc + bias|. The widest value is the sum
    v_int + I; its range also holds -h_int. ValueError if the width exceeds 64.

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


def ssa_bound(num_tokens: int, head_dim: int) -> int:
    """Largest value of ssa_int's y: N * d_head (q k^T entries are <= d_head, summed over N tokens).

    y width: bits_for(0, ssa_bound(N, d_head)).

    >>> ssa_bound(64, 16), bits_for(0, ssa_bound(64, 16))
    (1024, 12)
    """
    return num_tokens * head_dim


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
    _check_int64("fold_head", "|bias_int|", max(map(abs, bias_int), default=0))
    return np.array(bias_int, np.int64)


def head_logits(acc_sum, bias_int, bias_frac_bits: int) -> np.ndarray:
    """Integer logits: acc_sum int64 [B, classes] -> (acc_sum << bias_frac_bits) + bias_int, int64 [B, classes].

    acc_sum is the head's acc summed over the T steps and N tokens (by linearity, linear_acc of the
    input summed over T and N); bias_int from fold_head. Width: bits_for of
    (acc_sum range << bias_frac_bits) + bias_int range; ValueError if that exceeds int64.

    >>> head_logits(np.array([[3, -1]]), np.array([128, -26]), 3)
    array([[152, -34]])
    """
    acc_sum, bias_int = np.asarray(acc_sum, np.int64), np.asarray(bias_int, np.int64)
    _check_int64("head_logits", "|logits|", (_abs_max(acc_sum) << bias_frac_bits) + _abs_max(bias_int))
    return (acc_sum << bias_frac_bits) + bias_int


def argmax_first(logits) -> np.ndarray:
    """Predicted class: logits [..., classes] -> int64 [...]; ties go to the lowest index (as numpy and torch).

    >>> argmax_first(np.array([[1, 5, 5], [2, 0, 2]]))
    array([1, 0])
    """
    return np.argmax(np.asarray(logits), axis=-1)
