"""Torch fake quantizers: bit for bit the values of hqflow.numerics, STE gradient, sane parameters."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hqflow import numerics
from hqflow.numerics import DEFAULT_CANDIDATES, Candidate
from hqflow.search.quantizers import (
    Po2Quantizer,
    UniformQuantizer,
    WeightQuantizer,
    aciq_range,
    make_quantizer,
    po2_fake_quantize,
    uniform_fake_quantize,
)

BITS = range(2, 9)
ALL_CANDIDATES = [Candidate.parse("fp32")] + [
    Candidate.parse(f"{s}-{b}") for s in ("uniform", "po2", "po2z") for b in BITS
]


def assert_bitwise_equal(actual, desired):
    """Same float32 values down to the bit pattern (so also the sign of zero)."""
    actual = actual.detach().numpy() if isinstance(actual, torch.Tensor) else actual
    assert actual.dtype == desired.dtype == np.float32
    np.testing.assert_array_equal(actual.view(np.uint32), desired.view(np.uint32))


def _around(x):
    """x and its float32 neighbours on both sides, both signs."""
    x = np.float32(x)
    x = np.concatenate([x, np.nextafter(x, np.float32(-np.inf)), np.nextafter(x, np.float32(np.inf))])
    return np.concatenate([x, -x])


EXTRAS = np.float32([0.0, -0.0, np.inf, -np.inf, 1e30, 1e-45, 1e-40, 0.49999997])


@pytest.mark.parametrize("bits", BITS)
@pytest.mark.parametrize("lo, hi", [(-1.0, 1.0), (-0.013, 0.07), (0.0, 3.0), (-5e-4, -1e-4)])
def test_uniform_matches_numerics_on_every_code(bits, lo, hi):
    scale, zero_point = numerics.uniform_params(lo, hi, bits)
    w_int = np.arange(2**bits)
    levels = numerics.uniform_dequantize(w_int, scale, zero_point)
    midpoints = (w_int - np.float32(zero_point) + np.float32(0.5)) * np.float32(scale)
    rng = np.random.default_rng(bits)
    w = np.concatenate([_around(levels), _around(midpoints), EXTRAS * scale, EXTRAS,
                        np.float32(rng.uniform(lo - 1, hi + 1, 500))]).astype(np.float32)
    expected = numerics.fake_quantize(w, Candidate("uniform", bits), {"scale": scale, "zero_point": zero_point})
    assert_bitwise_equal(uniform_fake_quantize(torch.from_numpy(w), bits, scale, zero_point), expected)


@pytest.mark.parametrize("bits", BITS)
@pytest.mark.parametrize("zero_level", [False, True])
@pytest.mark.parametrize("alpha_exp", [-6, -3, 0, 2])
def test_po2_matches_numerics_on_every_code(bits, zero_level, alpha_exp):
    candidate = Candidate("po2", bits, zero_level)
    kmax = numerics.po2_max_shift(bits, zero_level)
    levels = candidate.levels({"alpha_exp": alpha_exp})
    e = np.arange(alpha_exp - kmax - 2, alpha_exp + 3, dtype=np.int32)
    midpoints = np.concatenate([np.ldexp(np.float32(0.75), e), np.ldexp(np.float32(0.5), e)])
    rng = np.random.default_rng(bits)
    w = np.concatenate([_around(levels), _around(midpoints), EXTRAS,
                        np.float32(rng.standard_normal(500) * 2.0**alpha_exp)]).astype(np.float32)
    expected = numerics.fake_quantize(w, candidate, {"alpha_exp": alpha_exp})
    assert_bitwise_equal(po2_fake_quantize(torch.from_numpy(w), bits, alpha_exp, zero_level), expected)


@settings(max_examples=60, deadline=None)
@given(
    candidate=st.sampled_from(ALL_CANDIDATES),
    shape=st.lists(st.integers(1, 24), min_size=1, max_size=4),
    log_std=st.floats(-12, 6),
    mean=st.floats(-1, 1),
    seed=st.integers(0, 2**16),
)
def test_quantizer_matches_numerics_with_its_own_params(candidate, shape, log_std, mean, seed):
    gen = torch.Generator().manual_seed(seed)
    w = (torch.randn(shape, generator=gen) + mean) * 2.0**log_std
    quantizer = make_quantizer(candidate)
    params = quantizer.params(w)
    expected = numerics.fake_quantize(w.numpy(), candidate, params)
    assert_bitwise_equal(quantizer(w), expected)


@pytest.mark.parametrize("candidate", ALL_CANDIDATES, ids=lambda c: c.name)
def test_ste_gradient_is_identity(candidate):
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(16, 8, 3, 3, generator=gen)
    w[:, :2] *= 1e-3  # small weights, where w + (q - w) in float32 is not always q
    w.requires_grad_()
    upstream = torch.randn(w.shape, generator=gen)
    quantizer = make_quantizer(candidate)
    q = quantizer(w)
    assert_bitwise_equal(q, numerics.fake_quantize(w.detach().numpy(), candidate, quantizer.params(w)))
    q.backward(upstream)
    assert w.grad.dtype == torch.float32
    np.testing.assert_array_equal(w.grad.numpy(), upstream.numpy())


@pytest.mark.parametrize("bits", BITS)
def test_uniform_params_are_sane(bits):
    w = torch.randn(64, 128, generator=torch.Generator().manual_seed(bits)) * 0.05 + 0.01
    params = make_quantizer(Candidate("uniform", bits)).params(w)
    lo, hi = aciq_range(w, bits)
    assert params == dict(zip(("scale", "zero_point"), numerics.uniform_params(lo.item(), hi.item(), bits)))
    assert params["scale"] > 0 and 0 <= params["zero_point"] <= 2**bits - 1
    assert 0.0 in Candidate("uniform", bits).levels(params)
    assert w.min() <= lo < 0 < hi <= w.max()  # Gaussian weights: ACIQ clips inside the extremes


@pytest.mark.parametrize("candidate", [c for c in ALL_CANDIDATES if c.scheme == "po2"], ids=lambda c: c.name)
def test_po2_alpha_minimises_the_error(candidate):
    w = torch.randn(128, 64, generator=torch.Generator().manual_seed(candidate.bits)) * 0.03
    alpha_exp = make_quantizer(candidate).params(w)["alpha_exp"]
    w_max = float(w.abs().max())
    e0 = int(np.ceil(np.log2(w_max)))
    assert 2.0 ** (e0 - 1) < w_max <= 2.0**e0
    errors = {e: float(np.sum((numerics.fake_quantize(w.numpy(), candidate, {"alpha_exp": e}).astype(np.float64)
                               - w.numpy()) ** 2)) for e in range(e0 - 2, e0 + 2)}
    assert alpha_exp == min(errors, key=errors.get)


def test_more_bits_less_error():
    w = torch.randn(256, 256, generator=torch.Generator().manual_seed(1)) * 0.05

    def mse(name):
        return float(((make_quantizer(Candidate.parse(name))(w) - w) ** 2).mean())

    assert mse("uniform-8") < mse("uniform-4") < mse("uniform-2")
    assert mse("po2z-4") < mse("po2-2") and mse("po2-4") < mse("po2-2") and mse("po2z-8") < mse("po2z-4")


def test_fp32_is_identity():
    w = torch.randn(5, 7)
    quantizer = make_quantizer(Candidate.parse("fp32"))
    assert type(quantizer) is WeightQuantizer and quantizer.params(w) == {}
    assert quantizer(w) is w


def test_make_quantizer_and_dtype_check():
    assert [type(make_quantizer(c)) for c in DEFAULT_CANDIDATES] == [
        WeightQuantizer, Po2Quantizer, Po2Quantizer, UniformQuantizer, UniformQuantizer
    ]
    with pytest.raises(TypeError, match="float64"):
        make_quantizer(Candidate.parse("uniform-4"))(torch.zeros(3, dtype=torch.float64))


def test_all_zero_weight():
    w = torch.zeros(4, 4)
    for name in ("uniform-2", "po2z-4"):
        np.testing.assert_array_equal(make_quantizer(Candidate.parse(name))(w).numpy(), 0)
    q = make_quantizer(Candidate.parse("po2-2"))(w)  # no zero level: the smallest positive level
    assert bool((q > 0).all()) and len(q.unique()) == 1
