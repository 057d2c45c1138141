"""Integer ops of the deployed model (hqflow.numerics: bounds, folding, ops) against float, rational and torch references.

The simulator's fast products are checked against these reference ops in tests/test_fast.py."""

import doctest
import inspect
import math
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from hqflow import numerics
from hqflow.numerics import (
    FLOAT64_EXACT,
    INT64_MAX,
    Candidate,
    acc_bound,
    argmax_first,
    bits_for,
    conv2d_acc,
    effective_weight,
    fake_quantize,
    fixed_point_frac_bits,
    fold_head,
    head_logits,
    linear_acc,
    maxpool_int,
    maxpool_or,
    po2_max_shift,
    round_half_up,
    ssa_bound,
    ssa_int,
    uniform_params,
)
from hqflow.search.quantizers import make_quantizer

QUANT_CANDIDATES = [Candidate("uniform", b) for b in range(2, 9)] + [
    Candidate("po2", b, z) for b in range(2, 9) for z in (False, True)
]


@pytest.mark.parametrize("module", [numerics.bounds, numerics.folding, numerics.ops], ids=lambda m: m.__name__)
def test_doctests(module):
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0


def test_every_module_is_tested_and_every_name_exported():
    """The doctest lists cover every submodule; each one's __all__ holds every public name it defines,
    no name is in two of them, and the package re-exports them all."""
    assert set(numerics.SUBMODULES) == {numerics.formats, numerics.codes, numerics.rom, numerics.bounds,
                                        numerics.folding, numerics.ops}
    everywhere = [name for module in numerics.SUBMODULES for name in module.__all__]
    assert len(everywhere) == len(set(everywhere)) and numerics.__all__ == everywhere
    for module in numerics.SUBMODULES:
        defined = {name for name, value in vars(module).items() if not name.startswith("_")
                   and not inspect.ismodule(value) and name != "TYPE_CHECKING"
                   and getattr(value, "__module__", module.__name__) == module.__name__}
        assert defined - set(everywhere) == set(), module.__name__
        assert set(module.__all__) <= defined, module.__name__
        assert all(getattr(numerics, name) is getattr(module, name) for name in module.__all__)


def test_numerics_does_not_import_torch():
    code = "import sys, hqflow.numerics; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


# ---- round_half_up, bits_for -----------------------------------------------------------------------


def test_round_half_up_ties_go_up():
    halves = np.arange(-41, 42) / 2  # every tie and integer in [-20.5, 20.5]
    expected = [math.floor(Fraction(x) + Fraction(1, 2)) for x in halves.tolist()]
    np.testing.assert_array_equal(round_half_up(halves), expected)
    assert [round_half_up(Fraction(k, 2)) for k in (-3, -1, 1, 3)] == [-1, 0, 1, 2]


@given(st.floats(min_value=-(2.0**62), max_value=2.0**62))
def test_round_half_up_is_exact(x):
    assert int(round_half_up(x)) == math.floor(Fraction(x) + Fraction(1, 2))


def test_round_half_up_named_hard_cases_and_range():
    below_half = np.nextafter(0.5, 0.0)  # floor(x + 0.5) in float64 would give 1
    odd = 2.0**52 + 1  # floor(x + 0.5) in float64 would give 2^52 + 2
    np.testing.assert_array_equal(round_half_up([below_half, odd, -odd]), [0, 2**52 + 1, -(2**52) - 1])
    for bad in (2.0**63, np.inf, np.nan):
        with pytest.raises(ValueError, match="round_half_up"):
            round_half_up([bad])


def test_bits_for_exhaustive():
    def brute(lo, hi):
        return next(n for n in range(1, 70) if -(2 ** (n - 1)) <= lo and hi <= 2 ** (n - 1) - 1)

    for lo in range(-70, 71):
        for hi in range(lo, 71):
            assert bits_for(lo, hi) == brute(lo, hi), (lo, hi)
    assert bits_for(-(2**63), INT64_MAX) == 64 and bits_for(0, 2**63) == 65
    with pytest.raises(ValueError, match="bits_for"):
        bits_for(1, 0)


# ---- effective weights -----------------------------------------------------------------------------


def _weight_samples(seed):
    rng = np.random.default_rng(seed)
    yield (rng.standard_normal((16, 8, 3, 3)) * 0.05).astype(np.float32)
    yield rng.uniform(-1.5, 0.3, (64, 40)).astype(np.float32)
    w = (rng.standard_normal((32, 32)) * 0.02).astype(np.float32)
    w[0, :3] = [0.4, -0.7, 1e-6]  # outliers and a tiny weight
    yield w


