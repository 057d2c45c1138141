"""The weight number formats a layer may take (Candidate): the vocabulary of plan files, search and export.

    fp32        32-bit float in training; deploys as 32-bit signed fixed point (codes.py)
    uniform-b   2^b levels, asymmetric, per tensor scale and zero point, b in 2..8
    po2-b       powers of two, sign + (b-1)-bit exponent code, no zero level, b in 2..8
    po2z-b      powers of two with a zero level (one exponent code kept for 0), b in 2..8
The code <-> value mapping, its rounding and saturation, are in codes.py; this module only names
the formats, validates them and lists their level sets.

Why po2-2 has no zero level in the default candidates: 2-bit po2 with a zero level is the
ternary set {0, +-alpha}, the levels a symmetric 2-bit uniform quantizer reaches, so the five
default candidates (fp32, po2-2, po2z-4, uniform-2, uniform-4) would not be five distinct level sets.

Differences from QKeras (Candidate.qkeras() names the nearest QKeras quantizer, never an equal;
checked against QKeras 0.9.0 by tests/test_qkeras_interop.py, `make test-interop`):
- quantized_bits(b,0,0,alpha=1) is the grid k * 2^-(b-1), k in [-2^(b-1), 2^(b-1) - 1]: the
  uniform-b grid with scale = 2^-(b-1) and zero_point = 2^(b-1) fixed (uniform_params(-1,
  1 - 2^-(b-1), b) gives exactly these), where hqflow picks any float32 scale and zero_point per
  tensor (asymmetric); on that grid the level sets are equal and the codes too, except that it
  rounds ties to even where hqflow rounds half up (w / scale = j + 1/2 with j even and interior:
  one level lower there) and at w / scale = 0.49999997 (0 there, 1 here: codes.py). Its
  alpha="auto" variants are symmetric and per output channel.
- quantized_po2(b) has no per-tensor alpha (its exponents are absolute, min_exp = -2^(b-2) ..
  2^(b-2) - 1: po2-b with alpha_exp = 2^(b-2) - 1, the same 2^b levels), no zero level (po2z-b
  at that alpha_exp has its levels without +-2^min_exp, and 0), and rounds in the log domain
  (2^round(log2|w|): |w| in [2^(k+0.5), 1.5 * 2^k) goes up to 2^(k+1) there, down to 2^k here;
  about 8 % of Gaussian weights from b = 4 on; computed as float32 log(|w|) / log(2), so within
  1e-7 relative of 2^(k+0.5) it rounds either way); like po2-b it maps 0 to the smallest
  positive level. It also
  maps every 0 < |w| < 1e-7 (the Keras epsilon) to its smallest level 2^min_exp: from b = 7 on
  (2^min_exp = 2^-32, 2^-64) its levels 2^(min_exp+1) .. 2^-24 are unreachable, and such
  |w| land up to 9 (po2-7) or 41 (po2-8) levels below hqflow's nearest one.
- QKeras's forward value with its default use_ste=True is x + (xq - x) in float32, not xq: it
  loses xq where xq is below half an ulp of x (uniform-4 at |w| = 2^30 gives 0, not +-0.875).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hqflow.errors import UserError
from hqflow.numerics.codes import po2_dequantize, po2_levels, uniform_dequantize

__all__ = ["Candidate", "DEFAULT_CANDIDATES", "FP32_BITS", "QUANT_BITS", "SCHEMES"]

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
