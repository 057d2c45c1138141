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
    fold_lif,
    head_logits,
    lif_charge,
    lif_fire,
    lif_reset,
    lif_run,
    lif_step,
    linear_acc,
    maxpool_or,
    membrane_bits,
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
THETAS = (1.0, 0.5)


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


# ---- integer LIF -----------------------------------------------------------------------------------


def lif_float(x_seq, theta):
    """spikingjelly's LIF (tau 2, decay_input, hard reset to 0) in float64: x [T, ...] -> (spikes, H)."""
    v = np.zeros(x_seq.shape[1:])
    spikes, charges = [], []
    for x in x_seq:
        h = v + (x - v) / 2
        s = h >= theta
        v = np.where(s, 0.0, h)
        spikes.append(s)
        charges.append(h)
    return np.array(spikes, np.uint8), np.array(charges)


def lif_exact(x_seq, theta):
    """The same LIF in exact rational arithmetic: x [T][n] of Fractions -> (spikes [T][n], H, V)."""
    v = [Fraction(0)] * len(x_seq[0])
    spikes, charges, membranes = [], [], []
    for x in x_seq:
        h = [v_i + (x_i - v_i) / 2 for v_i, x_i in zip(v, x)]
        s = [int(h_i >= theta) for h_i in h]
        v = [Fraction(0) if s_i else h_i for s_i, h_i in zip(s, h)]
        spikes.append(s)
        charges.append(h)
        membranes.append(v)
    return np.array(spikes, np.uint8), charges, membranes


def lif_int_trace(acc_seq, consts):
    """lif_step over T steps, keeping every membrane: acc [T, ..., C] -> (spikes, v_int) [T, ..., C]."""
    v_int = np.zeros(acc_seq.shape[1:], np.int64)
    spikes, membranes = [], []
    for acc in acc_seq:
        v_int, s = lif_step(v_int, acc, consts)
        spikes.append(s)
        membranes.append(v_int)
    return np.array(spikes), np.array(membranes)


@pytest.mark.parametrize("theta", THETAS)
@pytest.mark.parametrize("sign", (1, -1))
@pytest.mark.parametrize("time_steps", (1, 4, 16))
@pytest.mark.parametrize("bias_frac_bits", (0, 3))
def test_lif_exact_bias_matches_float_lif(theta, sign, time_steps, bias_frac_bits):
    """Power-of-two k_c (negative for sign -1, as with a negative gamma): the float LIF is exact too."""
    rng = np.random.default_rng([time_steps, bias_frac_bits, sign + 1])
    channels, weight_scale = 6, 2.0**-3
    k = sign * 2.0 ** -rng.integers(0, 7, channels).astype(np.float64)
    b = k * rng.integers(-(2 ** (bias_frac_bits + 3)), 2 ** (bias_frac_bits + 3), channels) / 2**bias_frac_bits
    consts = fold_lif(k / weight_scale, b, weight_scale, theta, bias_frac_bits, time_steps)
    acc_seq = rng.integers(-20, 21, (time_steps, 8, channels))
    spikes, v_int = lif_int_trace(acc_seq, consts)
    expected, _ = lif_float(k * acc_seq + b, theta)
    np.testing.assert_array_equal(spikes, expected)
    np.testing.assert_array_equal(lif_run(acc_seq, consts), expected)
    assert 0 < expected.sum() < expected.size
    # the membrane is exact: v_int / 2^F in accumulator units is the float membrane / k
    _, h_float = lif_float(k * acc_seq + b, theta)
    np.testing.assert_array_equal(v_int * k / 2.0**consts.frac_bits, np.where(expected, 0.0, h_float))