def _params(candidate, w, rng):
    """The search's own parameters, plus parameters away from its choice."""
    yield make_quantizer(candidate).params(torch.from_numpy(w))
    if candidate.scheme == "uniform":
        yield dict(zip(("scale", "zero_point"), uniform_params(float(w.min()) / 2, float(w.max()) * 3, candidate.bits)))
    else:
        yield {"alpha_exp": int(rng.integers(-6, 2))}


@pytest.mark.parametrize("candidate", QUANT_CANDIDATES, ids=lambda c: c.name)
def test_effective_weight_reproduces_fake_quantize(candidate):
    rng = np.random.default_rng(candidate.bits)
    for w in _weight_samples(candidate.bits):
        for params in _params(candidate, w, rng):
            w_eff, weight_scale = effective_weight(w, candidate, params)
            expected = fake_quantize(w, candidate, params)
            assert w_eff.dtype == np.int64 and w_eff.shape == w.shape and weight_scale > 0
            # w_eff * weight_scale is the exact real weight; fake_quantize rounds it once to float32
            rounded = (w_eff * weight_scale).astype(np.float32)
            np.testing.assert_array_equal(rounded.view(np.uint32), expected.view(np.uint32))
            if candidate.scheme == "uniform":
                assert np.abs(w_eff).max() <= 2**candidate.bits - 1
                continue
            np.testing.assert_array_equal(w_eff * weight_scale, expected.astype(np.float64))  # no rounding at all
            magnitudes = np.abs(w_eff[w_eff != 0])
            if magnitudes.size:  # (po2z-2 under a large alpha rounds every weight to 0)
                assert magnitudes.min() == 1
                assert magnitudes.max() <= 2 ** po2_max_shift(candidate.bits, candidate.zero_level)
            np.testing.assert_array_equal(magnitudes & (magnitudes - 1), 0)  # powers of two: shifts


def test_effective_weight_po2_span_beyond_int64_is_an_error():
    w = np.float32([1.0, 0.0])  # po2-8 has no zero level: 0 -> 2^-127, a span of 2^127
    with pytest.raises(ValueError, match="effective_weight: po2-8"):
        effective_weight(w, Candidate("po2", 8), {"alpha_exp": 0})
    w_eff, weight_scale = effective_weight(w, Candidate("po2", 8, True), {"alpha_exp": 0})  # with a zero level
    assert w_eff.tolist() == [1, 0] and weight_scale == 1.0


finite_f32 = st.floats(width=32, allow_nan=False, allow_infinity=False)


@given(arrays(np.float32, st.integers(1, 12), elements=finite_f32))
def test_fp32_fixed_point(w):
    w_eff, weight_scale = effective_weight(w, Candidate.parse("fp32"), {})
    frac_bits = fixed_point_frac_bits(w)
    assert weight_scale == 2.0**-frac_bits
    assert np.abs(w_eff).max() <= 2**31 - 1
    scaled = np.ldexp(w.astype(np.float64), frac_bits)  # exact
    assert np.all(np.abs(w_eff - scaled) <= 0.5)  # i.e. |w_eff * 2^-f - w| <= 2^-(f+1)
    w_max = np.abs(w.astype(np.float64)).max()
    if w_max > 0:  # f is the largest that fits 32 bits
        assert round_half_up(np.ldexp(w_max, frac_bits + 1)) > 2**31 - 1
    else:
        assert frac_bits == 0 and not w_eff.any()


def test_fp32_fixed_point_rejects_non_finite():
    with pytest.raises(ValueError, match="fixed_point_frac_bits"):
        fixed_point_frac_bits(np.float32([1.0, np.inf]))


# ---- accumulation --------------------------------------------------------------------------------


