"""Fake weight quantizers for the search and QAT: the torch twins of hqflow.numerics, with the STE.

A quantizer maps a float32 weight tensor w (any shape, e.g. [out, in] or [out, in, kh, kw]) to a
float32 tensor of the same shape whose values are exactly (bit for bit) those that
`numerics.fake_quantize(w, candidate, quantizer.params(w))` gives: the same float32 ops in the same
order for uniform; for po2 only exact operations (scaling by powers of two, integer operations on
float32 bit patterns), so the result is the exact level, as numerics computes it with frexp.
Elementwise ops work in place where they can: on CPU the temporaries cost more than the ops.

Per-tensor parameters are chosen from w itself on every call, under no_grad; a call reads one or
two numbers back to the host (.item()), which on CPU is far cheaper than a chain of 0-d tensor ops:
    uniform-b   ACIQ clipping (Banner et al. 2019, Gaussian MSE-optimal clip k_b in std units):
                    lo = max(min w, mean - k_b * std),  hi = min(max w, mean + k_b * std),
                then (scale, zero_point) = numerics.uniform_params(lo, hi, b) itself.
    po2(z)-b    alpha_exp = the e in {e0 - 2, ..., e0 + 1}, e0 = ceil(log2 max|w|) (exactly, with
                frexp), that minimises sum (Q_e(w) - w)^2; ties go to the smaller e.
    fp32        the identity, no parameters.

Gradient: the straight-through estimator, dL/dw = dL/dQ(w) exactly (fp32). It is a custom
autograd function rather than `w + (q - w).detach()`, because in float32 w + (q - w) need not be q.
The divisor of w / scale is a tensor on w's device: CUDA divides by a CPU scalar as a multiply by
its reciprocal, which is not float32 division. A product with a Python float (a float32 value) is
one float32 rounding on any device, as in NumPy.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from hqflow import numerics
from hqflow.numerics import Candidate

# Gaussian MSE-optimal clipping value, in standard deviations, per bit width (ACIQ)
ACIQ_CLIP_STD = {2: 1.71, 3: 2.15, 4: 2.55, 5: 2.94, 6: 3.29, 7: 3.61, 8: 3.92}
PO2_ALPHA_OFFSETS = (-2, -1, 0, 1)  # alpha_exp candidates around e0 = ceil(log2 max|w|)

# float32 bit patterns (as int32) used by the exact po2 rounding
_MANTISSA_HALF = 1 << 22  # adding it to a normal float's bits carries into the exponent iff mantissa >= 1.5
_EXPONENT_MASK = 0x7F800000
_SIGN_BIT = -(1 << 31)  # 0x80000000
_ONE = 0x3F800000  # 1.0
_HALF = 0x3F000000  # 0.5


def aciq_range(w: Tensor, bits: int) -> tuple[Tensor, Tensor]:
    """The clip range (lo, hi) of uniform-b for w: 0-d float32 tensors, lo <= hi."""
    w_min, w_max = torch.aminmax(w)
    mean = w.mean()
    std = (w - mean).square().mean().sqrt()  # population std; two cheap passes (std_mean is slower)
    k = ACIQ_CLIP_STD[bits]
    return torch.maximum(w_min, mean - k * std), torch.minimum(w_max, mean + k * std)


def uniform_fake_quantize(w: Tensor, bits: int, scale: float, zero_point: int) -> Tensor:
    """(clip(floor(w / scale + 0.5) + zero_point, 0, 2^b - 1) - zero_point) * scale, in float32."""
    x = w / torch.tensor(scale, dtype=torch.float32, device=w.device)  # a device tensor: module docstring
    x += 0.5
    x.floor_()
    x += zero_point
    x.clamp_(0, 2**bits - 1)  # w_int
    x -= zero_point
    x *= scale
    return x


class _Po2Rounder:
    """Exact po2(z)-b rounding of w for alpha_exp = alpha_top - i (i = 0, 1, ...), on float32 bits.

    y = |w| * 2^d, d = kmax - alpha_top, puts the levels of alpha_top - i at 2^-i .. 2^(kmax-i),
    all normal floats for i <= 3 (the scaling is exact, or it over/underflows only where the result
    saturates anyway). For a normal y, (bits(y) + 2^22) & exponent mask is the bit pattern of the
    nearest power of two, ties up (the carry happens iff the mantissa is >= 1.5); clamping it to
    the levels of i and zeroing y < 2^-(i+1) (with a zero level) rounds for alpha_top - i. The
    sign is that of w + 0.0 (so -0.0 is +0, as in numerics). 2^d is applied as two normal float32
    factors, so |d| <= 252: |alpha_exp| <= 125 at worst.
    """

    def __init__(self, w: Tensor, bits: int, zero_level: bool, alpha_top: int):
        self.w, self.kmax, self.zero_level = w, numerics.po2_max_shift(bits, zero_level), zero_level
        d = self.kmax - alpha_top
        self.d1, self.d2 = d >> 1, d - (d >> 1)  # both >= 0 or both <= 0
        self.y = w.abs()
        self.y *= 2.0**self.d1
        self.y *= 2.0**self.d2
        self.nearest = self.y.view(torch.int32) + _MANTISSA_HALF
        self.nearest &= _EXPONENT_MASK

    def _levels(self, i: int) -> Tensor:
        """bits(|Q(w)| * 2^d) for alpha_top - i."""
        q = self.nearest.clamp(_ONE - (i << 23), _ONE + ((self.kmax - i) << 23))
        if self.zero_level:
            q &= self._keep(i)
        return q

    def _keep(self, i: int) -> Tensor:
        """All ones where y >= 2^-(i+1) (the midpoint to 0), else 0."""
        keep = self.y.view(torch.int32) - (_HALF - (i << 23))
        keep >>= 31
        return keep.bitwise_not_()

    def error(self, i: int) -> Tensor:
        """sum (Q(w) - w)^2 * 2^(2 (d + 1 - kmax)) for alpha_top - i: comparable across i.

        The factor keeps each term <= 4 (no overflow) and is a normal float32 (no denormal operand).
        """
        diff = self._levels(i).view(torch.float32) - self.y
        diff *= 2.0 ** (1 - self.kmax)
        return diff.square_().sum()

    def fake_quantize(self, i: int) -> Tensor:
        """Q(w) for alpha_top - i, float32, w's shape."""
        sign = (self.w + 0.0).view(torch.int32) & _SIGN_BIT
        if self.zero_level:
            sign &= self._keep(i)
        q = self._levels(i)
        q |= sign
        q = q.view(torch.float32)
        q *= 2.0**-self.d1
        q *= 2.0**-self.d2
        return q