def test_lif_charge_fire_reset_each_match_the_float_lif():
    """Each phase on its own, step by step: charge is H (times 2^F / k), fire is S, reset is V = H (1 - S)."""
    rng = np.random.default_rng(8)
    time_steps, channels, weight_scale, theta = 6, 7, 2.0**-3, 1.0
    k = rng.choice([-1, 1], channels) * 2.0 ** -rng.integers(0, 5, channels).astype(np.float64)
    b = k * rng.integers(-16, 17, channels) / 4
    consts = fold_lif(k / weight_scale, b, weight_scale, theta, 2, time_steps)
    acc_seq = rng.integers(-12, 13, (time_steps, 9, channels))
    x_seq = k * acc_seq + b
    v_int, v_float = np.zeros((9, channels), np.int64), np.zeros((9, channels))
    for acc, x in zip(acc_seq, x_seq):
        h_int, h_float = lif_charge(v_int, acc, consts), v_float + (x - v_float) / 2
        np.testing.assert_array_equal(h_int * k / 2.0**consts.frac_bits, h_float)
        spikes = lif_fire(h_int, consts)
        assert spikes.dtype == np.uint8
        np.testing.assert_array_equal(spikes, (h_float >= theta).astype(np.uint8))
        v_int, v_float = lif_reset(h_int, spikes), h_float * (1 - (h_float >= theta))
        np.testing.assert_array_equal(v_int * k / 2.0**consts.frac_bits, v_float)
    assert 0 < lif_run(acc_seq, consts).mean() < 1  # it fires and stays silent


def test_lif_step_is_the_pre_split_formula():
    """lif_step (charge, fire, reset composed) gives the bits of the one-expression step it replaced."""
    rng = np.random.default_rng(9)
    consts = fold_lif(rng.uniform(-2, 2, 5), rng.uniform(-3, 3, 5), 0.03, 0.7, 5, 4)
    v_int = rng.integers(-(2**20), 2**20, (3, 5, 2, 2))
    acc = rng.integers(-500, 501, (3, 5, 2, 2))
    per_channel = [c.reshape(1, -1, 1, 1) for c in (consts.bias_int << 4, consts.sign, consts.thr_int)]
    h_int = (v_int + (acc << consts.frac_bits) + per_channel[0]) >> 1
    spikes = per_channel[1] * h_int >= per_channel[2]
    v_next, s_next = lif_step(v_int, acc, consts, channel_axis=1)
    np.testing.assert_array_equal(s_next, spikes.astype(np.uint8))
    np.testing.assert_array_equal(v_next, np.where(spikes, 0, h_int))
    assert 0 < spikes.mean() < 1


def test_lif_matches_spikingjelly():
    from spikingjelly.activation_based import neuron

    rng = np.random.default_rng(5)
    time_steps, channels, weight_scale = 8, 5, 2.0**-4
    k = np.array([0.5, -0.25, 0.125, -1.0, 2.0])
    b = k * rng.integers(-8, 9, channels) / 4
    acc_seq = rng.integers(-6, 7, (time_steps, 3, channels))
    for theta in THETAS:
        node = neuron.LIFNode(tau=2.0, v_threshold=theta, v_reset=0.0, decay_input=True, step_mode="m")
        expected = node(torch.from_numpy(k * acc_seq + b)).numpy().astype(np.uint8)
        consts = fold_lif(k / weight_scale, b, weight_scale, theta, 2, time_steps)
        np.testing.assert_array_equal(lif_run(acc_seq, consts), expected)


nonzero_f32 = st.floats(2.0**-8, 2.0**4, width=32).flatmap(lambda m: st.sampled_from([m, -m]))


@settings(max_examples=40, deadline=None)
@given(
    st.lists(nonzero_f32, min_size=3, max_size=3),
    st.floats(2.0**-10, 1.0, width=32),
    st.sampled_from(THETAS),
    st.integers(1, 16),
    st.integers(0, 8),
    st.integers(0, 2**32 - 1),
)
def test_lif_exact_bias_matches_rational_lif(a, weight_scale, theta, time_steps, bias_frac_bits, seed):
    """Arbitrary float32 BN factors and scales: spikes and membrane equal the exact real LIF."""
    rng = np.random.default_rng(seed)
    k = [Fraction(a_c) * Fraction(weight_scale) for a_c in a]  # a float32 product: exact in float64
    m = rng.integers(-16, 16, 3)
    b = np.array([float(k_c) * int(m_c) / 2**bias_frac_bits for k_c, m_c in zip(k, m)])
    assert [Fraction(b_c) for b_c in b] == [k_c * int(m_c) / 2**bias_frac_bits for k_c, m_c in zip(k, m)]
    consts = fold_lif(np.float32(a), b, weight_scale, theta, bias_frac_bits, time_steps)
    acc_seq = rng.integers(-12, 13, (time_steps, 4, 3))
    x_seq = [
        [k[c] * int(acc_seq[t, n, c]) + Fraction(b[c]) for n in range(4) for c in range(3)] for t in range(time_steps)
    ]
    expected, _, v_real = lif_exact(x_seq, Fraction(theta))
    spikes, v_int = lif_int_trace(acc_seq, consts)
    np.testing.assert_array_equal(spikes.reshape(time_steps, -1), expected)
    for t in range(time_steps):
        v_t = [Fraction(int(v), 2**consts.frac_bits) * k[i % 3] for i, v in enumerate(v_int[t].ravel())]
        assert v_t == v_real[t]