def conv_reference(x, w_eff, padding):
    """Sum over the kernel offsets of integer einsums (no float, no im2col)."""
    k = w_eff.shape[-1]
    x_pad = np.pad(x.astype(np.int64), ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    h_out, w_out = x_pad.shape[2] - k + 1, x_pad.shape[3] - k + 1
    acc = np.zeros((x.shape[0], w_eff.shape[0], h_out, w_out), np.int64)
    for i in range(k):
        for j in range(k):
            x_shifted = x_pad[:, :, i : i + h_out, j : j + w_out]
            acc += np.einsum("bchw,oc->bohw", x_shifted, w_eff[:, :, i, j].astype(np.int64))
    return acc


@settings(max_examples=60, deadline=None)
@given(
    st.tuples(st.integers(1, 2), st.integers(1, 4), st.integers(1, 4), st.integers(1, 7), st.integers(1, 7)),
    st.sampled_from([(1, 0), (3, 0), (3, 1), (1, 1)]),
    st.integers(0, 2**32 - 1),
)
def test_conv2d_acc_matches_taps_and_torch(shape, kernel_padding, seed):
    (b, c, o, h, w), (k, padding) = shape, kernel_padding
    if h + 2 * padding < k or w + 2 * padding < k:
        return
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 4, (b, c, h, w)).astype(np.uint8)
    w_eff = rng.integers(-255, 256, (o, c, k, k))
    acc = conv2d_acc(x, w_eff, padding)
    assert acc.dtype == np.int64
    np.testing.assert_array_equal(acc, conv_reference(x, w_eff, padding))
    torch_acc = F.conv2d(torch.from_numpy(x).double(), torch.from_numpy(w_eff).double(), padding=padding)
    np.testing.assert_array_equal(acc, torch_acc.numpy().astype(np.int64))
    assert np.abs(acc).max(initial=0) <= acc_bound(x.max(), w_eff)


def test_conv2d_acc_wide_values_and_overflow():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 2**10, (2, 3, 5, 6))
    w_eff = rng.integers(-(2**45), 2**45, (4, 3, 3, 3))
    assert FLOAT64_EXACT < acc_bound(x.max(), w_eff) <= INT64_MAX  # beyond float64, within int64
    np.testing.assert_array_equal(conv2d_acc(x, w_eff), conv_reference(x, w_eff, 1))
    with pytest.raises(ValueError, match="conv2d_acc"):
        conv2d_acc(x * 2**10, w_eff * 2**8)


def test_conv2d_acc_shape_mismatch():
    with pytest.raises(ValueError, match="conv2d_acc"):
        conv2d_acc(np.zeros((1, 2, 4, 4)), np.zeros((3, 1, 3, 3), np.int64))


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 5), st.integers(1, 40), st.integers(1, 9), st.booleans(), st.integers(0, 2**32 - 1))
def test_linear_acc(rows, c_in, c_out, wide, seed):
    rng = np.random.default_rng(seed)
    x_hi, w_hi = (2**12, 2**44) if wide else (4, 2**31)  # wide: beyond 2^53, the int64 path
    x = rng.integers(0, x_hi, (2, rows, c_in))
    w_eff = rng.integers(-w_hi, w_hi, (c_out, c_in))
    expected = (x.astype(object) @ w_eff.T.astype(object)).astype(np.int64)  # Python ints: exact
    np.testing.assert_array_equal(linear_acc(x, w_eff), expected)
    if not wide:
        torch_acc = F.linear(torch.from_numpy(x).double(), torch.from_numpy(w_eff).double())
        np.testing.assert_array_equal(linear_acc(x, w_eff), torch_acc.numpy().astype(np.int64))


def test_linear_acc_overflow_and_shape():
    with pytest.raises(ValueError, match="linear_acc"):
        linear_acc(np.full((1, 4), 2**20), np.full((2, 4), 2**42))
    with pytest.raises(ValueError, match="linear_acc"):
        linear_acc(np.zeros((1, 4)), np.zeros((2, 3), np.int64))


def test_acc_bound_is_exact_beyond_int64_row_sums():
    w_eff = np.full((2, 8), 2**62, np.int64)
    w_eff[1] = -1
    assert acc_bound(3, w_eff) == 3 * 8 * 2**62
    rng = np.random.default_rng(1)
    w_eff = rng.integers(-100, 100, (5, 2, 3, 3))
    assert acc_bound(7, w_eff) == 7 * max(sum(abs(int(v)) for v in row.ravel()) for row in w_eff)


# ---- spike ops and head ----------------------------------------------------------------------------


@pytest.mark.parametrize("height", range(1, 10))
@pytest.mark.parametrize("kernel, stride, padding", [(3, 2, 1), (2, 2, 0), (3, 1, 1), (3, 3, 0)])
def test_maxpool_or_matches_torch(height, kernel, stride, padding):
    rng = np.random.default_rng(height)
    width = int(rng.integers(max(1, kernel - 2 * padding), 10))
    if height + 2 * padding < kernel:
        return
    s = (rng.random((2, 3, height, width)) < 0.3).astype(np.uint8)
    expected = F.max_pool2d(torch.from_numpy(s).float(), kernel, stride, padding).numpy().astype(np.uint8)
    out = maxpool_or(s, kernel, stride, padding)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("height", range(1, 8))