def po2_fake_quantize(w: Tensor, bits: int, alpha_exp: int, zero_level: bool) -> Tensor:
    """numerics.fake_quantize for po2(z)-b: w_sign * 2^(alpha_exp + w_exp), float32, w's shape."""
    return _Po2Rounder(w, bits, zero_level, alpha_exp).fake_quantize(0)


def _check_float32(w: Tensor) -> None:
    if w.dtype != torch.float32:
        raise TypeError(f"weight quantizers take float32 weights (the numerics contract), got {w.dtype}")


class _StraightThrough(torch.autograd.Function):
    """Forward: the quantized q (bit for bit); backward: the upstream gradient to w, unchanged."""

    @staticmethod
    def forward(ctx, w: Tensor, q: Tensor) -> Tensor:
        return q

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        return grad, None


straight_through = _StraightThrough.apply  # (w, q) -> q forward, the gradient to w unchanged


class WeightQuantizer(nn.Module):
    """Fake quantizer of one candidate: forward(w) -> Q(w) (float32, w's shape), STE gradient.

    This base class is fp32: the identity with no parameters. params(w) gives the parameters that
    forward(w) uses, as numbers for numerics: {} | {"scale", "zero_point"} | {"alpha_exp"}.
    """

    def __init__(self, candidate: Candidate):
        super().__init__()
        self.candidate = candidate

    def params(self, w: Tensor) -> dict:
        return {}

    def forward(self, w: Tensor) -> Tensor:
        return w

    def extra_repr(self) -> str:
        return self.candidate.name


class UniformQuantizer(WeightQuantizer):
    def params(self, w: Tensor) -> dict:
        with torch.no_grad():
            lo, hi = aciq_range(w, self.candidate.bits)
        scale, zero_point = numerics.uniform_params(lo.item(), hi.item(), self.candidate.bits)
        return {"scale": scale, "zero_point": zero_point}

    def forward(self, w: Tensor) -> Tensor:
        _check_float32(w)
        with torch.no_grad():
            q = uniform_fake_quantize(w, self.candidate.bits, **self.params(w))
        return _StraightThrough.apply(w, q)


class Po2Quantizer(WeightQuantizer):
    def _choose(self, w: Tensor) -> tuple[int, Tensor]:
        """(alpha_exp, the fake-quantized w under it)."""
        m, e = math.frexp(w.abs().max().item())
        e0 = e - (m == 0.5)  # ceil(log2 max|w|) exactly: max|w| = m * 2^e, m in [0.5, 1)
        alpha_top = e0 + PO2_ALPHA_OFFSETS[-1]
        rounder = _Po2Rounder(w, self.candidate.bits, self.candidate.zero_level, alpha_top)
        steps = [alpha_top - (e0 + d) for d in PO2_ALPHA_OFFSETS]  # i of each candidate, smallest alpha first
        best = steps[int(torch.argmin(torch.stack([rounder.error(i) for i in steps])))]
        return alpha_top - best, rounder.fake_quantize(best)

    def params(self, w: Tensor) -> dict:
        with torch.no_grad():
            alpha_exp, _ = self._choose(w)
        return {"alpha_exp": alpha_exp}

    def forward(self, w: Tensor) -> Tensor:
        _check_float32(w)
        with torch.no_grad():
            _, q = self._choose(w)
        return _StraightThrough.apply(w, q)


def make_quantizer(candidate: Candidate) -> WeightQuantizer:
    """The fake quantizer of a candidate (fp32 -> identity)."""
    cls = {"fp32": WeightQuantizer, "uniform": UniformQuantizer, "po2": Po2Quantizer}[candidate.scheme]
    return cls(candidate)