@pytest.mark.parametrize("bias_frac_bits", (0, 2, 6))
def test_lif_rounded_bias_differs_only_near_threshold(bias_frac_bits):
    """Arbitrary real b: a spike differs only where the real H lies within the bias rounding of theta."""
    rng = np.random.default_rng(bias_frac_bits)
    time_steps, batch, channels, theta = 8, 32, 16, 1.0
    a = (rng.uniform(0.2, 2.0, channels) * rng.choice([-1, 1], channels)).astype(np.float32)
    weight_scale = float(np.float32(0.037))
    b = rng.uniform(-1.0, 1.5, channels).astype(np.float32)
    consts = fold_lif(a, b, weight_scale, theta, bias_frac_bits, time_steps)
    acc_seq = rng.integers(-40, 41, (time_steps, batch, channels))
    k = [Fraction(float(a_c)) * Fraction(weight_scale) for a_c in a]
    x_seq = [
        [k[c] * int(acc_seq[t, n, c]) + Fraction(float(b[c])) for n in range(batch) for c in range(channels)]
        for t in range(time_steps)
    ]
    expected, h_real, _ = lif_exact(x_seq, Fraction(theta))
    spikes = lif_run(acc_seq, consts).reshape(time_steps, -1)
    diverged = 0
    for i in range(batch * channels):
        band = abs(k[i % channels]) / 2 ** (bias_frac_bits + 1)  # the bias rounding, in units of H
        differ = np.flatnonzero(spikes[:, i] != expected[:, i])
        if len(differ):  # at the first difference the two runs still share their past
            diverged += 1
            assert abs(h_real[differ[0]][i] - theta) < band
    near = sum(
        any(abs(h_real[t][i] - theta) < abs(k[i % channels]) / 2 ** (bias_frac_bits + 1) for t in range(time_steps))
        for i in range(batch * channels)
    )
    # seeds 0, 2, 6: 11, 4, 0 of 512 neurons diverge; 52, 9, 1 come near the threshold
    assert diverged <= near < batch * channels // 8
    assert diverged > 0 or bias_frac_bits > 0  # the coarsest bias exercises the bound