@pytest.mark.parametrize("kernel, stride, padding", [(3, 2, 1), (2, 2, 0), (3, 1, 1)])
def test_maxpool_int_matches_torch_on_signed_values_and_the_or_on_spikes(height, kernel, stride, padding):
    """The Spike-driven Transformer pools BN outputs (signed fixed point): torch's -inf padding."""
    rng = np.random.default_rng(height)
    width = int(rng.integers(max(1, kernel - 2 * padding), 9))
    if height + 2 * padding < kernel:
        return
    x = rng.integers(-2**40, -2**20, (2, 3, height, width))  # all negative: a zero padding would win
    expected = F.max_pool2d(torch.from_numpy(x).double(), kernel, stride, padding).numpy().astype(np.int64)
    np.testing.assert_array_equal(maxpool_int(x, kernel, stride, padding), expected)
    s = (rng.random((2, 3, height, width)) < 0.3).astype(np.uint8)
    out = maxpool_int(s, kernel, stride, padding)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, maxpool_or(s, kernel, stride, padding))


def test_maxpool_or_rejects_wide_padding():
    with pytest.raises(ValueError, match="maxpool_or"):
        maxpool_or(np.zeros((1, 1, 4, 4), np.uint8), kernel=3, padding=2)


@pytest.mark.parametrize("heads", (1, 2, 4))
def test_ssa_int_matches_float_reference(heads):
    rng = np.random.default_rng(heads)
    time_steps, batch, tokens, dim = 3, 2, 12, 16
    q, k, v = (rng.integers(0, 2, (time_steps, batch, tokens, dim)).astype(np.uint8) for _ in range(3))

    def split(s):  # as the model: [T, B, N, D] -> [T, B, heads, N, d_head]
        return torch.from_numpy(s).double().reshape(time_steps, batch, tokens, heads, dim // heads).transpose(2, 3)

    expected = (split(q) @ split(k).transpose(-2, -1) @ split(v)).transpose(2, 3).flatten(3)
    y = ssa_int(q, k, v, heads)
    assert y.dtype == np.int64
    np.testing.assert_array_equal(y, expected.numpy().astype(np.int64))
    ones = np.ones((1, tokens, dim), np.uint8)
    np.testing.assert_array_equal(ssa_int(ones, ones, ones, heads), ssa_bound(tokens, dim // heads))  # tight
    with pytest.raises(ValueError, match="ssa_int"):
        ssa_int(q[..., :15], k[..., :15], v[..., :15], num_heads=2)


def test_head_logits_keep_argmax():
    rng = np.random.default_rng(7)
    tokens, time_steps, bias_frac_bits, classes = 16, 4, 8, 10
    weight_scale = float(np.float32(0.0123))
    bias = (rng.standard_normal(classes) * 0.3).astype(np.float32)
    acc_sum = rng.integers(-4000, 4000, (512, classes))
    logits = head_logits(acc_sum, fold_head(bias, weight_scale, tokens, time_steps, bias_frac_bits), bias_frac_bits)
    real = weight_scale * acc_sum / (tokens * time_steps) + bias.astype(np.float64)
    # integer logits are the real ones times N T 2^f / scale, up to the bias rounding (in logit units):
    unit = weight_scale / (tokens * time_steps * 2**bias_frac_bits)
    error = unit / 2
    assert np.abs(logits * unit - real).max() <= error * (1 + 1e-9)
    top2 = np.sort(real, axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 2 * error + 1e-12  # away from ties
    assert clear.mean() > 0.95
    np.testing.assert_array_equal(argmax_first(logits)[clear], argmax_first(real)[clear])


def test_head_rounding_is_exact_and_checked():
    weight_scale, tokens, time_steps, bias_frac_bits = float(np.float32(0.07)), 8, 2, 5
    bias = np.float32([0.3, -0.7, 0.0])
    factor = Fraction(tokens * time_steps * 2**bias_frac_bits) / Fraction(weight_scale)
    expected = [math.floor(Fraction(float(b)) * factor + Fraction(1, 2)) for b in bias]
    assert fold_head(bias, weight_scale, tokens, time_steps, bias_frac_bits).tolist() == expected
    with pytest.raises(ValueError, match="head_logits"):
        head_logits(np.array([[2**60]]), np.array([0]), 4)
    with pytest.raises(ValueError, match="fold_head"):
        fold_head(bias, 0.0, tokens, time_steps, bias_frac_bits)


def test_argmax_first_ties_go_to_the_lowest_index():
    logits = np.array([[3, 3, 1], [0, 2, 2], [5, 5, 5]])
    np.testing.assert_array_equal(argmax_first(logits), [0, 1, 0])
    np.testing.assert_array_equal(argmax_first(logits), torch.from_numpy(logits).argmax(dim=-1).numpy())
