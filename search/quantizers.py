"""Fake weight quantizers for the search and QAT: the torch twins of hqflow.numerics, with the STE.

A quantizer maps a float32 weight tensor w (any shape, e.g. [out, in] or [out, in, kh, kw]) to a
float32 tensor of the same shape whose values are exactly (bit for bit) those that
`numerics.fake_quantize(w, candidate, quantizer.params(w))` gives: the same float32 ops in the same
order for uniform, exact operations only for po2 (frexp, comparisons, a table of powers of two).

Per-tensor parameters are chosen from w itself on every call, under no_grad, with no host sync:
    uniform-b   ACIQ clipping (Banner et al. 2019, Gaussian MSE-optimal clip k_b in std units):
                    lo = max(min w, mean - k_b * std),  hi = min(max w, mean + k_b * std),
                then numerics.uniform_params(lo, hi, b) in float32.
    po2(z)-b    alpha_exp = the e in {e0 - 2, ..., e0 + 1}, e0 = ceil(log2 max|w|) (computed
                exactly with frexp), that minimises sum (Q_e(w) - w)^2; ties go to the smaller e.
    fp32        the identity, no parameters.

Gradient: the straight-through estimator, dL/dw = dL/dQ(w) exactly (fp32). It is a custom
autograd function rather than `w + (q - w).detach()`, because in float32 w + (q - w) need not be q.
Keep divisors as tensors on w's device: CUDA divides by a CPU scalar as a multiply by its
reciprocal, which is not float32 division.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from hqflow import numerics
from hqflow.numerics import Candidate

# Gaussian MSE-optimal clipping value, in standard deviations, per bit width (ACIQ)
ACIQ_CLIP_STD = {2: 1.71, 3: 2.15, 4: 2.55, 5: 2.94, 6: 3.29, 7: 3.61, 8: 3.92}
PO2_ALPHA_OFFSETS = (-2, -1, 0, 1)  # alpha_exp candidates around e0 = ceil(log2 max|w|)

# 2^e as float32 for e = -150 .. 128 (0 at -150, inf at 128), the values numerics.pow2 gives
_POW2_LO, _POW2_HI = -150, 128
_POW2 = torch.from_numpy(numerics.pow2(np.arange(_POW2_LO, _POW2_HI + 1)))


def _pow2(e: Tensor) -> Tensor:
    """2^e (float32) for an integer tensor e, by table look-up: exact, and below 2^-149 it is 0."""
    return _POW2.to(e.device)[(torch.clamp(e, _POW2_LO, _POW2_HI) - _POW2_LO).long()]


def uniform_params(lo: Tensor, hi: Tensor, bits: int) -> tuple[Tensor, Tensor]:
    """numerics.uniform_params on 0-d float32 tensors -> (scale, zero_point), 0-d float32 tensors."""
    w_max = lo.new_tensor(2**bits - 1)
    lo, hi = torch.clamp(lo, max=0.0), torch.clamp(hi, min=0.0)
    scale = (hi - lo) / w_max
    scale = torch.where(scale >= torch.finfo(torch.float32).tiny, scale, torch.ones_like(scale))
    zero_point = torch.clamp(torch.floor(-lo / scale + 0.5), 0, 2**bits - 1)
    return scale, zero_point


def aciq_range(w: Tensor, bits: int) -> tuple[Tensor, Tensor]:
    """The clip range (lo, hi) of uniform-b for w: 0-d float32 tensors, lo <= hi."""
    w_min, w_max = torch.aminmax(w)
    std, mean = torch.std_mean(w, correction=0)
    k = ACIQ_CLIP_STD[bits]
    return torch.maximum(w_min, mean - k * std), torch.minimum(w_max, mean + k * std)


def uniform_fake_quantize(w: Tensor, bits: int, scale, zero_point) -> Tensor:
    """(clip(floor(w / scale + 0.5) + zero_point, 0, 2^b - 1) - zero_point) * scale, in float32.

    scale and zero_point: numbers or 0-d tensors (made 0-d float32 tensors on w's device).
    """
    scale = torch.as_tensor(scale, dtype=torch.float32, device=w.device)
    zero_point = torch.as_tensor(zero_point, dtype=torch.float32, device=w.device)
    w_int = torch.clamp(torch.floor(w / scale + 0.5) + zero_point, 0, 2**bits - 1)
    return (w_int - zero_point) * scale


class _Po2Split:
    """What po2 rounding needs from w, computed once for all alpha_exp candidates.

    |w| = m * 2^e (frexp, exact); n = e - 1 + [m >= 0.75] is the exponent of the nearest power of
    two (ties up). For w = 0, n and e are -2^20, below every level and every zero threshold.
    """

    def __init__(self, w: Tensor):
        m, e = torch.frexp(w)
        is_zero = w == 0
        self.n = torch.where(is_zero, -(2**20), e - 1 + (m.abs() >= 0.75).int())
        self.e = torch.where(is_zero, -(2**20), e)
        self.sign = torch.where(w < 0, -1.0, 1.0)

    def fake_quantize(self, bits: int, alpha_exp, zero_level: bool) -> Tensor:
        """sign * 2^clip(n, alpha_exp - kmax, alpha_exp), and 0 where |w| < 2^(alpha_exp - kmax - 1)."""
        kmax = numerics.po2_max_shift(bits, zero_level)
        q = self.sign * _pow2(torch.clamp(self.n, alpha_exp - kmax, alpha_exp))
        if zero_level:
            q = torch.where(self.e <= alpha_exp - kmax - 1, 0.0, q)
        return q


def po2_fake_quantize(w: Tensor, bits: int, alpha_exp, zero_level: bool) -> Tensor:
    """numerics.fake_quantize for po2(z)-b: w_sign * 2^(alpha_exp + w_exp), float32, w's shape.

    alpha_exp: an int or a 0-d integer tensor on w's device.
    """
    return _Po2Split(w).fake_quantize(bits, torch.as_tensor(alpha_exp, device=w.device), zero_level)


class _StraightThrough(torch.autograd.Function):
    """Forward: the quantized q (bit for bit); backward: the upstream gradient to w, unchanged."""

    @staticmethod
    def forward(ctx, w: Tensor, q: Tensor) -> Tensor:
        return q

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        return grad, None


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
    def _choose(self, w: Tensor) -> tuple[Tensor, Tensor]:
        return uniform_params(*aciq_range(w, self.candidate.bits), self.candidate.bits)

    def params(self, w: Tensor) -> dict:
        with torch.no_grad():
            scale, zero_point = self._choose(w)
        return {"scale": scale.item(), "zero_point": int(zero_point.item())}

    def forward(self, w: Tensor) -> Tensor:
        _check_float32(w)
        with torch.no_grad():
            q = uniform_fake_quantize(w, self.candidate.bits, *self._choose(w))
        return _StraightThrough.apply(w, q)


class Po2Quantizer(WeightQuantizer):
    def _choose(self, w: Tensor) -> tuple[Tensor, Tensor]:
        """(alpha_exp as a 0-d int32 tensor, the fake-quantized w under it)."""
        bits, zero_level = self.candidate.bits, self.candidate.zero_level
        split = _Po2Split(w)
        m, e = torch.frexp(w.abs().amax())
        e0 = e - (m == 0.5).int()  # ceil(log2 max|w|): max|w| = m * 2^e, m in [0.5, 1)
        qs = [split.fake_quantize(bits, e0 + d, zero_level) for d in PO2_ALPHA_OFFSETS]
        best = torch.argmin(torch.stack([torch.sum((q - w) ** 2) for q in qs]))
        return e0 + PO2_ALPHA_OFFSETS[0] + best.int(), torch.stack(qs)[best]

    def params(self, w: Tensor) -> dict:
        with torch.no_grad():
            alpha_exp, _ = self._choose(w)
        return {"alpha_exp": int(alpha_exp.item())}

    def forward(self, w: Tensor) -> Tensor:
        _check_float32(w)
        with torch.no_grad():
            _, q = self._choose(w)
        return _StraightThrough.apply(w, q)


def _check_float32(w: Tensor) -> None:
    if w.dtype != torch.float32:
        raise TypeError(f"weight quantizers take float32 weights (the numerics contract), got {w.dtype}")


def make_quantizer(candidate: Candidate) -> WeightQuantizer:
    """The fake quantizer of a candidate (fp32 -> identity)."""
    cls = {"fp32": WeightQuantizer, "uniform": UniformQuantizer, "po2": Po2Quantizer}[candidate.scheme]
    return cls(candidate)