@pytest.mark.parametrize("time_steps", range(1, 17))
def test_lif_membrane_parity_invariant(time_steps):
    """The sum before the halving is a multiple of 2^(T - t + 1) at step t <= T: the shift is exact."""
    rng = np.random.default_rng(time_steps)
    bias_frac_bits = 3
    consts = fold_lif(rng.uniform(-2, 2, 8), rng.uniform(-3, 3, 8), 0.01, 1.0, bias_frac_bits, time_steps)
    f = consts.frac_bits
    v_int = np.zeros((16, 8), np.int64)
    for t in range(1, time_steps + 1):
        acc = rng.integers(-50, 51, (16, 8))
        total = v_int + (acc << f) + (consts.bias_int << time_steps)
        assert not np.any(total % 2 ** (time_steps - t + 1))
        v_next, spikes = lif_step(v_int, acc, consts)
        np.testing.assert_array_equal(v_next, np.where(spikes, 0, total // 2))
        v_int = v_next
    with pytest.raises(ValueError, match="lif_run"):
        lif_run(np.zeros((time_steps + 1, 2, 8), np.int64), consts)


@pytest.mark.parametrize("attn_scale", (0.25, 0.125))
def test_attention_lif_threshold_is_exact(attn_scale):
    rng = np.random.default_rng(3)
    time_steps, batch, tokens, dim, heads = 4, 2, 16, 8, 2
    consts = fold_lif(np.ones(dim), np.zeros(dim), attn_scale, 0.5, 0, time_steps)
    np.testing.assert_array_equal(consts.thr_int, int(0.5 / attn_scale) * 2**time_steps)
    np.testing.assert_array_equal(consts.bias_int, 0)
    np.testing.assert_array_equal(consts.sign, 1)
    q, k, v = (rng.integers(0, 2, (time_steps, batch, tokens, dim)).astype(np.uint8) for _ in range(3))
    y = ssa_int(q, k, v, heads)
    expected, _ = lif_float(attn_scale * y, 0.5)
    np.testing.assert_array_equal(lif_run(y, consts), expected)
    assert 0 < expected.sum() < expected.size


def test_dead_channel():
    """a_c = 0: the input is the constant b_c; exact unless theta < b_c < 2 theta (documented)."""
    theta, time_steps = 1.0, 6
    b = np.array([2.0, 3.0, 1.0, -1.0, 1.5])
    consts = fold_lif(np.zeros(5), b, 0.1, theta, 4, time_steps)
    assert consts.sign.tolist() == [0] * 5 and consts.bias_int.tolist() == [0] * 5
    acc_seq = np.random.default_rng(0).integers(-30, 31, (time_steps, 3, 5))
    spikes = lif_run(acc_seq, consts)
    expected, _ = lif_float(np.broadcast_to(b, acc_seq.shape), theta)
    np.testing.assert_array_equal(spikes[..., :4], expected[..., :4])
    assert expected[..., 0].all() and not expected[..., 2:4].any()
    assert not spikes[..., 4].any() and expected[..., 4].any()  # the real neuron fires every 2nd step


def test_lif_channel_axis():
    rng = np.random.default_rng(4)
    consts = fold_lif(rng.uniform(-1, 1, 3), rng.uniform(-1, 1, 3), 0.05, 1.0, 4, 5)
    acc_seq = rng.integers(-40, 41, (5, 2, 3, 4, 4))  # [T, B, C, H, W]
    channels_last = lif_run(np.moveaxis(acc_seq, 2, -1), consts)
    np.testing.assert_array_equal(lif_run(acc_seq, consts, channel_axis=-3), np.moveaxis(channels_last, -1, 2))
    np.testing.assert_array_equal(lif_run(acc_seq, consts, channel_axis=1), np.moveaxis(channels_last, -1, 2))


def test_membrane_bits_holds_every_value():
    rng = np.random.default_rng(6)
    time_steps, acc_lo, acc_hi = 8, -300, 500
    consts = fold_lif(rng.uniform(-2, 2, 8), rng.uniform(-5, 5, 8), 0.02, 1.0, 6, time_steps)
    half = 2 ** (membrane_bits(acc_lo, acc_hi, consts) - 1)
    f = consts.frac_bits
    extremes = [np.full((time_steps, 1, 8), acc) for acc in (acc_lo, acc_hi)]
    for acc_seq in [rng.integers(acc_lo, acc_hi + 1, (time_steps, 64, 8)), *extremes]:
        v_int = np.zeros(acc_seq.shape[1:], np.int64)
        for acc in acc_seq:
            total = v_int + (acc << f) + (consts.bias_int << time_steps)
            assert -half <= total.min() and total.max() < half
            v_int, _ = lif_step(v_int, acc, consts)
    with pytest.raises(ValueError, match="lif_step"):
        membrane_bits(-(2**50), 2**50, consts)


def test_fold_lif_rejects_bad_constants():
    with pytest.raises(ValueError, match="fold_lif"):
        fold_lif(np.ones(2), np.zeros(2), 0.1, 0.0, 0, 4)
    with pytest.raises(ValueError, match="fold_lif"):
        fold_lif(np.ones(2), np.zeros(2), -0.1, 1.0, 0, 4)
    with pytest.raises(ValueError, match="fold_lif: channel 1 thr_int"):
        fold_lif(np.array([1.0, 1e-30]), np.zeros(2), 0.1, 1.0, 4, 8)


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
