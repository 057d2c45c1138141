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
"""

from __future__ import annotations

from dataclasses import dataclass

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
